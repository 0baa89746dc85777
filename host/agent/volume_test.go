package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/host/joblog"
	"github.com/pierpaas/pier/host/shim"
	"github.com/pierpaas/pier/host/volume"
	"github.com/pierpaas/pier/store"
	"github.com/pierpaas/pier/store/storetest"
)

// volumeHost is a runc host whose volumes are unmounted, and checked to
// be, when the test ends, pass or fail: no mount and no loop device of
// its data directory is left behind.
func volumeHost(t *testing.T, c *storetest.Cluster, id string) Config {
	var cfg Config
	// Registered first, so it runs last: after the agent is closed and
	// its containers are gone.
	t.Cleanup(func() {
		if cfg.DataDir == "" {
			return
		}
		if err := (&volume.Manager{Dir: cfg.volumesDir()}).UnmountAll(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if left := leftovers(cfg.DataDir); len(left) > 0 {
			t.Errorf("left behind: %v", left)
		}
	})
	cfg = runcHost(t, c, id)
	return cfg
}

// leftovers are the mounts under dir and the loop devices backed by a
// file under it.
func leftovers(dir string) []string {
	var out []string
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(mi), "\n") {
		if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], dir) {
			out = append(out, "mount "+f[4])
		}
	}
	files, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, f := range files {
		if b, _ := os.ReadFile(f); strings.HasPrefix(string(b), dir) {
			out = append(out, f+": "+strings.TrimSpace(string(b)))
		}
	}
	return out
}

// reboot is a power cut and a boot: the agent, shims and containers die
// and nothing the host mounted stays mounted.
func reboot(t *testing.T, a *Agent, cfg Config) *Agent {
	t.Helper()
	a.Close()
	if err := powerOff(cfg); err != nil {
		t.Fatal(err)
	}
	if err := (&volume.Manager{Dir: cfg.volumesDir()}).UnmountAll(); err != nil {
		t.Fatal(err)
	}
	return startAgent(t, cfg)
}

// jobLog is a job's output, one line per line.
func jobLog(a *Agent, id string) string {
	var b strings.Builder
	joblog.Read(shim.LogDir(a.jobDir(id)), 0, func(l joblog.Line) error {
		b.WriteString(l.Text + "\n")
		return nil
	})
	return b.String()
}

// runToEnd runs a job on h1 and returns its status and output once it
// ended.
func runToEnd(t *testing.T, c *storetest.Cluster, a *Agent, id, script string, vols ...api.JobVolume) (api.JobStatus, string) {
	t.Helper()
	putJob(t, c, api.Job{ID: id, HostID: "h1", Args: []string{"sh", "-c", script}, Volumes: vols, Resources: api.Resources{MemoryMB: 64}})
	st := waitStatus(t, c, id, func(s api.JobStatus) bool { return s.State.Terminal() })
	return st, jobLog(a, id)
}

// TestVolumeInContainer: a volume is made on first use, mounted
// read-write at its path (the rest of the root stays read-only), owned
// by the job's user, and keeps its data across a job's restart, an
// agent's kill and a reboot. Writing past its cap fails the writer with
// ENOSPC, and neither the host's disk nor another volume notices. It is
// removed only when its record is marked so.
func TestVolumeInContainer(t *testing.T) {
	c := storetest.NewCluster(t, 1)
	cfg := volumeHost(t, c, "h1")
	a := startAgent(t, cfg)
	data := api.JobVolume{ID: "data-1a2b", VolumeSpec: api.VolumeSpec{Name: "data", Path: "/var/lib/data", SizeMB: 16}}
	spare := api.JobVolume{ID: "spare-3c4d", VolumeSpec: api.VolumeSpec{Name: "spare", Path: "/spare", SizeMB: 16}}

	st, out := runToEnd(t, c, a, "first", `
		stat -c 'owner %u' /var/lib/data
		ls -A /var/lib/data | wc -l | sed 's/^/entries /'
		touch /usr/x 2>/dev/null && echo rootfs writable || echo rootfs read-only
		echo one > /var/lib/data/keep && echo spare > /spare/keep && echo wrote`, data, spare)
	for _, want := range []string{"owner 1000", "entries 0", "rootfs read-only", "wrote"} {
		if st.State != api.JobComplete || !strings.Contains(out, want+"\n") {
			t.Fatalf("first job %+v, output:\n%s\nwant %q", st, out, want)
		}
	}
	vs, _, err := store.Get[api.VolumeStatus](context.Background(), c.Client(), store.VolumeStatusPrefix+data.ID)
	if err != nil || vs.State != api.VolumeReady || vs.Host != "h1" {
		t.Errorf("volume status %+v %v", vs, err)
	}

	// Another job of the slot finds it; so does one after a kill of the
	// agent, and one after a reboot, which remounts it.
	if st, out = runToEnd(t, c, a, "second", `cat /var/lib/data/keep; echo two >> /var/lib/data/keep`, data); st.State != api.JobComplete || out != "one\n" {
		t.Fatalf("second job %+v, output %q", st, out)
	}
	a.Close() // as kill -9 would: the agent's end does not touch volumes
	a = startAgent(t, cfg)
	if st, out = runToEnd(t, c, a, "third", `cat /var/lib/data/keep; echo three >> /var/lib/data/keep`, data); out != "one\ntwo\n" {
		t.Fatalf("after an agent restart %+v, output %q", st, out)
	}
	a = reboot(t, a, cfg)
	if ok, _ := volume.Mounted(a.volumes.MountPath(data.ID)); !ok {
		t.Fatal("volume not mounted again after a reboot")
	}
	if st, out = runToEnd(t, c, a, "fourth", `cat /var/lib/data/keep`, data); out != "one\ntwo\nthree\n" {
		t.Fatalf("after a reboot %+v, output %q", st, out)
	}

	// Past the cap.
	var before unix.Statfs_t
	if err := unix.Statfs(cfg.DataDir, &before); err != nil {
		t.Fatal(err)
	}
	st, out = runToEnd(t, c, a, "fill", `
		dd if=/dev/zero of=/var/lib/data/fill bs=1M count=64 2>&1; echo "dd exit $?"
		cat /var/lib/data/keep /spare/keep`, data, spare)
	if !strings.Contains(out, "No space left on device") || strings.Contains(out, "dd exit 0") ||
		!strings.Contains(out, "one\ntwo\nthree\nspare\n") {
		t.Fatalf("filling the volume %+v, output:\n%s", st, out)
	}
	var after unix.Statfs_t
	if err := unix.Statfs(cfg.DataDir, &after); err != nil {
		t.Fatal(err)
	}
	// The host's disk paid at most the cap (the image is sparse).
	if used := (int64(before.Bavail) - int64(after.Bavail)) * before.Bsize; used > 17<<20 {
		t.Errorf("the host's disk lost %d bytes to a 16 MB volume", used)
	}
	var sp unix.Statfs_t
	if err := unix.Statfs(a.volumes.MountPath(spare.ID), &sp); err != nil || sp.Bavail*uint64(sp.Bsize) < 12<<20 {
		t.Errorf("the other volume has %d bytes free (%v)", sp.Bavail*uint64(sp.Bsize), err)
	}
	if fi, err := os.Stat(a.volumes.ImagePath(data.ID)); err != nil || fi.Size() != 16<<20 {
		t.Errorf("image grew: %v %v", fi, err)
	}

	// Marked for removal, with no job using it, it goes, record and all;
	// the other stays.
	key := store.VolumesPrefix + data.ID
	if _, err := store.Put(context.Background(), c.Client(), key, api.Volume{ID: data.ID, Name: "data", Host: "h1", SizeMB: 16,
		DeleteRequestedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, _, err := store.Get[api.Volume](context.Background(), c.Client(), key)
		_, serr := os.Stat(a.volumes.ImagePath(data.ID))
		if err != nil && os.IsNotExist(serr) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("volume not removed: record %v, image %v", err, serr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := os.Stat(a.volumes.ImagePath(spare.ID)); err != nil {
		t.Errorf("the other volume went too: %v", err)
	}
}
