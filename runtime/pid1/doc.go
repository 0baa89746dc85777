// Package pid1 is the minimal init every container of pier runs as its
// first process (`pier init`, the pier binary the host agent binds into
// containers), as tini and dumb-init are for Docker. The kernel gives
// PID 1 of a PID namespace no default signal actions, so an app that
// installs no SIGTERM handler (python3 -m http.server, sh -c '…', sleep)
// would ignore the SIGTERM of a stop and die only when the grace period
// ends. Under this init the command runs as its child, in a process group
// of its own: the stop signals the init gets go to that group, where they
// have their default actions; the orphans the init adopts are reaped, so
// none stays a zombie; and the init exits as the command did.
//
// An exit code cannot say whether the command was killed by a signal (an
// init cannot die of its own signals), so the runtime that started the
// init may hand it a pipe (--status-fd) on which it writes the command's
// wait status, or why the command could not start, before it exits: the
// job's Exit is then the command's, signal included (WriteStatus,
// ReadStatus).
package pid1
