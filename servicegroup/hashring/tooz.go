package hashring

import (
	"cmp"
	"crypto/md5"
	"encoding/binary"
	"slices"
)

// toozPartitions is tooz's HashRing.DEFAULT_PARTITION_NUMBER: points per
// unit of weight.
const toozPartitions = 32

// toozRing follows tooz/hashring.py (tooz 2.x–6.x):
//
//   - a member's points come from one md5 object seeded with its UTF-8 name
//     and updated with the name again before each point is read, so point i
//     (0 <= i < 32*weight) is md5(name repeated i+2 times);
//   - a digest is an integer by int(hexdigest, 16): the 16 bytes big-endian;
//   - a key's position is md5(key) read the same way, and its partition is
//     bisect.bisect (bisect_right) on the sorted points: the first point
//     strictly greater than the key, wrapping to the first point;
//   - replicas walk the sorted points onwards from there, wrapping, skipping
//     ignored members and members already chosen.
//
// tooz keeps points in a dict, so two members with an equal point would
// leave the later one there; md5 collisions do not happen by accident, and
// here the member with the smaller name keeps the point.
type toozRing struct {
	points []toozPoint // sorted by (hi, lo)
}

type toozPoint struct {
	hi, lo uint64
	node   int
}

func newToozRing(ns []Node) *toozRing {
	total := 0
	for _, n := range ns {
		total += toozPartitions * n.Weight
	}
	t := &toozRing{points: make([]toozPoint, 0, total)}
	var sum [md5.Size]byte
	for i, n := range ns {
		name := []byte(n.Name)
		h := md5.New()
		h.Write(name)
		for range toozPartitions * n.Weight {
			h.Write(name)
			hi, lo := digestInt(h.Sum(sum[:0]))
			t.points = append(t.points, toozPoint{hi: hi, lo: lo, node: i})
		}
	}
	slices.SortFunc(t.points, func(a, b toozPoint) int {
		if c := cmp.Compare(a.hi, b.hi); c != 0 {
			return c
		}
		if c := cmp.Compare(a.lo, b.lo); c != 0 {
			return c
		}
		return cmp.Compare(a.node, b.node)
	})
	// Keep the first of equal points, as the member with the smaller name.
	t.points = slices.CompactFunc(t.points, func(a, b toozPoint) bool {
		return a.hi == b.hi && a.lo == b.lo
	})
	return t
}

func digestInt(d []byte) (hi, lo uint64) {
	return binary.BigEndian.Uint64(d[:8]), binary.BigEndian.Uint64(d[8:16])
}

// partition is tooz's HashRing._get_partition.
func (t *toozRing) partition(key []byte) int {
	d := md5.Sum(key)
	hi, lo := digestInt(d[:])
	// bisect_right: first point > (hi, lo).
	i, j := 0, len(t.points)
	for i < j {
		m := int(uint(i+j) >> 1)
		p := &t.points[m]
		if p.hi < hi || (p.hi == hi && p.lo <= lo) {
			i = m + 1
		} else {
			j = m
		}
	}
	if i == len(t.points) {
		return 0
	}
	return i
}

func (t *toozRing) owner(key []byte) int { return t.points[t.partition(key)].node }

func (t *toozRing) walk(key []byte, _ int, yield func(int) bool) {
	p := t.partition(key)
	for range len(t.points) {
		if !yield(t.points[p].node) {
			return
		}
		if p++; p == len(t.points) {
			p = 0
		}
	}
}
