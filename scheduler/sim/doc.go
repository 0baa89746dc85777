// Package sim is an in-memory cluster for testing and benchmarking the
// scheduler without etcd: it holds hosts, jobs with statuses, formations,
// releases and formation statuses with revisions, hands out snapshots,
// applies plans while checking every guard a real commit would (and can
// drop some of a plan's changes, as transactions lost to conflicts), and
// plays the host agents' part: new jobs run, stopped jobs shut down, and
// jobs end or hosts vanish when a test says so.
package sim
