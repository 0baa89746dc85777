package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
)

var (
	pierBin string // the pier binary under test, built once
)

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	if os.Geteuid() != 0 {
		// Not a skip: the suite is part of `make test`, and a run that
		// silently proves nothing must not look like a pass.
		fmt.Fprintln(os.Stderr, "e2e: the suite needs root (network namespaces, runc)")
		return 1
	}
	// One run at a time on a machine: every run uses the same names, and
	// the sweep of a second would destroy the first's cluster.
	lock, err := os.OpenFile("/run/lock/pier-e2e.lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "pier-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	// $PIER_E2E_PIER runs the suite against a pier built elsewhere: a
	// release candidate, or a patched tree.
	if pierBin = os.Getenv("PIER_E2E_PIER"); pierBin == "" {
		pierBin = filepath.Join(dir, "pier")
		if out, err := exec.Command("go", "build", "-o", pierBin, "../../cmd/pier").CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: build pier: %v\n%s", err, out)
			return 1
		}
	}
	// Leftovers of a run that was killed before its cleanup.
	sweep()

	// Ctrl-C or a kill: tear down before leaving, or the daemons and
	// containers would outlive the test.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "e2e: %v: tearing the cluster down\n", s)
		// The cluster may be half made, under the lock: then the sweep,
		// which finds everything by name, does the whole job.
		if sharedMu.TryLock() {
			sharedMu.Unlock()
			teardownShared(true)
		} else {
			sweep()
		}
		os.Exit(2)
	}()
	code := m.Run()
	teardownShared(code != 0 || os.Getenv("PIER_E2E_KEEP_LOGS") != "")
	return code
}

// teardownShared tears the shared cluster down, keeping its logs when
// something failed.
func teardownShared(keepLogs bool) {
	sharedMu.Lock()
	c := shared
	shared = nil
	sharedMu.Unlock()
	if c == nil {
		sweep()
		return
	}
	if dir := c.teardown(keepLogs); dir != "" {
		fmt.Fprintf(os.Stderr, "e2e: the daemons' logs are in %s\n", dir)
	}
}
