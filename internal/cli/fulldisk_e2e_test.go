package cli_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestFullDiskKeepsServing fills the disk of `pier up`'s data directory
// (a 400 MiB tmpfs) under an app that serves through the router: the app
// answers every request the whole time, a scale and a deploy fail saying
// which disk is full, pier status names it, a restart on the full disk
// comes back serving, and once space is freed a scale succeeds with no
// restart and nothing stored is lost. Before, etcd failed a commit on the
// full disk and took the whole process, the router with it, down.
func TestFullDiskKeepsServing(t *testing.T) {
	mnt := filepath.Join(t.TempDir(), "disk")
	if err := os.MkdirAll(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=400m,mode=0700"); err != nil {
		t.Fatalf("mount a small tmpfs: %v", err)
	}
	// Registered first, so it runs last: after pier up and its jobs are gone.
	t.Cleanup(func() {
		if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})
	dataDir := filepath.Join(mnt, "pier")
	ports := freeUpPorts(t)
	p := startUp(t, dataDir, ports)
	u := cliUser{t, p}
	u.must("create", "disk")
	u.must("deploy", "--no-build", "-a", "disk", writeApp(t, "web: python3 -m http.server $PORT\n", map[string]string{"index.html": "still here\n"}))
	waitUntil(t, "the app to serve", 15*time.Second, func() bool {
		code, body, _ := get(p, "disk", "/index.html")
		return code == 200 && body == "still here\n"
	})

	// Requests through the router, all along.
	var sent, failed atomic.Int64
	var firstFailure atomic.Value
	stop := make(chan struct{})
	var load sync.WaitGroup
	// Held by each request, and taken whole while pier up itself is
	// killed and restarted: no request is in flight then, and p changes
	// only under it.
	var restarting sync.RWMutex
	load.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			restarting.RLock()
			code, body, err := get(p, "disk", "/index.html")
			restarting.RUnlock()
			sent.Add(1)
			if code != 200 || body != "still here\n" {
				failed.Add(1)
				firstFailure.CompareAndSwap(nil, []any{code, body, err})
			}
		}
	})
	defer func() {
		close(stop)
		load.Wait()
	}()

	// Fill the disk as a runaway log or a big upload would.
	filler := filepath.Join(mnt, "filler")
	fill(t, filler)
	full := "the disk of " + dataDir
	waitUntil(t, "pier status to name the full disk", 10*time.Second, func() bool {
		out, _, code := u.run("status")
		return code == 1 && strings.Contains(out, full)
	})
	u.fails(full, "scale", "-a", "disk", "web=2")
	u.fails(full, "deploy", "-a", "disk", writeApp(t, "web: python3 -m http.server $PORT\n", map[string]string{"index.html": "v2\n"}))
	time.Sleep(2 * time.Second) // a moment of serving on the full disk

	// A restart while the disk is still full: it comes back, and the
	// router serves the app again from what the store holds.
	func() {
		restarting.Lock()
		defer restarting.Unlock() // also when a Fatal ends the test here
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.exited
		p = startUp(t, dataDir, ports)
		u = cliUser{t, p}
		waitUntil(t, "the app to serve after a restart on the full disk", 15*time.Second, func() bool {
			code, _, _ := get(p, "disk", "/index.html")
			return code == 200
		})
	}()
	time.Sleep(2 * time.Second)
	if out, errOut, code := u.run("status"); code != 1 || !strings.Contains(out, full) {
		t.Fatalf("pier status after the restart: exit %d, want 1 naming %q\n%s%s\npier up:\n%s", code, full, out, errOut, tail(p.stderr.String(), 3000))
	}

	// Space comes back: everything resumes by itself.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	waitUntil(t, "a scale to succeed after space was freed", 30*time.Second, func() bool {
		_, _, code := u.run("scale", "-a", "disk", "web=2")
		return code == 0
	})
	t.Logf("a scale succeeded %s after space was freed", time.Since(freed).Round(100*time.Millisecond))
	waitUntil(t, "two web jobs", 30*time.Second, func() bool { return running(u.jobs("disk"), 0) == 2 })
	if out, _, code := u.run("status"); code != 0 {
		t.Fatalf("pier status once space returned: exit %d\n%s", code, out)
	}
	if out := u.must("releases", "-a", "disk"); !strings.Contains(out, "v1") || strings.Contains(out, "v2") {
		t.Fatalf("releases after the full disk:\n%s", out)
	}
	close(stop)
	load.Wait()
	stop = make(chan struct{}) // for the deferred close
	t.Logf("%d requests through the router, %d failed", sent.Load(), failed.Load())
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed; the first: %v", failed.Load(), sent.Load(), firstFailure.Load())
	}
}

// fill writes path until the disk is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = io.Copy(f, zeros{})
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filling the disk: %v", err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
