package hashring

import (
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
)

// The muster ring.
//
// Positions are 64-bit and the ring is cut into 2^regionBits equal regions.
// Every member has exactly Weight points in every region, each at a
// pseudo-random place inside it that depends only on the member's name, the
// region and the point's number: 16384 points per unit of weight.
//
// A key's position is the XXH64 hash of the key with its low slotShift bits
// cleared, i.e. the start of one of 2^slotBits slots (2M slots, a 4 MiB
// table of uint16), and its owner is the
// member of the point nearest to it in either direction (on equal distances
// the point after it wins, then the smaller name). Because keys sit only at
// slot starts, a table of one owner per slot answers every lookup exactly,
// in one hash and one load.
//
// Why nearest rather than next: a point then owns half the gap on each side
// instead of the whole gap before it, and the sum of two independent gaps
// varies half as much. A member's share is then within about
// 1/sqrt(2*16384) = 0.55% of its ideal (one standard deviation; 0.5-0.6%
// measured at 100 members), as good as a successor ring with twice the
// points, where tooz's 32 points per member leave it within about 18%. At a
// million keys the sampling of the keys (1% per member at 100 members)
// matters more than that.
//
// Stratifying the points by region costs no evenness (the spread comes
// from the gaps, not from how many points fall where) and makes the points
// near a position cheap to enumerate: those of three regions.
//
// It is a consistent hash in the strict sense: each key orders all possible
// members by their distance to it, that order does not depend on who else
// is in the ring, and the owner is the first member of the order present.
// So a member that joins takes keys only from others, a member that leaves
// gives away only its own keys, and the keys that move are its share of the
// ring (1/(N+1) of them on average).
const (
	regionBits  = 14
	slotBits    = 21
	localBits   = slotBits - regionBits
	regionShift = 64 - regionBits
	slotShift   = 64 - slotBits
	numRegions  = 1 << regionBits
	localSlots  = 1 << localBits
	offsetMask  = 1<<slotShift - 1

	// keySeed and nameSeed make key and member hashes independent.
	keySeed  = 0
	nameSeed = 0x6d75737465722e31 // "muster.1"
)

type musterRing struct {
	streams []stream // Weight per node, in node order
	table   []uint16 // per slot: the index of its owner
}

// stream is the j-th point of a member in every region.
type stream struct {
	base uint64 // splitmix64 state before the region is added
	node int
}

const golden = 0x9e3779b97f4a7c15 // splitmix64's increment

// streamOf returns stream j of the member whose name hashes to seed.
func streamOf(seed uint64, j, node int) stream {
	return stream{base: seed + (uint64(j)<<regionBits+1)*golden, node: node}
}

// point is the position of the stream's point in region r: the region's top
// bits and a splitmix64 output, of state seed + (j<<regionBits | r) + 1
// times the increment, below them.
func (s stream) point(r uint64) uint64 {
	z := s.base + r*golden
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	z ^= z >> 31
	return r<<regionShift | z>>regionBits
}

func keyPosition(key []byte) uint64 {
	return xxh64(key, keySeed) &^ offsetMask
}

func newMusterRing(ns []Node) *musterRing {
	m := &musterRing{streams: streamsOf(ns), table: make([]uint16, 1<<slotBits)}
	// Blocks of regions are independent, so they are spread over the CPUs;
	// the goroutines end before newMusterRing returns.
	const block = 128
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), numRegions/block) {
		wg.Go(func() {
			var b regionBuilder
			for {
				r := next.Add(block) - block
				if r >= numRegions {
					return
				}
				b.fill(m, uint64(r), uint64(r+block))
			}
		})
	}
	wg.Wait()
	return m
}

// ringPoint is a point of a member: its position and the member's index.
type ringPoint struct {
	pos  uint64
	node int
}

// regionBuilder is one worker's scratch space. For each slot of a region it
// keeps the first point in the slot as offset<<16|node and the last as
// offset<<16|(0xFFFF-node), so that a plain min and max order by position
// and then by name and no branch depends on a hash.
type regionBuilder struct {
	first [localSlots]uint64
	last  [localSlots]uint64
}

const (
	noFirst = math.MaxUint64 // above any offset<<16|node
	noLast  = 0              // below any offset<<16|(0xFFFF-node): node < 0xFFFF
)

// scan gathers region r's points into b.
func (b *regionBuilder) scan(m *musterRing, r uint64) {
	for l := range b.first {
		b.first[l] = noFirst
		b.last[l] = noLast
	}
	for _, st := range m.streams {
		p := st.point(r)
		l := p >> slotShift & (localSlots - 1)
		off := (p & offsetMask) << 16
		b.first[l] = min(b.first[l], off|uint64(st.node))
		b.last[l] = max(b.last[l], off|uint64(0xFFFF-st.node))
	}
}

// fill writes the owners of the slots of regions [r0, r1).
func (b *regionBuilder) fill(m *musterRing, r0, r1 uint64) {
	// The nearest point before the block is the last of region r0-1: every
	// region has points.
	rp := (r0 + numRegions - 1) % numRegions
	b.scan(m, rp)
	var pred ringPoint
	for l := localSlots - 1; l >= 0; l-- {
		if v := b.last[l]; v != noLast {
			pred = ringPoint{(rp*localSlots+uint64(l))<<slotShift | v>>16, int(0xFFFF - v&0xFFFF)}
			break
		}
	}
	pend := r0 * localSlots // the first slot whose next point is not yet known
	for r := r0; r < r1; r++ {
		b.scan(m, r)
		for l := range uint64(localSlots) {
			f := b.first[l]
			if f == noFirst {
				continue
			}
			s := r*localSlots + l
			succ := ringPoint{s<<slotShift | f>>16, int(f & 0xFFFF)}
			if pend == s {
				// The common case at many members: the slot before
				// had points too.
				if q := s << slotShift; succ.pos-q <= q-pred.pos {
					m.table[s] = uint16(succ.node)
				} else {
					m.table[s] = uint16(pred.node)
				}
			} else {
				m.resolve(pend, s+1, pred, succ)
			}
			v := b.last[l]
			pred = ringPoint{s<<slotShift | v>>16, int(0xFFFF - v&0xFFFF)}
			pend = s + 1
		}
	}
	rn := r1 % numRegions
	b.scan(m, rn)
	for l := range uint64(localSlots) {
		if f := b.first[l]; f != noFirst {
			succ := ringPoint{(rn*localSlots+l)<<slotShift | f>>16, int(f & 0xFFFF)}
			m.resolve(pend, r1*localSlots, pred, succ)
			return
		}
	}
}

// resolve sets the owners of slots [from, to), which lie between the
// consecutive points pred and succ.
func (m *musterRing) resolve(from, to uint64, pred, succ ringPoint) {
	// Slot s goes to succ when succ-q <= q-pred, q = s<<slotShift, i.e.
	// when q-pred >= half, half = ceil((succ-pred)/2). Distances are taken
	// mod 2^64, so the ring's wrap needs no case.
	half := (succ.pos-pred.pos)/2 + (succ.pos-pred.pos)%2
	x := from<<slotShift - pred.pos
	k := uint64(0) // slots that go to pred
	if x < half {
		k = min(to-from, (half-x+offsetMask)>>slotShift)
	}
	t := m.table[from:to]
	for i := range t[:k] {
		t[i] = uint16(pred.node)
	}
	for i := range t[k:] {
		t[k+uint64(i)] = uint16(succ.node)
	}
}

func (m *musterRing) owner(key []byte) int {
	return int(m.table[xxh64(key, keySeed)>>slotShift])
}

// walk yields the members in the order of their points' distance to the
// key's position, about want of them at first.
//
// A member's point in the key's region is nearer than any point outside
// the region and its two neighbours, so those three regions hold every
// member's nearest point. The walk starts with the points of the key's
// region near enough to hold about want members, and takes in the rest of
// the region, then the neighbours, only when it gets that far.
func (m *musterRing) walk(key []byte, want int, yield func(int) bool) {
	q := keyPosition(key)
	r := q >> regionShift
	buf := walkBufs.Get().(*[]walkPoint)
	defer walkBufs.Put(buf)
	// Points are spread evenly, len(m.streams) per region: this bound
	// keeps about 2*want+8 of them. The near ones go to the front, the
	// rest to the back.
	bound := (1 << regionShift) / uint64(len(m.streams)) * uint64(want+4)
	all := slices.Grow((*buf)[:0], len(m.streams))[:len(m.streams)]
	near, far := 0, len(all)
	for _, st := range m.streams {
		if v := view(q, st.point(r), st.node); v.dist <= bound {
			all[near] = v
			near++
		} else {
			far--
			all[far] = v
		}
	}
	h := pointHeap(all[:near])
	h.init()
	toStart := q - r<<regionShift       // the region before is farther
	toEnd := (r+1)<<regionShift - 1 - q // the region after is farther
	farIn, neighboursIn := false, false
	for {
		// Points not yet in the heap are farther than the bound, or than
		// the region's ends.
		if !farIn && (len(h) == 0 || h[0].dist > bound) {
			h = append(h, all[far:]...)
			h.init()
			farIn = true
		}
		if !neighboursIn && (len(h) == 0 || h[0].dist > toStart || h[0].dist > toEnd) {
			if !farIn {
				h = append(h, all[far:]...)
				farIn = true
			}
			for _, rr := range [2]uint64{(r + numRegions - 1) % numRegions, (r + 1) % numRegions} {
				for _, st := range m.streams {
					h = append(h, view(q, st.point(rr), st.node))
				}
			}
			h.init()
			neighboursIn = true
		}
		if len(h) == 0 {
			break
		}
		if !yield(int(h.pop().node)) {
			break
		}
	}
	*buf = all[:0]
	if cap(h) > cap(all) {
		*buf = h[:0]
	}
}

// walkBufs recycles walk's space: a region's points at 1,000 members are
// 16 KB.
var walkBufs = sync.Pool{New: func() any { return new([]walkPoint) }}

// around returns region r and its neighbours.
func around(r uint64) [3]uint64 {
	return [3]uint64{(r + numRegions - 1) % numRegions, r, (r + 1) % numRegions}
}

// view returns point p of a node as seen from position q, which is less
// than two regions away.
func view(q, p uint64, node int) walkPoint {
	// Without a branch: which side p is on is a coin toss.
	after, before := p-q, q-p
	return walkPoint{dist: min(after, before), before: after > before, node: int32(node)}
}

// walkPoint is a point seen from a key: ordered by distance, then after
// before before, then by name, as the table is built.
type walkPoint struct {
	dist   uint64
	before bool
	node   int32
}

func (a walkPoint) less(b walkPoint) bool {
	if a.dist != b.dist {
		return a.dist < b.dist
	}
	if a.before != b.before {
		return !a.before
	}
	return a.node < b.node
}

// pointHeap is a binary min-heap of walkPoints. Owners usually needs only
// the first few points, so a heap (linear to build) beats a sort.
type pointHeap []walkPoint

func (h pointHeap) init() {
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

func (h *pointHeap) pop() walkPoint {
	old := *h
	top := old[0]
	n := len(old) - 1
	old[0] = old[n]
	*h = old[:n]
	h.down(0)
	return top
}

func (h pointHeap) down(i int) {
	n := len(h)
	for {
		c := 2*i + 1
		if c >= n {
			return
		}
		if c+1 < n && h[c+1].less(h[c]) {
			c++
		}
		if !h[c].less(h[i]) {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}
