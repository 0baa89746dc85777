// Package shim supervises one job. The host agent starts a shim per job
// (the pier binary re-executed as `pier shim`, in its own session) so that
// the job outlives the agent: the shim owns the job's stdio, writes its
// output to the job's log files, and records its pid and exit status in
// the job's directory. The agent talks to a running shim over a unix socket
// (status, signal, wait for exit) and reads the files of one that has
// finished, so an agent that was killed and restarted re-adopts every job
// and learns the real exit code of one that ended while it was away.
//
// A job directory holds: config.json (what to run, written by the agent),
// started.json (pid and start time), exit.json (how it ended) and log/.
// The socket lives elsewhere, at a short path, because unix socket paths
// are limited to 108 bytes.
package shim
