// Package health probes a job's ports and tells the host agent when the
// answer changes, so the agent registers a job in discovery only while it
// serves and can report (or kill) one that stops. A Check is a TCP connect
// or an HTTP GET, made every Interval with a Timeout; Run reports only
// transitions. A job starts in the Unknown state and is Healthy from its
// first successful probe, because the sooner a new job is in discovery the
// sooner a deploy can move on (for the same reason it is probed more often
// while Unknown, though the failures of those extra probes do not count);
// it turns Unhealthy after Threshold failures in a row and Healthy again
// after Threshold successes in a row. Failures during StartGrace, while the
// job is still booting, do not count. The decisions are a small state
// machine with no I/O, tested on its own; the probes are the only part
// that touches the network.
package health
