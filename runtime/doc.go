// Package runtime runs one job's process to completion behind the small
// Runtime interface that the host agent's per-job shim uses: Run blocks in
// the foreground, wires the process to the caller's stdio (or hands back a
// pty master), and returns the exit status, including whether the kernel
// killed it for exceeding its memory limit; Delete removes everything a job
// left behind, even after the caller crashed, and List names what is left
// so that a restarted agent can collect garbage. There are three drivers.
// Runc, the default on Linux as root, writes an OCI bundle and drives runc:
// mount, PID, UTS, IPC and cgroup namespaces on the host's network, cgroup
// limits for memory (without swap), CPU and PIDs, no_new_privs, seven
// capabilities for root and none in effect for the default "app" user, a
// seccomp deny list, Docker's masked and read-only /proc paths, and a
// read-only root made with overlayfs either from the host's /usr and /lib*
// over a generated /etc (the "stack"; the host's /etc is never mounted) or
// from unpacked OCI image layers; what a job may write (/tmp, and / and
// /app on request) lives on a size-capped tmpfs of its own. Process runs
// plain child processes without any isolation, for unprivileged
// development only. The fake subpackage is a scripted stand-in for tests of
// the layers above.
package runtime
