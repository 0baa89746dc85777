package agent

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/pierpaas/pier/host/jobnet"
	"github.com/pierpaas/pier/host/shim"
	"github.com/pierpaas/pier/runtime"
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
	// What the runtime could not account for (its state was lost); the
	// data directory itself stays mounted, if it is a mount.
	mounts, _ := runtime.MountsUnder(dataDir)
	for _, m := range slices.Backward(mounts) {
		if m != dataDir {
			syscall.Unmount(m, syscall.MNT_DETACH)
		}
	}
	jobnet.ReleaseAll(NetNSDir(dataDir))
	jobnet.Remove(jobnet.TagFor(dataDir))
	for _, d := range RunDirs(dataDir) {
		os.RemoveAll(d)
	}
}
