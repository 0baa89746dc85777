package runtime

import (
	"path"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/pierpaas/pier/runtime/pid1"
)

// capabilities is the whole capability set of a job: enough for a root
// process to own files and drop to another user (images whose entrypoint
// starts as root and steps down), nothing that reaches the kernel, the
// network or other processes. NET_BIND_SERVICE is left out on purpose: a
// job sharing the host's network (an operator's opt-in) must never take the
// router's 80 and 443. A job running as the app user
// ends up with none of these in effect at all, since they are neither
// ambient nor inheritable and do not survive its execve as a non-root user.
var capabilities = []string{
	"CAP_CHOWN",
	"CAP_DAC_OVERRIDE",
	"CAP_FOWNER",
	"CAP_FSETID",
	"CAP_KILL",
	"CAP_SETGID",
	"CAP_SETUID",
}

// Docker's defaults: /proc and /sys files that leak host information or
// let a process poke at the kernel are hidden or made read-only.
var (
	maskedPaths = []string{
		"/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/sched_debug", "/proc/scsi", "/proc/timer_list",
		"/proc/timer_stats", "/sys/devices/virtual/powercap", "/sys/firmware",
	}
	readonlyPaths = []string{
		"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
	}
)

// bundlePaths are the host paths of one job's bundle that the OCI config
// refers to.
type bundlePaths struct {
	etc       string   // dir with the generated hosts, hostname, resolv.conf
	tmp       string   // dir bound at /tmp, on the job's tmpfs
	hostBinds []string // host dirs of the stack bound at the same path (/usr, …)
	app       string   // bound at /app: AppDir, or an overlay on it if Writable

	// users are the job's own /etc/passwd and /etc/group (users_linux.go).
	users []specs.Mount
}

// ociSpec is the config.json of a job. Its root is the bundle's rootfs,
// the overlay that prepare mounts.
func (r *Runc) ociSpec(s Spec, p bundlePaths) *specs.Spec {
	u, g := s.user()
	uid, gid := uint32(u), uint32(g)
	mounts := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		bind(p.tmp, "/tmp", false),
		bind(path.Join(p.etc, "hosts"), "/etc/hosts", true),
		bind(path.Join(p.etc, "hostname"), "/etc/hostname", true),
		bind(path.Join(p.etc, "resolv.conf"), "/etc/resolv.conf", true),
	}
	for _, d := range p.hostBinds {
		mounts = append(mounts, bind(d, d, true))
	}
	mounts = append(mounts, p.users...)
	if p.app != "" {
		mounts = append(mounts, bind(p.app, "/app", !s.Writable))
	}
	for _, m := range s.Mounts {
		mounts = append(mounts, bind(m.Source, m.Destination, m.ReadOnly))
	}

	memory := &specs.LinuxMemory{}
	if s.Limits.MemoryMB > 0 {
		limit := s.Limits.MemoryMB << 20
		memory.Limit = &limit
		if r.swapLimit {
			// memory+swap equal to memory: the job never swaps, so the limit
			// is a real one and going over it means the OOM killer.
			memory.Swap = &limit
		}
	}
	var cpu *specs.LinuxCPU
	if m := s.Limits.CPUMillis; m > 0 {
		const period = 100_000 // µs, the kernel's default
		quota := max(m, 10) * period / 1000
		shares := uint64(max(m*1024/1000, 2))
		p := uint64(period)
		cpu = &specs.LinuxCPU{Quota: &quota, Period: &p, Shares: &shares}
	}
	no := false

	// A generous open-file limit, but never above the caller's own hard
	// limit, which runc could not raise with the capabilities it keeps.
	nofile := uint64(65536)
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) == nil {
		nofile = min(nofile, lim.Max)
	}
	pids := s.Limits.PIDs
	var consoleSize *specs.Box
	if s.TTY && s.ConsoleSize.Rows > 0 && s.ConsoleSize.Cols > 0 {
		consoleSize = &specs.Box{Height: uint(s.ConsoleSize.Rows), Width: uint(s.ConsoleSize.Cols)}
	}
	namespaces := []specs.LinuxNamespace{
		{Type: specs.PIDNamespace},
		{Type: specs.MountNamespace},
		{Type: specs.IPCNamespace},
		{Type: specs.UTSNamespace},
		// Hides the host's cgroup paths from /proc/self/cgroup.
		{Type: specs.CgroupNamespace},
	}
	if s.NetNS != "" {
		// Joined, not created: the host agent owns the namespace, its
		// interfaces and its address, and they outlive a restart of the job.
		namespaces = append(namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: s.NetNS})
	}
	return &specs.Spec{
		Version:  specs.Version,
		Hostname: s.Hostname,
		Root:     &specs.Root{Path: "rootfs", Readonly: !s.Writable},
		Process: &specs.Process{
			Terminal:    s.TTY,
			ConsoleSize: consoleSize,
			User:        specs.User{UID: uid, GID: gid},
			Args:        s.processArgs(),
			Env:         s.Env,
			Cwd:         s.Dir,
			Capabilities: &specs.LinuxCapabilities{
				Bounding:  capabilities,
				Effective: capabilities,
				Permitted: capabilities,
			},
			Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: nofile, Soft: nofile}},
			NoNewPrivileges: true,
		},
		Mounts: mounts,
		Linux: &specs.Linux{
			Namespaces:  namespaces,
			CgroupsPath: cgroupPath(s.ID),
			Resources: &specs.LinuxResources{
				// Deny every device; runc adds back the usual harmless ones
				// (null, zero, full, random, urandom, tty, ptmx, pts).
				Devices: []specs.LinuxDeviceCgroup{{Allow: no, Access: "rwm"}},
				Memory:  memory,
				CPU:     cpu,
				Pids:    &specs.LinuxPids{Limit: &pids},
			},
			MaskedPaths:   maskedPaths,
			ReadonlyPaths: readonlyPaths,
			Seccomp:       seccompProfile(),
		},
	}
}

// processArgs is the argv of the job's first process: the command, or
// pier's init running it and reporting on its status pipe.
func (s Spec) processArgs() []string {
	if s.Init == "" {
		return s.Args
	}
	return pid1.Args(s.Init, pid1.StatusFD, s.Args)
}

// bind is a bind mount that never carries set-uid binaries or device nodes
// into the container.
func bind(src, dst string, ro bool) specs.Mount {
	opts := []string{"bind", "nosuid", "nodev"}
	if ro {
		opts = append(opts, "ro")
	}
	return specs.Mount{Destination: dst, Type: "bind", Source: src, Options: opts}
}

// cgroupPath is where runc puts the job in every cgroup hierarchy, under a
// parent of our own so that leftovers are easy to find.
func cgroupPath(id string) string { return "/pier/" + id }
