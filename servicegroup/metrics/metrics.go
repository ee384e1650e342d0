package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/musterhq/muster/servicegroup"
)

// Metrics is muster's Prometheus collectors. It is a prometheus.Collector
// (register it in any registry) and a servicegroup.Observer (set it as
// Config.Observer of one or many ServiceGroups); SetMembers, SetPartition
// and Follow feed the group gauges. The zero value is not usable: call New.
type Metrics struct {
	sessionState     *prometheus.GaugeVec
	heartbeat        prometheus.Histogram
	heartbeatFails   prometheus.Counter
	reopens          *prometheus.CounterVec
	pluginStarts     *prometheus.CounterVec
	pluginRestarts   *prometheus.CounterVec
	pluginExits      *prometheus.CounterVec
	backendCalls     *prometheus.HistogramVec
	members          *prometheus.GaugeVec
	locksHeld        prometheus.Gauge
	locksLost        prometheus.Counter
	leader           *prometheus.GaugeVec
	leaderChanges    *prometheus.CounterVec
	partitionOwned   *prometheus.GaugeVec
	partitionChanges *prometheus.CounterVec

	all []prometheus.Collector
}

// Label values, all from bounded sets.
const (
	StateUp         = "up"          // muster_members: live and not forced down
	StateDown       = "down"        // seen live by this process, gone since
	StateForcedDown = "forced_down" // live, forced down by an operator
)

// latencyBuckets span a local directory (~250 µs) to a backend about to
// time out (10 s).
var latencyBuckets = []float64{.00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// New returns a fresh set of collectors, registered nowhere.
func New() *Metrics {
	m := &Metrics{
		sessionState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "muster_session_state",
			Help: "Sessions of this process in each state: up (live, heartbeating) or lost (being re-opened).",
		}, []string{"state"}),
		heartbeat: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "muster_heartbeat_duration_seconds",
			Help:    "Round trip of session heartbeats, failed ones included.",
			Buckets: latencyBuckets,
		}),
		heartbeatFails: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "muster_heartbeat_failures_total",
			Help: "Heartbeats that returned an error (the session may still be live until its deadline).",
		}),
		reopens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "muster_session_reopens_total",
			Help: "Lost sessions replaced by a new one, by why the old one was lost: backend_ended, deadline, refused.",
		}, []string{"reason"}),
		pluginStarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "muster_plugin_starts_total",
			Help: "Plugin processes started (each session is one).",
		}, []string{"plugin"}),
		pluginRestarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "muster_plugin_restarts_total",
			Help: "Plugin processes started to replace an earlier one.",
		}, []string{"plugin"}),
		pluginExits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "muster_plugin_exits_total",
			Help: "Plugin sessions ended, by reason: lost (died, unhealthy, session ended) or closed.",
		}, []string{"plugin", "reason"}),
		backendCalls: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "muster_backend_call_duration_seconds",
			Help:    "Calls to the backend session by operation and outcome (ok, answer, session_lost, timeout, error).",
			Buckets: latencyBuckets,
		}, []string{"op", "outcome"}),
		members: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "muster_members",
			Help: "Members of each followed group: up, forced_down (live but fenced by an operator), down (seen live by this process, gone since).",
		}, []string{"group", "state"}),
		locksHeld: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "muster_locks_held",
			Help: "Locks (elections aside) this process holds.",
		}),
		locksLost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "muster_locks_lost_total",
			Help: "Locks lost without Release: session lost or lock broken.",
		}),
		leader: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "muster_leader",
			Help: "1 while this process leads the group.",
		}, []string{"group"}),
		leaderChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "muster_leadership_changes_total",
			Help: "Changes of this process's leadership by kind: won, resigned, lost.",
		}, []string{"group", "change"}),
		partitionOwned: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "muster_partition_keys_owned",
			Help: "Partition keys (tasks) this process owns in the group's hash ring.",
		}, []string{"group"}),
		partitionChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "muster_partition_rebalances_total",
			Help: "Times this process's share of the group's keys changed.",
		}, []string{"group"}),
	}
	for _, s := range []servicegroup.SessionState{servicegroup.SessionUp, servicegroup.SessionLost} {
		m.sessionState.WithLabelValues(string(s))
	}
	for _, r := range []servicegroup.LossReason{servicegroup.LossBackendEnded, servicegroup.LossDeadline, servicegroup.LossRefused} {
		m.reopens.WithLabelValues(string(r))
	}
	m.all = []prometheus.Collector{m.sessionState, m.heartbeat, m.heartbeatFails, m.reopens,
		m.pluginStarts, m.pluginRestarts, m.pluginExits, m.backendCalls, m.members,
		m.locksHeld, m.locksLost, m.leader, m.leaderChanges, m.partitionOwned, m.partitionChanges}
	return m
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.all {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.all {
		c.Collect(ch)
	}
}

// Handler serves m in the Prometheus text format, together with
// prometheus.DefaultGatherer (the Go runtime's and the process's metrics:
// go_goroutines, process_resident_memory_bytes, ...). Do not also register
// m in prometheus.DefaultRegisterer, or its metrics are served twice (an
// error). Responses are not compressed: a scrape is a few kilobytes, and a
// compressor costs an agent more memory than the bytes are worth.
func (m *Metrics) Handler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	return promhttp.HandlerFor(prometheus.Gatherers{prometheus.DefaultGatherer, reg},
		promhttp.HandlerOpts{DisableCompression: true})
}

// SessionState implements servicegroup.Observer.
func (m *Metrics) SessionState(from, to servicegroup.SessionState) {
	if from != "" {
		m.sessionState.WithLabelValues(string(from)).Dec()
	}
	if to != "" {
		m.sessionState.WithLabelValues(string(to)).Inc()
	}
}

// Heartbeat implements servicegroup.Observer.
func (m *Metrics) Heartbeat(took time.Duration, err error) {
	m.heartbeat.Observe(took.Seconds())
	if err != nil {
		m.heartbeatFails.Inc()
	}
}

// SessionReopened implements servicegroup.Observer.
func (m *Metrics) SessionReopened(why servicegroup.LossReason) {
	m.reopens.WithLabelValues(string(why)).Inc()
}

// BackendCall implements servicegroup.Observer.
func (m *Metrics) BackendCall(op string, took time.Duration, outcome servicegroup.Outcome) {
	m.backendCalls.WithLabelValues(op, string(outcome)).Observe(took.Seconds())
}

// LockHeld implements servicegroup.Observer.
func (m *Metrics) LockHeld(held, lost bool) {
	switch {
	case held:
		m.locksHeld.Inc()
	default:
		m.locksHeld.Dec()
		if lost {
			m.locksLost.Inc()
		}
	}
}

// Leadership implements servicegroup.Observer.
func (m *Metrics) Leadership(group string, held, lost bool) {
	change := "won"
	switch {
	case held:
		m.leader.WithLabelValues(group).Set(1)
	case lost:
		change = "lost"
		m.leader.WithLabelValues(group).Set(0)
	default:
		change = "resigned"
		m.leader.WithLabelValues(group).Set(0)
	}
	m.leaderChanges.WithLabelValues(group, change).Inc()
}

// PluginProcess implements servicegroup.Observer.
func (m *Metrics) PluginProcess(plugin string, started, restart, lost bool) {
	switch {
	case started:
		m.pluginStarts.WithLabelValues(plugin).Inc()
		if restart {
			m.pluginRestarts.WithLabelValues(plugin).Inc()
		} else {
			m.pluginRestarts.WithLabelValues(plugin) // show 0 from the start
		}
	case lost:
		m.pluginExits.WithLabelValues(plugin, "lost").Inc()
	default:
		m.pluginExits.WithLabelValues(plugin, "closed").Inc()
	}
}

// SetMembers sets the member gauges of group.
func (m *Metrics) SetMembers(group string, up, down, forcedDown int) {
	m.members.WithLabelValues(group, StateUp).Set(float64(up))
	m.members.WithLabelValues(group, StateDown).Set(float64(down))
	m.members.WithLabelValues(group, StateForcedDown).Set(float64(forcedDown))
}

// SetPartition sets how many of group's keys this process owns;
// rebalanced counts a change of its share.
func (m *Metrics) SetPartition(group string, owned int, rebalanced bool) {
	m.partitionOwned.WithLabelValues(group).Set(float64(owned))
	c := m.partitionChanges.WithLabelValues(group)
	if rebalanced {
		c.Inc()
	}
}

var _ servicegroup.Observer = (*Metrics)(nil)
