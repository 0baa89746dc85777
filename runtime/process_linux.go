package runtime

import (
	"errors"

	"golang.org/x/sys/unix"
)

// waitUnreaped blocks until the child pid exits but leaves it a zombie, so
// that its pid, and the process group named after it, cannot be reused yet.
func waitUnreaped(pid int) bool {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			return err == nil
		}
	}
}
