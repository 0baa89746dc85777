package e2e

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pierpaas/pier/api"
)

// diskHost is the host whose directory (its data directory and log) is
// a small filesystem of its own, which scenario 10 fills. The mount is
// above the data directory, so that a simulated reboot (which unmounts
// what is under the data directory) leaves it alone; sweep unmounts it
// with everything else under baseDir.
const diskHost = "h3"

func mountSmallDisk(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1g,mode=0755"); err != nil {
		return fmt.Errorf("mount a small disk at %s: %w", dir, err)
	}
	return nil
}

// Scenario 10: the data disk of one host fills up. Its jobs keep
// serving, pier status names it and why it takes no new jobs, new jobs
// go to the other hosts, and once space is freed the host takes jobs
// again, with no restart.
func TestHostDiskFull(t *testing.T) {
	c := getCluster(t)
	r := report(t, "10-host-disk-full")
	const app = "diskfull"
	c.deployWeb(t, app, 3)
	l := r.track(startLoad(t, c, app))
	ctl, err := c.controller()
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	host := c.node(diskHost)

	filler := filepath.Join(host.dir, "filler")
	defer os.Remove(filler) // the cluster is shared with the next scenarios
	t0 := time.Now()
	fillDisk(t, filler)
	reason := "host " + diskHost + " takes no new jobs: the disk of " + host.dataDir()
	var status api.ClusterStatus
	waitFor(t, "pier status to name the full disk", 15*time.Second, func() bool {
		ctx, cancel := ctxT(5 * time.Second)
		defer cancel()
		status, err = ctl.Status(ctx)
		return err == nil && !status.Healthy && strings.Contains(strings.Join(status.Problems, "\n"), reason)
	})
	noticed := time.Since(t0)

	// More jobs: none goes to the full host.
	before := onHost(c.waitRunning(t, app, 3, 10*time.Second), diskHost)
	c.scale(t, ctl, app, 7)
	js := c.waitRunning(t, app, 7, 60*time.Second)
	if n := onHost(js, diskHost); n > before {
		t.Fatalf("the host with a full disk took %d new jobs", n-before)
	}
	// Space comes back: the host takes jobs again by itself.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	t1 := time.Now()
	waitFor(t, "pier status to find the cluster healthy again", 15*time.Second, func() bool {
		ctx, cancel := ctxT(5 * time.Second)
		defer cancel()
		status, err = ctl.Status(ctx)
		return err == nil && !strings.Contains(strings.Join(status.Problems, "\n"), reason)
	})
	c.scale(t, ctl, app, 10)
	c.waitJobs(t, app, "a new job on "+diskHost, 60*time.Second, func(js []api.AppJob) bool {
		return len(js) == 10 && onHost(js, diskHost) > before
	})
	resumed := time.Since(t1)
	time.Sleep(time.Second)
	l.stop()
	sum := l.summary()
	r.setLoad(sum)
	r.setRecovery(resumed, "space freed on a full host to a job placed there again")
	r.Extra["noticed"] = noticed.Round(time.Millisecond).String()
	t.Logf("full disk noticed in %s, a job placed on the host %s after space was freed; load: %s", noticed.Round(time.Millisecond), resumed.Round(time.Millisecond), sum)
	if sum.Failed > 0 {
		t.Errorf("%d requests failed: %s", sum.Failed, l.timeline(t0))
	}
}

func onHost(js []api.AppJob, host string) int {
	n := 0
	for _, j := range js {
		if j.HostID == host {
			n++
		}
	}
	return n
}

// fillDisk writes path until its disk is full.
func fillDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		if _, err = f.Write(buf); err != nil {
			break
		}
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filling the disk: %v", err)
	}
}
