package agent

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/pierpaas/pier/host/shim"
)

// Purge removes what an agent with this data directory leaves running
// outside itself by design (containers, their shims, its directories
// under /run), for whoever removes a host for good: tests, benchmarks,
// an uninstall. The agent must be stopped; its data directory is kept.
func Purge(dataDir string) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if rt, err := NewRuntime("runc", filepath.Join(dataDir, "runtime"), log); err == nil {
		ids, _ := rt.List()
		for _, id := range ids {
			rt.Delete(id)
		}
	}
	shim.KillAll(filepath.Join(dataDir, "jobs"))
	for _, d := range RunDirs(dataDir) {
		os.RemoveAll(d)
	}
}
