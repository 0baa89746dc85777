// Package shim supervises one job. The host agent starts a shim per job
// (the pier binary re-executed as `pier shim`, in its own session) so that
// the job outlives the agent: the shim owns the job's stdio, writes its
// output to the job's log files, and records its pid and exit status in
// the job's directory. The agent talks to a running shim over a unix socket
// (status, signal, wait for exit) and reads the files of one that has
// finished, so an agent that was killed and restarted re-adopts every job
// and learns the real exit code of one that ended while it was away.
//
// The shim also owns the job's input. A job configured with Stdin gets a
// pipe as its stdin, one with a TTY a pty (whose master the runtime hands
// over); GET /attach on the socket upgrades the connection to the framed
// protocol of api/attach.go, which the agent splices through to its own
// API. Output keeps going to the log, and is also sent, as frames, to the
// one client attached at a time. A job with Stdin or a TTY does not start
// until its first client attaches (or AttachWait passes, after which a
// pipe stdin reads EOF), so `pier host run` sees all of its output, and
// the terminal has the client's size from the first instruction on
// (runtime.Spec.ConsoleSize). Without a TTY, input ends when the client
// says so or goes away; a terminal stays for the next client, and end of
// input is typed as ^D. After the job ends the attached client gets the
// exit as the last frame.
//
// A job directory holds: config.json (what to run, written by the agent),
// started.json (pid and start time), exit.json (how it ended) and log/.
// The socket lives elsewhere, at a short path, because unix socket paths
// are limited to 108 bytes.
package shim
