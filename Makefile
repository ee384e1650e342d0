# muster — build, test, run.
GO        ?= go
BIN       := bin
TEST_DEPS := python3-tooz python3-msgpack python3-etcd3 redis-server memcached zookeeper etcd-server etcd-client mariadb-server mariadb-client postgresql python3-psycopg2 chromium prometheus
PLUGINS   := file redis memcached etcd mysql postgresql zookeeper

.PHONY: all build run test vet fmt-check bench bench-quick proto deps clean soak-safety

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/muster ./cmd/muster
	@for p in $(PLUGINS); do \
		$(GO) build -o $(BIN)/muster-plugin-$$p ./plugins/$$p/cmd/muster-plugin-$$p || exit 1; \
	done

# The demo: compute and central agents on the file backend, no server.
run: build
	./$(BIN)/muster demo

deps:
	./scripts/deps.sh $(TEST_DEPS)

vet:
	$(GO) vet ./...
	$(GO) vet -tags allbackends ./cmd/muster

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "not gofmt-formatted:"; echo "$$out"; exit 1; fi

# The whole suite, as CI runs it: real processes, race detector, no cache.
test: deps build vet fmt-check
	$(GO) test -race -count=1 -timeout 20m ./...
	@# The ZooKeeper ensemble's fault tests cannot run under -race: see plugins/zookeeper/cluster_test.go.
	$(GO) test -count=1 -timeout 5m -run '^TestCluster' ./plugins/zookeeper/

# The randomized safety run (issue 13) for longer than CI's 3 s per backend.
SAFETY ?= 2m
soak-safety:
	MUSTER_SAFETY_DURATION=$(SAFETY) $(GO) test -race -count=1 -timeout 30m -run 'TestSafety$$' -v ./plugins/memory/ ./plugins/host/ | grep -E 'safety|^(ok|FAIL|---)'

# The report (docs/benchmarks.md): muster against raw clients and tooz,
# failure detection, scale, footprint. Then every package's benchmarks
# (servicegroup's alone took 606 s in the run of 2026-12-04 21:04 UTC, past
# go test's default 10-minute timeout on a slower day).
bench: deps build
	$(GO) run ./bench/report
	$(GO) test -run '^$$' -bench . -benchmem -timeout 40m ./servicegroup/... ./plugins/...
	cd bench/hashring && $(GO) run .

# Every table of the report with fewer samples (under 5 minutes).
bench-quick: deps build
	$(GO) run ./bench/report -quick

# Regenerates plugins/proto (needs Debian's protobuf-compiler).
proto:
	./scripts/deps.sh protobuf-compiler
	./plugins/proto/gen.sh

clean:
	rm -rf $(BIN)
