package shim

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// pids returns the pids of the `pier shim DIR` processes on this machine
// whose DIR match accepts.
func pids(match func(dir string) bool) []int {
	var out []int
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) == 3 && args[1] == "shim" && match(args[2]) {
			if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil {
				out = append(out, pid)
			}
		}
	}
	return out
}

// Running reports whether a shim supervises the job in jobDir: after the
// agent or the machine restarted, a job whose shim is gone needs a new one.
func Running(jobDir string) bool {
	return len(pids(func(dir string) bool { return dir == jobDir })) > 0
}

// KillAll kills, by pid, every `pier shim` supervising a job under
// jobsDir: for removing a host for good (tests, an uninstall), which must
// work even when its agent is gone.
func KillAll(jobsDir string) {
	for _, pid := range pids(func(dir string) bool { return strings.HasPrefix(dir, jobsDir+"/") }) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}
