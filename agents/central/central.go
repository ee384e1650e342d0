// Package central is the central agent (`muster agent central`): Ceilometer's
// central polling agent. Central agents join the central group and split the
// polling tasks between them with a hash ring over the group's live members
// (servicegroup/partition): each polls only its share, every poll interval,
// and writes one JSON line per poll. When an agent joins or dies, the others
// see it on the group's watch and the tasks move at once; nobody
// coordinates the split, each agent computes it.
//
// The tasks are the live members of a tasks group (the compute agents, by
// default: polling one is a GET of its status_url capability; the task id is
// the member id) plus static task ids from the configuration ("polling" one
// just records it).
//
// The agents also elect a leader of the central group. Its duty here is
// small and visible: it logs a one-line summary of the split each time the
// split changes.
package central

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/musterhq/muster/agents/internal/host"
	"github.com/musterhq/muster/internal/buildinfo"
	"github.com/musterhq/muster/servicegroup"
	"github.com/musterhq/muster/servicegroup/hashring"
	"github.com/musterhq/muster/servicegroup/metrics"
	"github.com/musterhq/muster/servicegroup/partition"
)

// Defaults.
const (
	DefaultGroup        = "central"
	DefaultPollInterval = 10 * time.Second
)

// Options configure Run.
type Options struct {
	// Session opens the agent's session. Member defaults to the hostname.
	Session servicegroup.Config
	// Group the central agents join, created if needed. Default "central".
	Group string
	// Listen is the HTTP address of /status and /healthz. Default
	// "127.0.0.1:0".
	Listen string
	// PollInterval is how often each owned task is polled. Default 10s.
	PollInterval time.Duration
	// TasksGroup: every live member of this group is a task, polled at its
	// "status_url" capability. Empty: only Tasks. (The CLI's default is
	// "compute".)
	TasksGroup string
	// Tasks are static task ids, split the same way.
	Tasks []string
	// Output receives one JSON line (a Record) per poll. Default: stdout.
	Output io.Writer
	// Algorithm is the hash ring; every central agent must use the same.
	// Default hashring.Default.
	Algorithm hashring.Algorithm
	// Capabilities are added to the agent's own (status_url, version); a
	// "weight" integer gives it a larger share.
	Capabilities map[string]any
	// Logger receives the agent's log. Default: none.
	Logger *zap.Logger
	// Ready, if set, is called once the agent has joined and serves, with
	// the URL of its /status.
	Ready func(statusURL string)
	// Metrics, if set, observes the session (unless Session.Observer is
	// set), follows both groups' members and this agent's share of the
	// tasks, and is served on GET /metrics.
	Metrics *metrics.Metrics
}

// Record is one poll, written as a JSON line.
type Record struct {
	Time  time.Time `json:"time"`
	Agent string    `json:"agent"`
	Task  string    `json:"task"`
	OK    bool      `json:"ok"`
	// Status is what the task answered: a compute agent's /status body, or
	// "static" for a static task.
	Status     json.RawMessage `json:"status,omitempty"`
	Error      string          `json:"error,omitempty"`
	DurationMS float64         `json:"duration_ms"`
}

// Status is the body of GET /status.
type Status struct {
	Member string `json:"member"`
	Group  string `json:"group"`
	// Assigned are the ids of the tasks this agent owns now, sorted.
	Assigned []string `json:"assigned"`
	// Members are the central agents this agent sees, sorted.
	Members []string `json:"members"`
	// Leader leads the central group ("" when nobody does).
	Leader     string    `json:"leader"`
	TasksTotal int       `json:"tasks_total"`
	Algorithm  string    `json:"algorithm"`
	Polls      int64     `json:"polls"`
	LastPoll   time.Time `json:"last_poll,omitzero"`
}

type task struct {
	id     string
	url    string // a member's status_url
	static bool
}

type agent struct {
	o      Options
	sg     *servicegroup.ServiceGroup
	part   *partition.Partitioner
	tasksV *servicegroup.View // the tasks group in memory, once it exists
	log    *zap.SugaredLogger
	client *http.Client
	outMu  sync.Mutex
	out    *json.Encoder

	splitChanged chan struct{}

	mu       sync.Mutex
	tasks    []task // every task, sorted by id, as last read
	groupErr bool   // the last read of the tasks group failed
	assigned []task
	split    string // one-line summary of the whole split
	polls    int64
	lastPoll time.Time
}

// Run joins the central group, and polls its share of the tasks every poll
// interval until ctx ends; then it leaves the group and returns nil. It
// returns an error if it cannot start.
func Run(ctx context.Context, o Options) error {
	if o.Group == "" {
		o.Group = DefaultGroup
	}
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.Output == nil {
		o.Output = os.Stdout
	}
	if o.Algorithm == "" {
		o.Algorithm = hashring.Default
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Session.Member == "" {
		o.Session.Member = host.Hostname()
	}
	if o.Session.Logger == nil {
		o.Session.Logger = o.Logger
	}
	if o.Metrics != nil && o.Session.Observer == nil {
		o.Session.Observer = o.Metrics
	}
	a := &agent{
		o:            o,
		log:          o.Logger.Sugar().With("agent", "central", "member", o.Session.Member),
		client:       &http.Client{Timeout: min(o.PollInterval, 5*time.Second)},
		out:          json.NewEncoder(o.Output),
		splitChanged: make(chan struct{}, 1),
	}

	ln, statusURL, err := host.Listen(o.Listen, "/status")
	if err != nil {
		return fmt.Errorf("central agent: %w", err)
	}
	defer ln.Close()
	if a.sg, err = servicegroup.Open(ctx, o.Session); err != nil {
		return fmt.Errorf("central agent: %w", err)
	}
	caps := servicegroup.Capabilities{"version": buildinfo.Version()}
	for k, v := range o.Capabilities {
		caps[k] = v
	}
	caps["status_url"] = statusURL
	if err := a.sg.JoinOrCreate(ctx, o.Group, caps); err != nil {
		_ = a.sg.Close(context.Background())
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("central agent: join %q: %w", o.Group, err)
	}
	a.part, err = partition.New(ctx, a.sg, o.Group,
		partition.WithAlgorithm(o.Algorithm), partition.WithLogger(o.Logger))
	if err != nil {
		_ = host.Leave(a.sg, o.Group)
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("central agent: %w", err)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		host.WriteJSON(w, a.status(r.Context()))
	})
	mux.HandleFunc("GET /healthz", host.Healthz(a.sg, o.Group))
	if o.Metrics != nil {
		mux.Handle("GET /metrics", o.Metrics.Handler())
	}

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	serveErr := make(chan error, 1)
	wg.Add(2)
	go func() {
		defer wg.Done()
		serveErr <- host.Serve(ctx, ln, mux)
		cancel() // a failed server stops the agent
	}()
	go func() {
		defer wg.Done()
		a.lead(ctx)
	}()
	for _, g := range slices.Compact([]string{o.Group, o.TasksGroup}) {
		if o.Metrics != nil && g != "" {
			wg.Add(1)
			go func() {
				defer wg.Done()
				o.Metrics.Follow(ctx, a.sg, g)
			}()
		}
	}

	a.log.Infow("central agent up", "group", o.Group, "status_url", statusURL,
		"tasks_group", o.TasksGroup, "static_tasks", len(o.Tasks),
		"poll_interval", o.PollInterval.String(), "algorithm", o.Algorithm)
	if o.Ready != nil {
		o.Ready(statusURL)
	}
	a.loop(ctx)
	cancel()
	wg.Wait()
	a.part.Close()
	if a.tasksV != nil {
		a.tasksV.Close()
	}
	if err := host.Leave(a.sg, o.Group); err != nil {
		a.log.Warnw("leaving the group failed; the backend drops the member after its TTL", "error", err)
	} else {
		a.log.Infow("left the group", "group", o.Group)
	}
	if err := <-serveErr; err != nil {
		return fmt.Errorf("central agent: %w", err)
	}
	return nil
}

// loop recomputes the assignment on every change of the central group and
// before every poll, and polls the owned tasks every interval.
func (a *agent) loop(ctx context.Context) {
	t := time.NewTicker(a.o.PollInterval)
	defer t.Stop()
	a.refresh(ctx)
	a.poll(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.part.Changed():
			a.refresh(ctx)
		case <-t.C:
			a.refresh(ctx)
			a.poll(ctx)
		}
	}
}

// refresh reads the tasks and recomputes this agent's share and the split.
func (a *agent) refresh(ctx context.Context) {
	tasks, ok := a.readTasks(ctx)
	ring := a.part.Ring()
	a.mu.Lock()
	if !ok { // keep the group's tasks last read; a blip must not drop them
		tasks = a.tasks
	}
	a.tasks, a.groupErr = tasks, !ok
	owners := map[string][]string{}
	var mine []task
	for _, t := range tasks {
		owner, _ := ring.Owner([]byte(t.id))
		owners[owner] = append(owners[owner], t.id)
		if owner == a.sg.Member() {
			mine = append(mine, t)
		}
	}
	changed := !slices.Equal(ids(mine), ids(a.assigned))
	if a.o.Metrics != nil {
		a.o.Metrics.SetPartition(a.o.Group, len(mine), changed)
	}
	a.assigned = mine
	split := summary(len(tasks), ring, owners)
	splitChanged := split != a.split
	a.split = split
	a.mu.Unlock()
	if changed {
		a.log.Infow("assignment changed", "assigned", ids(mine), "tasks_total", len(tasks))
	}
	if splitChanged {
		select {
		case a.splitChanged <- struct{}{}:
		default:
		}
	}
}

func summary(n int, ring *hashring.Ring, owners map[string][]string) string {
	var b strings.Builder
	nodes := ring.Nodes()
	fmt.Fprintf(&b, "%s over %s:", plural(n, "task"), plural(len(nodes), "central agent"))
	for _, node := range nodes {
		fmt.Fprintf(&b, " %s=[%s]", node.Name, strings.Join(owners[node.Name], " "))
	}
	if len(owners[""]) > 0 {
		fmt.Fprintf(&b, " unowned=[%s]", strings.Join(owners[""], " "))
	}
	return b.String()
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func ids(ts []task) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.id
	}
	return out
}

// readTasks lists the tasks: the tasks group's live members and the static
// ones. ok is false when the group could not be read.
func (a *agent) readTasks(ctx context.Context) (tasks []task, ok bool) {
	seen := map[string]bool{}
	ok = true
	if g := a.o.TasksGroup; g != "" {
		// Read from a View of the group (no round trip per refresh); it is
		// made once the group exists, and says when it is stale.
		var ms []servicegroup.Member
		var err error
		if a.tasksV == nil {
			rctx, cancel := context.WithTimeout(ctx, a.client.Timeout)
			a.tasksV, err = a.sg.View(ctx, g)
			if err == nil {
				err = a.tasksV.Synced(rctx)
			}
			cancel()
		}
		if a.tasksV != nil && err == nil {
			ms, err = a.tasksV.Members()
		}
		switch {
		case errors.Is(err, servicegroup.ErrGroupNotFound):
			// No compute agent yet.
		case err != nil:
			if ctx.Err() == nil {
				a.log.Warnw("cannot list the tasks group; keeping the last list", "group", g, "error", err)
			}
			return nil, false
		}
		for _, m := range ms {
			url, _ := m.Capabilities["status_url"].(string)
			tasks = append(tasks, task{id: m.ID, url: url})
			seen[m.ID] = true
		}
	}
	for _, id := range a.o.Tasks {
		if !seen[id] {
			seen[id] = true
			tasks = append(tasks, task{id: id, static: true})
		}
	}
	sort.Slice(tasks, func(i, j int) bool { return tasks[i].id < tasks[j].id })
	return tasks, ok
}

func (a *agent) status(ctx context.Context) Status {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	leader, err := a.sg.Leader(ctx, a.o.Group)
	if err != nil {
		leader = ""
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	st := Status{
		Member:     a.sg.Member(),
		Group:      a.o.Group,
		Assigned:   ids(a.assigned),
		Members:    a.part.Members(),
		Leader:     leader,
		TasksTotal: len(a.tasks),
		Algorithm:  string(a.o.Algorithm),
		Polls:      a.polls,
		LastPoll:   a.lastPoll.UTC(),
	}
	sort.Strings(st.Assigned)
	return st
}
