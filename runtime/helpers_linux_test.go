package runtime

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// newTestRunc returns a runc driver with its state in a temporary
// directory. It fails rather than skips without root or runc: CI runs as
// root with runc installed, and a silently skipped isolation test is worse
// than a red one.
func newTestRunc(t testing.TB) *Runc {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the runc tests need root (CI runs them as root)")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Fatal("runc is not installed: run scripts/setup (or apt-get install -y runc)")
	}
	dir := t.TempDir()
	r, err := NewRunc(RuncOptions{StateDir: filepath.Join(dir, "state"), Root: filepath.Join(dir, "runc")})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var nonID = regexp.MustCompile(`[^a-z0-9]+`)

// testID is unique per call and says which test made it.
func testID(t testing.TB) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := strings.Trim(nonID.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(name) > 40 {
		name = name[len(name)-40:]
	}
	return strings.Trim(name, "-") + "-" + hex.EncodeToString(b)
}

// expectClean registers, before the job runs, a cleanup that deletes the
// job and then checks that nothing of it is left on the host: so it runs,
// and reports, even when the test fails halfway.
func expectClean(t testing.TB, r *Runc, id string) {
	t.Helper()
	t.Cleanup(func() {
		if err := r.Delete(id); err != nil {
			t.Errorf("Delete(%s): %v", id, err)
		}
		assertNoLeftovers(t, r, id)
	})
}

func assertNoLeftovers(t testing.TB, r *Runc, id string) {
	t.Helper()
	dir := r.bundle(id)
	if err := eachMount(func(mp, _, _ string) {
		if mp == dir || strings.HasPrefix(mp, dir+"/") || strings.HasPrefix(mp, r.stateDir+"/") {
			t.Errorf("mount left behind: %s", mp)
		}
	}); err != nil {
		t.Error(err)
	}
	mounts, err := cgroupMounts()
	if err != nil {
		t.Error(err)
	}
	for _, m := range mounts {
		if _, err := os.Stat(filepath.Join(m.dir, "pier", id)); err == nil {
			t.Errorf("cgroup left behind: %s", filepath.Join(m.dir, "pier", id))
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("bundle dir left behind: %s (%v)", dir, err)
	}
	out, err := exec.Command("runc", "--root", r.root, "list", "--quiet").CombinedOutput()
	if err != nil {
		t.Errorf("runc list: %v: %s", err, out)
	} else if strings.Contains(string(out), id) {
		t.Errorf("runc still lists %s", id)
	}
	if ids, err := r.List(); err != nil {
		t.Error(err)
	} else if len(ids) != 0 {
		t.Errorf("List() = %v, want nothing", ids)
	}
	for _, z := range zombieChildren() {
		t.Errorf("unreaped child process %d", z)
	}
}

// zombieChildren finds exited children of the test process that nobody
// reaped, which a subreaper that loses track of a container would leave.
func zombieChildren() []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	me := strconv.Itoa(os.Getpid())
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 && f[0] == "Z" && f[1] == me {
			pids = append(pids, pid)
		}
	}
	return pids
}

type result struct {
	exit           Exit
	err            error
	stdout, stderr string
	pid            int
}

// run runs spec to completion on rt with captured output.
func run(t testing.TB, rt Runtime, spec Spec) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	var res result
	res.exit, res.err = rt.Run(ctx, spec, IO{Stdout: &stdout, Stderr: &stderr}, func(pid int) { res.pid = pid })
	res.stdout, res.stderr = stdout.String(), stderr.String()
	if res.pid > 0 && alive(res.pid) {
		t.Errorf("the job's process %d outlived Run", res.pid)
	}
	return res
}

// sh runs a shell script as a job on a fresh id and expects it to exit 0.
func sh(t testing.TB, r *Runc, script string, mod ...func(*Spec)) result {
	t.Helper()
	spec := Spec{ID: testID(t), Args: []string{"/bin/sh", "-c", script}}
	for _, m := range mod {
		m(&spec)
	}
	expectClean(t, r, spec.ID)
	res := run(t, r, spec)
	if res.err != nil {
		t.Fatalf("Run(%q): %v", script, res.err)
	}
	return res
}

func asRoot(s *Spec) { s.Root = true }

// procStatus returns the fields of a /proc/<pid>/status dump.
func procStatus(text string) map[string]string {
	m := map[string]string{}
	for line := range strings.Lines(text) {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }
