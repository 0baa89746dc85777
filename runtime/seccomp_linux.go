package runtime

import (
	goruntime "runtime"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// deniedSyscalls fail with EPERM inside a job. A deny list rather than
// Docker's allow list: it is short enough to review, and what it leaves out
// is either harmless or already refused for lack of a capability. Each entry
// is here because it reaches the kernel's most exposed or most privileged
// surface: loading code into it (modules, kexec, bpf), changing the mount
// table or namespaces (a way out of the container), reading other processes
// (ptrace and friends), the keyring (not namespaced), the clock, swap and
// reboot (host-wide), raw I/O ports, file handles that bypass the mount
// (open_by_handle_at was the "shocker" escape), and io_uring and
// userfaultfd, two favourite tools of kernel exploits. Names unknown to an
// architecture are skipped by runc.
var deniedSyscalls = []string{
	"acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "create_module",
	"delete_module", "finit_module", "fsconfig", "fsmount", "fsopen", "fspick",
	"get_kernel_syms", "init_module", "io_uring_enter", "io_uring_register",
	"io_uring_setup", "ioperm", "iopl", "kcmp", "kexec_file_load", "kexec_load",
	"keyctl", "lookup_dcookie", "mount", "mount_setattr", "move_mount",
	"name_to_handle_at", "nfsservctl", "open_by_handle_at", "open_tree",
	"perf_event_open", "pivot_root", "process_vm_readv", "process_vm_writev",
	"ptrace", "query_module", "quotactl", "quotactl_fd", "reboot", "request_key",
	"setns", "settimeofday", "stime", "swapoff", "swapon", "_sysctl", "sysfs",
	"syslog", "umount", "umount2", "unshare", "uselib", "userfaultfd", "ustat",
	"vhangup", "vm86", "vm86old",
}

// namespaceFlags are the clone flags that create namespaces; clone with any
// of them fails, so a job cannot build a user namespace, the usual first
// step from an unprivileged process to kernel attack surface.
var namespaceFlags = []uint64{
	unix.CLONE_NEWNS, unix.CLONE_NEWUTS, unix.CLONE_NEWIPC, unix.CLONE_NEWUSER,
	unix.CLONE_NEWPID, unix.CLONE_NEWNET, unix.CLONE_NEWCGROUP,
}

func seccompProfile() *specs.LinuxSeccomp {
	eperm, enosys := uint(unix.EPERM), uint(unix.ENOSYS)
	syscalls := []specs.LinuxSyscall{{Names: deniedSyscalls, Action: specs.ActErrno, ErrnoRet: &eperm}}
	// Rules on the same syscall are alternatives, so one rule per flag
	// denies clone when any of them is set. The flags are the first
	// argument on x86 and arm.
	for _, f := range namespaceFlags {
		syscalls = append(syscalls, specs.LinuxSyscall{
			Names:    []string{"clone"},
			Action:   specs.ActErrno,
			ErrnoRet: &eperm,
			Args:     []specs.LinuxSeccompArg{{Index: 0, Value: f, ValueTwo: f, Op: specs.OpMaskedEqual}},
		})
	}
	// clone3 passes its flags in memory, where seccomp cannot look, so it
	// is refused as a whole. ENOSYS rather than EPERM makes the C library
	// fall back to clone, whose flags we can check.
	syscalls = append(syscalls, specs.LinuxSyscall{Names: []string{"clone3"}, Action: specs.ActErrno, ErrnoRet: &enosys})
	return &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		// Every ABI the CPU can make syscalls through is listed, since the
		// rules are compiled per architecture and a 32-bit syscall on a
		// 64-bit kernel would otherwise slip past them.
		Architectures: seccompArches(),
		Syscalls:      syscalls,
	}
}

func seccompArches() []specs.Arch {
	switch goruntime.GOARCH {
	case "amd64":
		return []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}
	case "arm64":
		return []specs.Arch{specs.ArchAARCH64, specs.ArchARM}
	}
	return nil // the native one only
}
