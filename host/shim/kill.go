package shim

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// KillAll kills, by pid, every `pier shim` supervising a job under
// jobsDir: for removing a host for good (tests, an uninstall), which must
// work even when its agent is gone.
func KillAll(jobsDir string) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) == 3 && args[1] == "shim" && strings.HasPrefix(args[2], jobsDir+"/") {
			if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
}
