package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/musterhq/muster/servicegroup"
)

// view is one look at the fleet.
type view struct {
	at       time.Duration
	computes []string // live members of the compute group
	centrals []string // live members of the central group
	leader   string
	assigned map[string][]string // central agent -> its assigned tasks
	failed   map[string]string   // central agent -> why its status is unknown
}

// settled: exactly the expected agents are up, and the central agents'
// shares are disjoint and cover every compute agent.
func (v view) settled(computes, centrals []string) bool {
	if !slices.Equal(v.computes, sorted(computes)) || !slices.Equal(v.centrals, sorted(centrals)) {
		return false
	}
	var all []string
	for _, c := range centrals {
		a, ok := v.assigned[c]
		if !ok {
			return false
		}
		all = append(all, a...)
	}
	return slices.Equal(sorted(all), sorted(computes))
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

type centralStatus struct {
	Assigned []string `json:"assigned"`
	Members  []string `json:"members"`
	Leader   string   `json:"leader"`
}

func (s *show) look(ctx context.Context) (view, error) {
	v := view{at: time.Since(s.start), assigned: map[string][]string{}, failed: map[string]string{}}
	cs, err := s.obs.Members(ctx, "compute")
	if err != nil && !errors.Is(err, servicegroup.ErrGroupNotFound) {
		return v, err
	}
	for _, m := range cs {
		v.computes = append(v.computes, m.ID)
	}
	ms, err := s.obs.Members(ctx, "central")
	if err != nil && !errors.Is(err, servicegroup.ErrGroupNotFound) {
		return v, err
	}
	for _, m := range ms {
		v.centrals = append(v.centrals, m.ID)
		url, _ := m.Capabilities["status_url"].(string)
		st, err := s.status(ctx, url)
		if err != nil {
			v.failed[m.ID] = err.Error()
			continue
		}
		v.assigned[m.ID] = st.Assigned
	}
	if l, err := s.obs.Leader(ctx, "central"); err == nil {
		v.leader = l
	}
	return v, nil
}

func (s *show) status(ctx context.Context, url string) (centralStatus, error) {
	var st centralStatus
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return st, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, errors.New(resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

func (s *show) print(v view) {
	s.mu.Lock()
	killed := maps.Clone(s.killed)
	s.mu.Unlock()
	mark := func(names []string) []string {
		var out []string
		for _, n := range names {
			switch {
			case killed[n]:
				n += " (killed; up until its TTL runs out)"
			case n == v.leader:
				n += " (leader)"
			}
			out = append(out, n)
		}
		return out
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[%5.1fs] compute up: %s\n", v.at.Seconds(), list(mark(v.computes)))
	cs := mark(v.centrals)
	fmt.Fprintf(&b, "         central up: %s\n", list(cs))
	for _, c := range v.centrals {
		if why, ok := v.failed[c]; ok {
			if strings.Contains(why, "connection refused") {
				why = "not answering"
			}
			fmt.Fprintf(&b, "         %s polls: ? (%s)\n", c, why)
			continue
		}
		fmt.Fprintf(&b, "         %s polls: %s\n", c, list(v.assigned[c]))
	}
	fmt.Fprint(s.o.Out, b.String())
}

func list(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ", ")
}
