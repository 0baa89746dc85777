package runtime

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestRuncImageLayers runs a static binary from two hand-made layers in
// overlayfs form: the upper one overrides a file, deletes one with a
// whiteout and hides a whole directory of the lower one.
func TestRuncImageLayers(t *testing.T) {
	r := newTestRunc(t)
	base, top := t.TempDir(), t.TempDir()
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(goruntime.GOROOT(), "bin", "go")
	}
	build := exec.Command(goTool, "build", "-o", filepath.Join(base, "bin", "probe"), "./testdata/probe")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build probe: %v\n%s", err, out)
	}
	write := func(dir, name, content string) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(base, "etc/a", "base")
	write(base, "etc/b", "base")
	write(base, "data/x", "base")
	write(top, "etc/a", "top")
	write(top, "data/y", "top")
	if err := unix.Mknod(filepath.Join(top, "etc/b"), unix.S_IFCHR, 0); err != nil { // whiteout
		t.Fatal(err)
	}
	if err := unix.Setxattr(filepath.Join(top, "data"), "trusted.overlay.opaque", []byte("y"), 0); err != nil {
		t.Fatal(err)
	}

	files := []string{"/etc/a", "/etc/b", "/data/x", "/data/y", "/etc/hostname", "/etc/passwd", "/usr/lib/os-release"}
	id := testID(t)
	expectClean(t, r, id)
	res := run(t, r, Spec{ID: id, Hostname: "img", RootFS: []string{base, top}, Args: append([]string{"/bin/probe"}, files...)})
	if res.err != nil || res.exit.Code != 0 {
		t.Fatalf("Run: %+v %v %s", res.exit, res.err, res.stderr)
	}
	want := "/etc/a: top\n/etc/b: missing\n/data/x: missing\n/data/y: top\n/etc/hostname: img\n" +
		"/etc/passwd: missing\n/usr/lib/os-release: missing\n"
	if res.stdout != want {
		t.Errorf("got\n%s\nwant\n%s", res.stdout, want)
	}
	// The layers are as they were.
	if b, _ := os.ReadFile(filepath.Join(base, "etc/a")); string(b) != "base" {
		t.Errorf("lower layer changed: %q", b)
	}
}

// TestRuncCleanupAfterCrash kills the process running a job, as a crash of
// the shim would, and expects the job to keep running, to be listed, and
// to be removed completely by Delete from another process.
func TestRuncCleanupAfterCrash(t *testing.T) {
	r := newTestRunc(t)
	id := testID(t)
	expectClean(t, r, id)
	// The container will be orphaned; as the subreaper above it this test
	// inherits it, as a host agent would, and must reap it.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperCrashingShim$")
	cmd.Env = append(os.Environ(), "PIER_HELPER_STATE="+r.stateDir, "PIER_HELPER_ROOT="+r.root, "PIER_HELPER_ID="+id)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := 0
	sc := bufio.NewScanner(out)
	for pid == 0 && sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "started "); ok {
			pid, _ = strconv.Atoi(v)
		}
	}
	if pid == 0 {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("helper did not start the job")
	}
	cmd.Process.Kill()
	cmd.Wait()

	if !alive(pid) {
		t.Error("the job died with its shim")
	}
	if ids, err := r.List(); err != nil || !slices.Contains(ids, id) {
		t.Errorf("List() = %v, %v; want it to contain %s", ids, err, id)
	}
	if err := r.Delete(id); err != nil {
		t.Fatal(err)
	}
	var ws syscall.WaitStatus
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		if n == pid || err != nil {
			break // reaped, or not ours after all
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %d still running after Delete", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHelperCrashingShim is the shim that TestRuncCleanupAfterCrash kills.
func TestHelperCrashingShim(t *testing.T) {
	id := os.Getenv("PIER_HELPER_ID")
	if id == "" {
		return
	}
	r, err := NewRunc(RuncOptions{StateDir: os.Getenv("PIER_HELPER_STATE"), Root: os.Getenv("PIER_HELPER_ROOT")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Run(context.Background(), Spec{ID: id, Args: []string{"sleep", "300"}}, IO{},
		func(pid int) { fmt.Printf("started %d\n", pid) })
	t.Fatalf("Run returned: %v", err)
}

func TestOCISpec(t *testing.T) {
	r := &Runc{swapLimit: true}
	s := Spec{ID: "web-1", Args: []string{"true"}, Limits: Limits{MemoryMB: 64, CPUMillis: 250, PIDs: 50}}.withDefaults()
	c := r.ociSpec(s, bundlePaths{etc: "/b/etc", tmp: "/b/tmp", hostBinds: []string{"/usr"}})
	if !c.Root.Readonly || !c.Process.NoNewPrivileges || c.Process.User.UID != AppUID {
		t.Errorf("root %+v nnp %v user %+v", c.Root, c.Process.NoNewPrivileges, c.Process.User)
	}
	m := c.Linux.Resources
	if *m.Memory.Limit != 64<<20 || *m.Memory.Swap != 64<<20 {
		t.Errorf("memory %d swap %d, want both 64 MiB", *m.Memory.Limit, *m.Memory.Swap)
	}
	if *m.CPU.Quota != 25000 || *m.CPU.Period != 100000 || *m.Pids.Limit != 50 {
		t.Errorf("cpu %d/%d pids %d", *m.CPU.Quota, *m.CPU.Period, *m.Pids.Limit)
	}
	if c.Linux.CgroupsPath != "/pier/web-1" {
		t.Errorf("cgroups path %s", c.Linux.CgroupsPath)
	}
	for _, ns := range c.Linux.Namespaces {
		if ns.Type == "network" || ns.Type == "user" {
			t.Errorf("unexpected %s namespace", ns.Type)
		}
	}
	if len(c.Process.Capabilities.Ambient) != 0 || len(c.Process.Capabilities.Inheritable) != 0 {
		t.Errorf("ambient or inheritable capabilities: %+v", c.Process.Capabilities)
	}
	var dests []string
	for _, mt := range c.Mounts {
		dests = append(dests, mt.Destination)
		if mt.Type == "bind" && !slices.Contains(mt.Options, "nosuid") {
			t.Errorf("bind mount %s without nosuid", mt.Destination)
		}
	}
	for _, d := range []string{"/proc", "/dev", "/dev/pts", "/dev/shm", "/sys", "/tmp", "/etc/hosts", "/etc/resolv.conf", "/usr"} {
		if !slices.Contains(dests, d) {
			t.Errorf("no mount at %s", d)
		}
	}
	if slices.Contains(dests, "/etc") || slices.Contains(dests, "/app") {
		t.Errorf("mounts %v: no /etc ever, no /app without AppDir", dests)
	}
	// No limits asked: memory and CPU unlimited, PIDs and disk still capped.
	d := Spec{ID: "x", Args: []string{"true"}}.withDefaults()
	c = r.ociSpec(d, bundlePaths{})
	if c.Linux.Resources.Memory.Limit != nil || c.Linux.Resources.CPU != nil || *c.Linux.Resources.Pids.Limit != DefaultPIDs {
		t.Errorf("defaults: %+v", c.Linux.Resources)
	}
	if d.Limits.DiskMB != DefaultDiskMB || d.Dir != "/" {
		t.Errorf("defaults: %+v", d)
	}
}

// TestRuncDeleteWithoutRuncState loses runc's state of a running job, as a
// crash in the middle of runc could, and expects Delete to find and kill
// the job's processes through its cgroups all the same.
func TestRuncDeleteWithoutRuncState(t *testing.T) {
	r := newTestRunc(t)
	id := testID(t)
	expectClean(t, r, id)
	started := make(chan int, 1)
	done := make(chan result, 1)
	go func() {
		var res result
		// A child as well as pid 1, to be killed through the cgroup too.
		res.exit, res.err = r.Run(context.Background(), Spec{ID: id, Args: []string{"/bin/sh", "-c", "sleep 60 & sleep 60"}},
			IO{}, func(pid int) { started <- pid })
		done <- res
	}()
	pid := <-started
	if err := os.RemoveAll(filepath.Join(r.root, id)); err != nil {
		t.Fatal(err)
	}
	if err := r.Delete(id); err != nil {
		t.Fatal(err)
	}
	select {
	case res := <-done:
		if res.err != nil || res.exit.Signal != "SIGKILL" || alive(pid) {
			t.Errorf("after Delete: %+v %v", res.exit, res.err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after Delete")
	}
}
