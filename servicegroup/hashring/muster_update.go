package hashring

import "slices"

// Updating a muster ring by one member. Only the slots near the member's
// points can change owner, so With and Without copy the table and fix
// those slots instead of building it again: a few milliseconds instead of
// tens at 1,000 members. The result is the table New would build, which the
// tests check.

// withNode returns m with node i of ns added; ns is the new node list.
func (m *musterRing) withNode(ns []Node, i int) *musterRing {
	u := &musterRing{streams: streamsOf(ns), table: make([]uint16, len(m.table))}
	// Indices at and after i move up by one.
	for s, o := range m.table {
		var up uint16 // not a branch: it would be mispredicted half the time
		if int(o) >= i {
			up = 1
		}
		u.table[s] = o + up
	}
	seed := xxh64([]byte(ns[i].Name), nameSeed)
	for j := range ns[i].Weight {
		st := streamOf(seed, j, i)
		for r := range uint64(numRegions) {
			p := st.point(r)
			// The slots the point takes are a run around it: moving away
			// from it, once another point is nearer to a slot's start,
			// that point is nearer to every slot start further on.
			s0 := p >> slotShift
			for n, s := 0, s0; n < len(u.table) && u.takes(s, p, i); n, s = n+1, (s-1)%uint64(len(u.table)) {
				u.table[s] = uint16(i)
			}
			for n, s := 0, (s0+1)%uint64(len(u.table)); n < len(u.table) && u.takes(s, p, i); n, s = n+1, (s+1)%uint64(len(u.table)) {
				u.table[s] = uint16(i)
			}
		}
	}
	return u
}

// takes reports whether point p of node i is nearer to slot s than the
// slot's owner. A slot node i already owns is taken again, so that a run
// goes on through it.
func (m *musterRing) takes(s, p uint64, i int) bool {
	o := int(m.table[s])
	if o == i {
		return true
	}
	q := s << slotShift
	return view(q, p, i).less(m.nearestOf(q, o))
}

// nearestOf returns node o's point nearest to position q.
func (m *musterRing) nearestOf(q uint64, o int) walkPoint {
	lo, _ := slices.BinarySearchFunc(m.streams, o, func(st stream, o int) int { return st.node - o })
	best := walkPoint{dist: 1<<64 - 1}
	for _, st := range m.streams[lo:] {
		if st.node != o {
			break
		}
		for _, rr := range around(q >> regionShift) {
			if v := view(q, st.point(rr), o); v.less(best) {
				best = v
			}
		}
	}
	return best
}

// withoutNode returns m with node i removed; ns is the new node list.
func (m *musterRing) withoutNode(ns []Node, i int) *musterRing {
	u := &musterRing{streams: streamsOf(ns), table: make([]uint16, len(m.table))}
	var orphans []uint64
	for s, o := range m.table {
		if int(o) == i {
			orphans = append(orphans, uint64(s))
		}
		var down uint16 // not a branch: it would be mispredicted half the time
		if int(o) > i {
			down = 1
		}
		u.table[s] = o - down
	}
	// Orphaned slots go to the nearest remaining point. They come in
	// slot order, so each region's points are enumerated once.
	var c regionCache
	for _, s := range orphans {
		q := s << slotShift
		r := q >> regionShift
		best, before, after := nearestIn(q, c.points(u, r))
		// A point of the same region on each side of q is nearer than any
		// point outside the region.
		if !before {
			b, _, _ := nearestIn(q, c.points(u, (r+numRegions-1)%numRegions))
			best = minView(best, b)
		}
		if !after {
			a, _, _ := nearestIn(q, c.points(u, (r+1)%numRegions))
			best = minView(best, a)
		}
		u.table[s] = uint16(best.node)
	}
	return u
}

// nearestIn returns the point of pts nearest to q and whether pts has
// points before and after q.
func nearestIn(q uint64, pts []ringPoint) (best walkPoint, before, after bool) {
	best = walkPoint{dist: 1<<64 - 1}
	lo, hi := uint64(1<<64-1), uint64(0)
	for _, pt := range pts {
		lo, hi = min(lo, pt.pos), max(hi, pt.pos)
		// Few points come nearer than the best so far: this branch is
		// rarely taken, so well predicted.
		if min(pt.pos-q, q-pt.pos) <= best.dist {
			if v := view(q, pt.pos, pt.node); v.less(best) {
				best = v
			}
		}
	}
	// pts are of one region; these matter only when it is q's.
	return best, lo < q, hi >= q
}

func minView(a, b walkPoint) walkPoint {
	if b.less(a) {
		return b
	}
	return a
}

// regionCache keeps the points of the last few regions enumerated.
type regionCache struct {
	region [3]uint64
	pts    [3][]ringPoint
	valid  [3]bool
	next   int
}

func (c *regionCache) points(m *musterRing, r uint64) []ringPoint {
	for k := range c.region {
		if c.valid[k] && c.region[k] == r {
			return c.pts[k]
		}
	}
	k := c.next
	c.next = (c.next + 1) % len(c.region)
	c.region[k], c.valid[k] = r, true
	c.pts[k] = c.pts[k][:0]
	for _, st := range m.streams {
		c.pts[k] = append(c.pts[k], ringPoint{st.point(r), st.node})
	}
	return c.pts[k]
}

// streamsOf returns the streams of ns, grouped by node in node order.
func streamsOf(ns []Node) []stream {
	var sts []stream
	for i, n := range ns {
		seed := xxh64([]byte(n.Name), nameSeed)
		for j := range n.Weight {
			sts = append(sts, streamOf(seed, j, i))
		}
	}
	return sts
}
