package hashring

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Algorithm names a way of placing members and keys on the ring. Every
// process that must agree on ownership has to use the same Algorithm.
type Algorithm string

const (
	// Default is muster's own ring: an even spread (about 1% spread of
	// shares at 100 members), keys that move only to a member that joins or
	// only from a member that leaves, and constant-time lookups. The empty
	// Algorithm means Default.
	Default Algorithm = "muster"
	// Tooz reproduces OpenStack tooz's tooz.hashring.HashRing bit for bit
	// (md5, 32 points per unit of weight), so Go and Python agents can share
	// one partitioning. Its spread is much less even than Default's.
	Tooz Algorithm = "tooz"
)

// MaxNodes is the largest number of members a Ring holds.
const MaxNodes = 1<<16 - 1

// MaxWeight is the largest Node.Weight. Building a ring costs time in
// proportion to the sum of the weights, so weights are meant to be small
// relative capacities, not raw numbers of cores or bytes.
const MaxWeight = 1000

var (
	// ErrUnknownAlgorithm is returned for an Algorithm other than Default,
	// Tooz or "".
	ErrUnknownAlgorithm = errors.New("hashring: unknown algorithm")
	// ErrInvalidNode is returned for a node with an empty name, a negative
	// weight or a weight above MaxWeight.
	ErrInvalidNode = errors.New("hashring: invalid node")
	// ErrDuplicateNode is returned when two nodes have the same name.
	ErrDuplicateNode = errors.New("hashring: duplicate node")
	// ErrTooManyNodes is returned for more than MaxNodes nodes.
	ErrTooManyNodes = errors.New("hashring: too many nodes")
)

// Node is one member of a ring.
type Node struct {
	// Name identifies the member; it alone decides where the member's
	// points lie, so every process must use the same names. Names are
	// compared as bytes (tooz hashes the UTF-8 encoding, which is what a Go
	// string holds).
	Name string
	// Weight is the member's share relative to the others: a member of
	// weight 2 gets twice the keys of a member of weight 1. 0 means 1.
	Weight int
}

// Ring maps keys to members. It is a pure function of its algorithm and its
// member set: two processes that build a Ring from the same nodes, in any
// order, get the same owners for every key. A Ring is immutable and safe
// for concurrent use.
type Ring struct {
	alg   Algorithm
	nodes []Node // sorted by name; weights normalised to >= 1
	impl  ringImpl
}

// ringImpl is one algorithm. Members are referred to by their index in
// Ring.nodes.
type ringImpl interface {
	owner(key []byte) int
	// walk calls yield with the members in the key's preference order,
	// duplicates included, until yield returns false. It visits every
	// member at least once.
	// want is how many the caller expects to need, a hint.
	walk(key []byte, want int, yield func(i int) bool)
}

// New builds a ring of nodes with the given algorithm. It reports an error
// for an unknown algorithm, an empty or duplicate name, a negative weight,
// a weight above MaxWeight or more than MaxNodes nodes. No nodes is
// allowed: the ring then has no owner for any key.
func New(alg Algorithm, nodes []Node) (*Ring, error) {
	if alg == "" {
		alg = Default
	}
	if alg != Default && alg != Tooz {
		return nil, fmt.Errorf("%w %q", ErrUnknownAlgorithm, string(alg))
	}
	if len(nodes) > MaxNodes {
		return nil, fmt.Errorf("%w: %d > %d", ErrTooManyNodes, len(nodes), MaxNodes)
	}
	ns := make([]Node, len(nodes))
	for i, n := range nodes {
		if err := checkNode(n); err != nil {
			return nil, err
		}
		if n.Weight == 0 {
			n.Weight = 1
		}
		ns[i] = n
	}
	slices.SortFunc(ns, func(a, b Node) int { return strings.Compare(a.Name, b.Name) })
	for i := 1; i < len(ns); i++ {
		if ns[i].Name == ns[i-1].Name {
			return nil, fmt.Errorf("%w %q", ErrDuplicateNode, ns[i].Name)
		}
	}
	return build(alg, ns), nil
}

func checkNode(n Node) error {
	switch {
	case n.Name == "":
		return fmt.Errorf("%w: empty name", ErrInvalidNode)
	case n.Weight < 0:
		return fmt.Errorf("%w %q: negative weight %d", ErrInvalidNode, n.Name, n.Weight)
	case n.Weight > MaxWeight:
		return fmt.Errorf("%w %q: weight %d above %d", ErrInvalidNode, n.Name, n.Weight, MaxWeight)
	}
	return nil
}

// build makes a ring from nodes already checked, normalised and sorted.
func build(alg Algorithm, ns []Node) *Ring {
	r := &Ring{alg: alg, nodes: ns}
	if len(ns) == 0 {
		return r
	}
	if alg == Tooz {
		r.impl = newToozRing(ns)
	} else {
		r.impl = newMusterRing(ns)
	}
	return r
}

// Algorithm reports the ring's algorithm.
func (r *Ring) Algorithm() Algorithm { return r.alg }

// Nodes returns the ring's members sorted by name, with weight 0 reported
// as 1.
func (r *Ring) Nodes() []Node { return slices.Clone(r.nodes) }

// Owner returns the member that owns key, or false when the ring is empty.
func (r *Ring) Owner(key []byte) (string, bool) {
	if r.impl == nil {
		return "", false
	}
	return r.nodes[r.impl.owner(key)].Name, true
}

// Owners returns up to replicas distinct members for key, in preference
// order (the first is Owner's answer), leaving out the members named in
// ignore; names that are not members change nothing. It returns fewer when
// fewer members are left, and none when replicas < 1. For Tooz the members
// are those tooz's get_nodes returns, which tooz gives as a set.
//
// The members returned are the first of the key's preference order once the
// ignored members have left the ring: ignoring the members known to be down
// gives each key the owner it will have when they are removed, so failing
// over and then removing them moves nothing twice.
func (r *Ring) Owners(key []byte, replicas int, ignore ...string) []string {
	if r.impl == nil || replicas < 1 {
		return nil
	}
	var skip []bool
	eligible := len(r.nodes)
	for _, name := range ignore {
		i, ok := r.index(name)
		if !ok {
			continue
		}
		if skip == nil {
			skip = make([]bool, len(r.nodes))
		}
		if !skip[i] {
			skip[i] = true
			eligible--
		}
	}
	replicas = min(replicas, eligible)
	if replicas == 0 {
		return nil
	}
	if replicas == 1 {
		if i := r.impl.owner(key); skip == nil || !skip[i] {
			return []string{r.nodes[i].Name}
		}
	}
	out := make([]string, 0, replicas)
	seen := make([]uint64, (len(r.nodes)+63)/64)
	r.impl.walk(key, replicas+len(ignore), func(i int) bool {
		if (skip != nil && skip[i]) || seen[i/64]&(1<<(i%64)) != 0 {
			return true
		}
		seen[i/64] |= 1 << (i % 64)
		out = append(out, r.nodes[i].Name)
		return len(out) < replicas
	})
	return out
}

// With returns a ring that also holds node, or holds it with a new weight
// if a member of that name exists. The result is identical to New on the
// new member set; r is unchanged.
func (r *Ring) With(node Node) (*Ring, error) {
	if err := checkNode(node); err != nil {
		return nil, err
	}
	if node.Weight == 0 {
		node.Weight = 1
	}
	i, found := r.index(node.Name)
	if found && r.nodes[i].Weight == node.Weight {
		return r, nil
	}
	if !found && len(r.nodes) >= MaxNodes {
		return nil, fmt.Errorf("%w: %d > %d", ErrTooManyNodes, len(r.nodes)+1, MaxNodes)
	}
	ns := slices.Clone(r.nodes)
	if found {
		ns[i] = node
		return build(r.alg, ns), nil
	}
	ns = slices.Insert(ns, i, node)
	// A member joining a small ring takes a large share of it, and there a
	// build is cheaper than an update.
	if m, ok := r.impl.(*musterRing); ok && len(ns) > smallRing {
		return &Ring{alg: r.alg, nodes: ns, impl: m.withNode(ns, i)}, nil
	}
	return build(r.alg, ns), nil
}

// Without returns a ring without the member called name. The result is
// identical to New on the remaining members; r is unchanged. A name that is
// not a member is not an error: the result is r itself.
func (r *Ring) Without(name string) *Ring {
	i, found := r.index(name)
	if !found {
		return r
	}
	ns := slices.Delete(slices.Clone(r.nodes), i, i+1)
	if m, ok := r.impl.(*musterRing); ok && len(ns) > smallRing {
		return &Ring{alg: r.alg, nodes: ns, impl: m.withoutNode(ns, i)}
	}
	return build(r.alg, ns)
}

// smallRing is the size up to which With and Without build the ring anew.
const smallRing = 16

// index finds name in r.nodes, or where it would be inserted.
func (r *Ring) index(name string) (int, bool) {
	return slices.BinarySearchFunc(r.nodes, name, func(n Node, name string) int {
		return strings.Compare(n.Name, name)
	})
}
