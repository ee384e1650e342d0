package hashring

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestToozVectors are tooz's own test cases (tooz/tests/test_hashring.py),
// as listed in CONFORMANCE.md.
func TestToozVectors(t *testing.T) {
	two := mustNew(t, Tooz, []Node{{Name: "foo"}, {Name: "bar"}})
	three := mustNew(t, Tooz, []Node{{Name: "foo"}, {Name: "bar"}, {Name: "baz"}})
	for _, tc := range []struct {
		ring     *Ring
		key      string
		replicas int
		ignore   []string
		want     []string
	}{
		{two, "fake", 1, nil, []string{"foo"}},
		{three, "fake", 1, nil, []string{"foo"}},
		{three, "fake-again", 1, nil, []string{"bar"}},
		{three, "fake", 2, nil, []string{"bar", "foo"}},
		{three, "fake", 1, []string{"foo"}, []string{"bar"}},
		{three, "fake", 1, []string{"foo", "bar"}, []string{"baz"}},
		{three, "fake", 3, []string{"foo", "bar"}, []string{"baz"}},
	} {
		got := tc.ring.Owners([]byte(tc.key), tc.replicas, tc.ignore...)
		slices.Sort(got) // tooz returns a set
		if !slices.Equal(got, tc.want) {
			t.Errorf("%v: Owners(%q, %d, %q) = %q, want %q", tc.ring.Nodes(), tc.key, tc.replicas, tc.ignore, got, tc.want)
		}
	}
}

// pythonTooz is Debian's python, which has tooz; the python3 first on PATH
// may not.
const pythonTooz = "/usr/bin/python3"

// toozScript answers, with tooz's own HashRing, the cases on stdin.
const toozScript = `
import json, sys
from tooz import hashring
req = json.load(sys.stdin)
ring = hashring.HashRing([])
for name, weight in req["nodes"]:
    ring.add_node(name, weight=weight)
out = []
for key, replicas, ignore in req["cases"]:
    out.append(sorted(ring.get_nodes(bytes.fromhex(key), ignore_nodes=ignore, replicas=replicas)))
json.dump(out, sys.stdout)
`

// TestToozMatchesPython compares the Tooz algorithm with tooz itself on a
// ring of 7 members of mixed weights, names beyond ASCII, 10,000 keys and
// replica and ignore cases.
func TestToozMatchesPython(t *testing.T) {
	if err := exec.Command(pythonTooz, "-c", "import tooz.hashring").Run(); err != nil {
		msg := fmt.Sprintf("%s cannot import tooz (%v): install python3-tooz", pythonTooz, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	nodes := []Node{
		{Name: "compute-1", Weight: 1},
		{Name: "compute-2", Weight: 2},
		{Name: "compute-3", Weight: 3},
		{Name: "nœud-é", Weight: 1},
		{Name: "节点-7", Weight: 5},
		{Name: "x", Weight: 1},
		{Name: "worker.example.org:8080", Weight: 2},
	}
	ring := mustNew(t, Tooz, nodes)
	type tcase struct {
		key      []byte
		replicas int
		ignore   []string
	}
	var cases []tcase
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range 10000 {
		key := fmt.Appendf(nil, "key-%d", i)
		if i%3 == 0 { // arbitrary bytes, not always UTF-8
			key = make([]byte, rng.IntN(40))
			for j := range key {
				key[j] = byte(rng.Uint32())
			}
		}
		cases = append(cases, tcase{key: key, replicas: 1})
		if i < 1000 {
			var ignore []string
			for _, n := range nodes {
				if rng.IntN(3) == 0 {
					ignore = append(ignore, n.Name)
				}
			}
			if i%10 == 0 {
				ignore = append(ignore, "not-a-member")
			}
			cases = append(cases, tcase{key: key, replicas: rng.IntN(9), ignore: ignore})
		}
	}

	var req struct {
		Nodes [][2]any `json:"nodes"`
		Cases [][3]any `json:"cases"`
	}
	for _, n := range nodes {
		req.Nodes = append(req.Nodes, [2]any{n.Name, n.Weight})
	}
	for _, c := range cases {
		req.Cases = append(req.Cases, [3]any{hex.EncodeToString(c.key), c.replicas, append([]string{}, c.ignore...)})
	}
	in, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(pythonTooz, "-c", toozScript)
	cmd.Stdin = strings.NewReader(string(in))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tooz: %v\n%s", err, stderr.String())
	}
	var want [][]string
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatal(err)
	}
	if len(want) != len(cases) {
		t.Fatalf("tooz answered %d cases of %d", len(want), len(cases))
	}
	bad := 0
	for i, c := range cases {
		got := ring.Owners(c.key, c.replicas, c.ignore...)
		slices.Sort(got)
		if len(got) == 0 && len(want[i]) == 0 {
			continue
		}
		if !slices.Equal(got, want[i]) {
			t.Errorf("key %x, replicas %d, ignore %q: got %q, tooz %q", c.key, c.replicas, c.ignore, got, want[i])
			if bad++; bad == 10 {
				t.Fatal("too many differences")
			}
		}
	}
}
