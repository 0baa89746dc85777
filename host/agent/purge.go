package agent

import (
	"bufio"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/pierpaas/pier/host/shim"
)

// Purge removes what an agent with this data directory leaves running
// outside itself by design (containers, their shims, mounts, its
// directories under /run), for whoever removes a host for good: tests,
// benchmarks, an uninstall. The agent must be stopped; its data directory
// is kept.
func Purge(dataDir string) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if rt, err := NewRuntime("runc", filepath.Join(dataDir, "runtime"), log); err == nil {
		ids, _ := rt.List()
		for _, id := range ids {
			rt.Delete(id)
		}
	}
	shim.KillAll(filepath.Join(dataDir, "jobs"))
	// What the runtime could not account for (its state was lost).
	for _, m := range mountsUnder(dataDir) {
		syscall.Unmount(m, syscall.MNT_DETACH)
	}
	for _, d := range RunDirs(dataDir) {
		os.RemoveAll(d)
	}
}

// mountsUnder lists the mount points below dir, deepest first.
func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			out = append(out, fields[4])
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}
