package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/musterhq/muster/servicegroup/hashring"
	"github.com/musterhq/muster/servicegroup/metrics"
	"github.com/musterhq/muster/servicegroup/partition"
)

// ringSpec says which group's ring the page draws: group's live members
// split keysGroup's live members (and the static keys) as the central
// agents split their tasks.
type ringSpec struct {
	group, keysGroup string
	static           []string
	alg              hashring.Algorithm
}

// ringSamples is how many synthetic keys estimate each member's share of
// the whole key space.
const ringSamples = 2048

// ringSpec reads --ring, else the central agent's configuration.
func (e *env) ringSpec() (ringSpec, error) {
	c := e.cfg.Agent.Central
	alg, err := ringAlgorithm(c.Algorithm)
	if err != nil {
		return ringSpec{}, fmt.Errorf("status: %w", err)
	}
	spec := ringSpec{group: c.Group, keysGroup: c.TasksGroupOrDefault(), static: c.Tasks, alg: alg}
	if statusRing != "" {
		g, k, ok := strings.Cut(statusRing, ":")
		if !ok || g == "" || k == "" {
			return ringSpec{}, fmt.Errorf("status: --ring %q: want GROUP:KEYS_GROUP", statusRing)
		}
		spec.group, spec.keysGroup, spec.static = g, k, nil
	}
	return spec, nil
}

type ringJSON struct {
	Algorithm string      `json:"algorithm"`
	KeysGroup string      `json:"keys_group"`
	Keys      int         `json:"keys"`
	Owners    []ownerJSON `json:"owners"`
}

// ownerJSON is one member's part of the ring: its arc [Start, End) of the
// circle (fractions of a turn, in proportion to its estimated share of the
// key space) and the keys it owns now.
type ownerJSON struct {
	Member string   `json:"member"`
	Weight int      `json:"weight"`
	Share  float64  `json:"share"`
	Start  float64  `json:"start"`
	End    float64  `json:"end"`
	Keys   []string `json:"keys"`
}

// draw computes the ring of r's live members over keys' live members and
// the static keys, as each central agent computes it.
func (s ringSpec) draw(r, keys metrics.Roster, haveKeys bool) *ringJSON {
	var nodes []hashring.Node
	for _, m := range r.Members {
		w, _ := partition.Weight(m.Capabilities)
		nodes = append(nodes, hashring.Node{Name: m.ID, Weight: w})
	}
	ring, err := hashring.New(s.alg, nodes)
	if err != nil {
		return nil
	}
	out := &ringJSON{Algorithm: string(s.alg), KeysGroup: s.keysGroup, Owners: []ownerJSON{}}
	var ids []string
	if haveKeys {
		for _, m := range keys.Members {
			ids = append(ids, m.ID)
		}
	}
	for _, k := range s.static {
		if !slices.Contains(ids, k) {
			ids = append(ids, k)
		}
	}
	slices.Sort(ids)
	out.Keys = len(ids)
	owned := map[string][]string{}
	for _, k := range ids {
		o, _ := ring.Owner([]byte(k))
		owned[o] = append(owned[o], k)
	}
	share := map[string]int{}
	for i := range ringSamples {
		o, _ := ring.Owner(fmt.Appendf(nil, "muster-status-sample-%d", i))
		share[o]++
	}
	at := 0.0
	for _, n := range ring.Nodes() {
		f := float64(share[n.Name]) / ringSamples
		keys := owned[n.Name]
		if keys == nil {
			keys = []string{}
		}
		out.Owners = append(out.Owners, ownerJSON{Member: n.Name, Weight: n.Weight, Share: f, Start: at, End: at + f, Keys: keys})
		at += f
	}
	return out
}
