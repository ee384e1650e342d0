module github.com/musterhq/muster/bench/hashring

go 1.26.8

replace github.com/musterhq/muster => ../..

require (
	github.com/buraksezer/consistent v0.10.0
	github.com/cespare/xxhash/v2 v2.3.0
	github.com/dgryski/go-rendezvous v0.0.0-20200823014737-9f7001d12a5f
	github.com/golang/groupcache v0.0.0-20210331224755-41bb18bfe9da
	github.com/musterhq/muster v0.0.0-00010101000000-000000000000
)
