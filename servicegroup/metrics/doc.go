// Package metrics is muster's Prometheus instrumentation: one set of
// collectors that a program registers in its own registry and sets as the
// Observer of its ServiceGroups, so the agents' /metrics and a library
// user's dashboards show the same series.
//
// Series (every label from a small, fixed set; group names are the only
// free label, and operators name few groups; member ids never are labels):
//
//	muster_session_state{state}                      gauge: sessions up / lost (being re-opened)
//	muster_heartbeat_duration_seconds                histogram: heartbeat round trips
//	muster_heartbeat_failures_total                  counter: heartbeats that failed
//	muster_session_reopens_total{reason}             counter: lost sessions replaced (backend_ended, deadline, refused)
//	muster_plugin_starts_total{plugin}               counter: plugin processes started
//	muster_plugin_restarts_total{plugin}             counter: ... to replace an earlier one
//	muster_plugin_exits_total{plugin,reason}         counter: plugin sessions ended (lost, closed)
//	muster_backend_call_duration_seconds{op,outcome} histogram: SPI calls (outcome ok, answer, session_lost, timeout, error)
//	muster_members{group,state}                      gauge: followed groups' members up / forced_down / down
//	muster_locks_held                                gauge: locks held (elections aside)
//	muster_locks_lost_total                          counter: locks lost without Release
//	muster_leader{group}                             gauge: 1 while this process leads group
//	muster_leadership_changes_total{group,change}    counter: won, resigned, lost
//	muster_partition_keys_owned{group}               gauge: keys this process owns in group's ring
//	muster_partition_rebalances_total{group}         counter: changes of this process's share
//
// "down" members are those a follower (Follow) saw live and no longer
// sees: they left or their session expired. The backend keeps no record of
// a member after it is gone, so a process only knows the ones it saw, for
// FollowOptions.ForgetAfter (15 minutes by default).
package metrics
