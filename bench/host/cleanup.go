package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/host/agent"
	"github.com/pierpaas/pier/host/jobnet"
	"github.com/pierpaas/pier/runtime"
	"github.com/pierpaas/pier/store"
)

// cleanup leaves the machine as it found it, whatever state the run
// stopped in, and returns what it could not clean up. It is written to
// work from any point: no cluster, no agent, a dead agent with running
// shims, or everything still up.
func (b *bench) cleanup() []string {
	var problems []string
	note := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Stop the jobs the way a scheduler would, while the agent runs.
	b.mu.Lock()
	var ids []string
	for id := range b.jobs {
		ids = append(ids, id)
	}
	b.mu.Unlock()
	if len(ids) > 0 && b.cl != nil && b.host != nil && b.host.alive() {
		progress("cleanup: stopping %d jobs", len(ids))
		b.stopAll(ctx, ids)
	}

	// The agent: its jobs keep running without it, so anything left is
	// taken care of below.
	if !b.host.stop(5 * time.Second) {
		note("pier host (pid %d) does not die", b.host.pid())
	}
	for range 50 {
		pids := shimPIDs(b.jobsDir())
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Containers: whatever either runc root still holds of this run.
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if b.rt == nil {
		b.rt, _ = runtime.NewRunc(runtime.RuncOptions{StateDir: filepath.Join(b.hostDir, "runtime"), Log: quiet})
	}
	if b.bareRt == nil {
		b.bareRt, _ = runtime.NewRunc(runtime.RuncOptions{StateDir: filepath.Join(b.tmp, "bare"), Root: bareRoot, Log: quiet})
	}
	for _, rt := range []*runtime.Runc{b.rt, b.bareRt} {
		if rt == nil {
			continue
		}
		for _, id := range b.ours(rt) {
			if err := rt.Delete(id); err != nil {
				note("delete container %s: %v", id, err)
			}
		}
		if left := b.ours(rt); len(left) > 0 {
			note("containers left: %v", left)
		}
	}

	// What the agent leaves by design (it keeps jobs' networks across its
	// restarts): the jobs' namespaces, the gateway and the policy table.
	if b.o.network == "job" {
		nsDir := agent.NetNSDir(b.hostDir)
		jobnet.ReleaseAll(nsDir)
		jobnet.Remove(jobnet.TagFor(b.hostDir))
		if left, _ := os.ReadDir(nsDir); len(left) > 0 {
			note("job network namespaces left in %s: %d", nsDir, len(left))
		} else {
			os.Remove(nsDir)
		}
		tag := jobnet.TagFor(b.hostDir)
		if links, err := netlink.LinkList(); err == nil {
			for _, l := range links {
				if name := l.Attrs().Name; name == "pg"+tag || strings.HasPrefix(name, "pv"+tag) {
					note("job network interface left: %s", name)
				}
			}
		}
	}

	if b.cl != nil {
		b.cl.Close()
	}
	if !b.server.stop(10 * time.Second) {
		note("pier server (pid %d) does not die", b.server.pid())
	}

	if left := shimPIDs(b.jobsDir()); len(left) > 0 {
		note("shims left: pids %v", left)
	}
	cgroups, _ := filepath.Glob("/sys/fs/cgroup/*/pier/" + b.prefix + "-*")
	v2, _ := filepath.Glob("/sys/fs/cgroup/pier/" + b.prefix + "-*")
	if left := append(cgroups, v2...); len(left) > 0 {
		note("cgroups left: %v", left)
	}
	// Never remove through a mount point: a container's bind mount of a
	// host directory would be emptied with it.
	runtime.UnmountUnder(b.tmp)
	if left, _ := runtime.MountsUnder(b.tmp); len(left) > 0 {
		note("mounts left under %s, not removed: %v", b.tmp, left)
	} else if err := os.RemoveAll(b.tmp); err != nil {
		note("remove %s: %v", b.tmp, err)
	}
	return problems
}

// stopAll sets every job to desired shutdown, waits until each has ended
// (or a while), and removes their records, so that the agent removes the
// jobs' files.
func (b *bench) stopAll(ctx context.Context, ids []string) {
	for _, id := range ids {
		b.stopJob(ctx, id)
	}
	deadline := time.Now().Add(15 * time.Second)
	pending := slices.Clone(ids)
	for len(pending) > 0 && time.Now().Before(deadline) {
		var still []string
		for _, id := range pending {
			gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			st, _, err := store.Get[api.JobStatus](gctx, b.cl.Etcd, statusKey(id))
			cancel()
			// No status yet after the stop: the agent never started it.
			if err == nil && !st.State.Terminal() {
				still = append(still, id)
			}
		}
		pending = still
		if len(pending) > 0 {
			time.Sleep(200 * time.Millisecond)
		}
	}
	for _, id := range ids {
		b.removeJob(ctx, id)
	}
	// Give the agent a moment to forget them (it removes their files).
	time.Sleep(500 * time.Millisecond)
}

// ours lists the containers of this run that rt holds.
func (b *bench) ours(rt *runtime.Runc) []string {
	ids, _ := rt.List()
	var out []string
	for _, id := range ids {
		if strings.HasPrefix(id, b.prefix+"-") {
			out = append(out, id)
		}
	}
	return out
}
