//go:build unix

package runtime

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// SignalName is the conventional name of sig, such as "SIGKILL".
func SignalName(sig syscall.Signal) string {
	if n := unix.SignalName(sig); n != "" {
		return n
	}
	return fmt.Sprintf("SIG%d", int(sig))
}

// exitFromStatus turns a wait status into an Exit.
func exitFromStatus(ws syscall.WaitStatus) Exit {
	if ws.Signaled() {
		return Exit{Code: 128 + int(ws.Signal()), Signal: SignalName(ws.Signal())}
	}
	return Exit{Code: ws.ExitStatus()}
}
