// Package selfexec lets a daemon replace itself with another binary in
// the same process: the daemon's command stops as on SIGTERM (its own
// orderly shutdown), then main executes the new binary with the same
// arguments. The PID stays, so a supervisor (systemd, a test harness)
// sees one long-lived process, and a host agent's shims, started with
// Setsid and adopted again by the new agent, keep their parent.
package selfexec

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// EnvReexec is set in the environment of a re-executed process.
const EnvReexec = "PIER_REEXEC"

var (
	mu      sync.Mutex
	cancel  context.CancelFunc
	pending string
)

// Context returns a context that ends with ctx or when Request is called.
func Context(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, c := context.WithCancel(ctx)
	mu.Lock()
	cancel = c
	mu.Unlock()
	return ctx, c
}

// Request asks for the process to become the binary at path once its
// command has shut down.
func Request(path string) {
	mu.Lock()
	defer mu.Unlock()
	pending = path
	if cancel != nil {
		cancel()
	}
}

// Pending is the binary Request asked for, "" when none.
func Pending() string {
	mu.Lock()
	defer mu.Unlock()
	return pending
}

// Exec replaces the process with the binary at path, with the same
// arguments and environment; it returns only on failure.
func Exec(path string) error {
	env := append(os.Environ(), EnvReexec+"=1")
	return syscall.Exec(path, append([]string{path}, os.Args[1:]...), env)
}

// ReapInherited waits, in the background, for the children a previous
// binary of this process started (a host agent's shims, an upgrade's
// guard): they are this process's children still, and nothing else
// would reap them when they end. It does nothing in a process that was
// not re-executed, whose children are all its own.
func ReapInherited() {
	if os.Getenv(EnvReexec) == "" {
		return
	}
	self := os.Getpid()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if parentOf(pid) == self {
			go func() {
				var ws syscall.WaitStatus
				for {
					if _, err := syscall.Wait4(pid, &ws, 0, nil); err != syscall.EINTR {
						return
					}
				}
			}()
		}
	}
}

func parentOf(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}
