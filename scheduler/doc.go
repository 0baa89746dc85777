// Package scheduler is pier's service scheduler, written as a library so
// that anyone can write another against the same shared state (Omega's
// design: every scheduler sees the whole cluster and commits with
// optimistic concurrency). Reconcile is a pure function from a Snapshot
// (hosts, jobs with their statuses and revisions, formations, releases,
// the time and a seed) to a Plan: jobs to start on chosen hosts, jobs to
// stop, jobs to mark lost, old records to delete, and the jobs it could
// not start with the reason ("3 hosts: 2 lacked memory, 1 missing tag
// disk=ssd"). Placement is a Pipeline of one-method Checkers and Rankers
// run by a Placer that keeps per-host usage incremental and a heap of
// feasible hosts, so placing n jobs on h hosts costs O(h + n log h) per
// process type. Commit writes a plan in guarded store transactions, so a
// plan decided from a stale snapshot, or by a leader that lost its lease,
// commits nothing; the caller re-reads and re-plans. Load reads a
// snapshot from the store. The scheduler is the one writer of job specs
// and desired state, of formation statuses, and, as the one exception to
// the host agent owning job status, of the status `lost` for a job whose
// host vanished: the host cannot report it, and an agent never moves a
// status back from a terminal state.
//
// The same plan runs the ephemeral jobs, which are never restarted: a
// one-off request (api.OneOff under OneOffPrefix, written by a client
// with SubmitOneOff) is placed once through the same pipeline, or waits
// with its reason in its api.OneOffStatus; a cron process type (one with
// a Schedule, enabled by a formation count > 0) runs one job per tick,
// skips a tick while its previous run still goes, and keeps its last
// tick in the formation status, so that a new leader neither runs a tick
// twice nor skips one silently. Their results, the jobs' statuses, are
// removed Config.ResultRetention after the jobs end, never before.
//
// Nothing here is private to pier's own loop: Elect, LoadState, Commit
// (with per-change Guards for jobs that belong to no formation) and the
// Pipeline are what a scheduler of one's own is written with; see
// examples/scheduler.
package scheduler
