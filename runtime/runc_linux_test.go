package runtime

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The capability mask of a root job: CHOWN(0) DAC_OVERRIDE(1) FOWNER(3)
// FSETID(4) KILL(5) SETGID(6) SETUID(7).
const rootCaps = "00000000000000fb"

func TestRuncSecurity(t *testing.T) {
	r := newTestRunc(t)
	t.Run("app user", func(t *testing.T) {
		res := sh(t, r, "cat /proc/self/status; id -u")
		st := procStatus(res.stdout)
		for k, want := range map[string]string{
			"NoNewPrivs": "1",
			"Seccomp":    "2",
			// As uid 1000 nothing survives the execve: not ambient, not inheritable.
			"CapEff": "0000000000000000",
			"CapPrm": "0000000000000000",
			"CapInh": "0000000000000000",
			"CapAmb": "0000000000000000",
			"CapBnd": rootCaps,
			"Uid":    "1000\t1000\t1000\t1000",
		} {
			if st[k] != want {
				t.Errorf("%s = %q, want %q", k, st[k], want)
			}
		}
	})
	t.Run("root", func(t *testing.T) {
		st := procStatus(sh(t, r, "cat /proc/self/status", asRoot).stdout)
		for k, want := range map[string]string{
			"NoNewPrivs": "1", "Seccomp": "2", "CapEff": rootCaps, "CapPrm": rootCaps,
			"CapBnd": rootCaps, "CapAmb": "0000000000000000", "Uid": "0\t0\t0\t0",
		} {
			if st[k] != want {
				t.Errorf("%s = %q, want %q", k, st[k], want)
			}
		}
	})
	t.Run("namespaces", func(t *testing.T) {
		host, _ := os.Readlink("/proc/self/ns/net")
		res := sh(t, r, "echo $$; readlink /proc/self/ns/net; hostname", func(s *Spec) { s.Hostname = "box-1" })
		got := strings.Fields(res.stdout)
		if len(got) != 3 || got[0] != "1" || got[1] != host || got[2] != "box-1" {
			t.Errorf("pid, netns, hostname = %q, want 1, %s (the host's), box-1", got, host)
		}
	})
	t.Run("seccomp denies", func(t *testing.T) {
		// unshare(2) and mount(2) fail even for root, which holds no
		// CAP_SYS_ADMIN anyway; the filter answers first with EPERM.
		res := sh(t, r, "unshare -U true; echo unshare=$?; mount -t tmpfs x /mnt; echo mount=$?", asRoot)
		if !strings.Contains(res.stdout, "unshare=1") || !strings.Contains(res.stdout, "mount=32") {
			t.Errorf("stdout %q stderr %q: want both to fail", res.stdout, res.stderr)
		}
	})
}

func TestRuncFilesystem(t *testing.T) {
	r := newTestRunc(t)
	hostHostname, _ := os.ReadFile("/etc/hostname")
	app := t.TempDir()
	if err := os.WriteFile(filepath.Join(app, "Procfile"), []byte("web: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	shared := t.TempDir()
	os.Chmod(shared, 0o777)
	script := `
try() { if eval "$2" 2>/dev/null; then echo "$1=ok"; else echo "$1=fail"; fi; }
try root "touch /x"
try usr "touch /usr/x"
try etc "touch /etc/x"
try app "touch /app/x"
try tmp "echo hi > /tmp/x && cat /tmp/x >/dev/null"
try vartmp "echo hi > /var/tmp/y"
try shm "echo hi > /dev/shm/x"
try shadow "test -e /etc/shadow"
try procfile "grep -q web /app/Procfile"
try ls "ls /usr/bin >/dev/null"
try awk "echo 1 | awk '{print}' >/dev/null"
try rwmount "echo hi > /cache/x"
try romount "echo hi > /ro/x"
try sysrq "echo h > /proc/sysrq-trigger"
try kcore "test -s /proc/kcore"
echo "pwd=$(pwd)"
echo "hostname=$(cat /etc/hostname)"
grep '^app:' /etc/passwd
ls /etc
`
	res := sh(t, r, script, asRoot, func(s *Spec) {
		s.AppDir = app
		s.Hostname = "job-host"
		s.Mounts = []Mount{{Source: shared, Destination: "/cache"}, {Source: shared, Destination: "/ro", ReadOnly: true}}
	})
	for _, want := range []string{
		"root=fail", "usr=fail", "etc=fail", "app=fail", "tmp=ok", "vartmp=ok", "shm=ok",
		"shadow=fail", "procfile=ok", "ls=ok", "awk=ok", "rwmount=ok", "romount=fail",
		"sysrq=fail", "kcore=fail", "pwd=/app", "hostname=job-host", "app:x:1000:1000:app:/app:/bin/sh",
	} {
		if !strings.Contains(res.stdout, want+"\n") {
			t.Errorf("missing %q in output:\n%s\nstderr: %s", want, res.stdout, res.stderr)
		}
	}
	if h := strings.TrimSpace(string(hostHostname)); h != "" && strings.Contains(res.stdout, "hostname="+h+"\n") {
		t.Errorf("the host's /etc/hostname is visible")
	}
	for _, leak := range []string{"shadow", "gshadow", "sudoers", "ssh"} {
		if strings.Contains(res.stdout, "\n"+leak+"\n") {
			t.Errorf("/etc/%s from the host is visible", leak)
		}
	}
	if _, err := os.Stat(filepath.Join(app, "x")); err == nil {
		t.Error("the job wrote into AppDir")
	}
	if b, _ := os.ReadFile(filepath.Join(shared, "x")); string(b) != "hi\n" {
		t.Errorf("read-write mount: host sees %q", b)
	}

	t.Run("disk cap", func(t *testing.T) {
		res := sh(t, r, "dd if=/dev/zero of=/tmp/big bs=1M count=16 2>&1; echo dd=$?",
			func(s *Spec) { s.Limits.DiskMB = 4 })
		if !strings.Contains(res.stdout, "No space left") || strings.Contains(res.stdout, "dd=0") {
			t.Errorf("writing 16 MB to a 4 MB disk: %s", res.stdout)
		}
	})
	t.Run("writable", func(t *testing.T) {
		res := sh(t, r, "echo hi > /x && cat /x; touch /usr/x 2>/dev/null || echo usr=ro", asRoot,
			func(s *Spec) { s.Writable = true })
		if res.stdout != "hi\nusr=ro\n" {
			t.Errorf("root: stdout %q, stderr %q", res.stdout, res.stderr)
		}
		res = sh(t, r, "mkdir -p /app/tmp/pids && echo 1 > /app/tmp/pids/server.pid && cat /app/Procfile", func(s *Spec) {
			s.Writable = true
			s.AppDir = app
		})
		if res.stdout != "web: x\n" {
			t.Errorf("app: stdout %q, stderr %q", res.stdout, res.stderr)
		}
		if _, err := os.Stat(filepath.Join(app, "tmp")); err == nil {
			t.Error("the job wrote into AppDir")
		}
	})
}

func TestRuncOOM(t *testing.T) {
	r := newTestRunc(t)
	// dd reads into a buffer of bs bytes, touching every page of it: 200 MB
	// against a 32 MB limit without swap. Only coreutils, which every host
	// has.
	res := sh(t, r, "exec dd if=/dev/zero of=/dev/null bs=200M count=1",
		func(s *Spec) { s.Limits.MemoryMB = 32 })
	if !res.exit.OOMKilled || res.exit.Signal != "SIGKILL" || res.exit.Code != 137 {
		t.Errorf("exit = %+v, want OOM killed by SIGKILL", res.exit)
	}
	res = sh(t, r, "exec dd if=/dev/zero of=/dev/null bs=4M count=1 2>/dev/null",
		func(s *Spec) { s.Limits.MemoryMB = 32 })
	if res.exit.OOMKilled || res.exit.Code != 0 {
		t.Errorf("within the limit: exit = %+v", res.exit)
	}
	// A child killed for memory while the main process lives on still
	// counts: the job was OOM killed.
	res = sh(t, r, "dd if=/dev/zero of=/dev/null bs=200M count=1; echo dd=$?",
		func(s *Spec) { s.Limits.MemoryMB = 32 })
	if !res.exit.OOMKilled || res.exit.Code != 0 || !strings.Contains(res.stdout, "dd=137") {
		t.Errorf("exit = %+v stdout %q, want OOMKilled with the shell's exit 0", res.exit, res.stdout)
	}
}

func TestRuncForkBomb(t *testing.T) {
	r := newTestRunc(t)
	id := testID(t)
	expectClean(t, r, id)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdin, _ := io.Pipe() // never written: `read` keeps pid 1 alive without a fork
	spec := Spec{
		ID:     id,
		Args:   []string{"/bin/sh", "-c", "f() { f | f & }; f; read x"},
		Limits: Limits{PIDs: 32, CPUMillis: 500, MemoryMB: 256},
	}
	type ret struct {
		exit Exit
		err  error
	}
	done := make(chan ret, 1)
	go func() {
		ex, err := r.Run(ctx, spec, IO{Stdin: stdin}, nil)
		done <- ret{ex, err}
	}()

	pids := ""
	mounts, _ := cgroupMounts()
	if d, ok := v1Controller(mounts, "pids"); ok {
		pids = filepath.Join(d, cgroupPath(id))
	} else {
		for _, m := range mounts {
			if m.v2 {
				pids = filepath.Join(m.dir, cgroupPath(id))
			}
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		n, _ := readCounter(filepath.Join(pids, "pids.events"), "max")
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the fork bomb never reached its PID limit")
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, _ := os.ReadFile(filepath.Join(pids, "pids.current"))
	if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err != nil || n > 32 {
		t.Errorf("pids.current = %q, want at most 32", b)
	}
	// The host can still start processes.
	if out, err := exec.Command("true").CombinedOutput(); err != nil {
		t.Errorf("host cannot fork: %v %s", err, out)
	}
	cancel()
	select {
	case res := <-done:
		if res.err != nil || res.exit.Signal != "SIGKILL" {
			t.Errorf("Run = %+v, %v; want killed", res.exit, res.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestRuncStdioAndExit(t *testing.T) {
	r := newTestRunc(t)
	res := sh(t, r, "echo out; echo err >&2; exit 3")
	if res.exit.Code != 3 || res.exit.Signal != "" || res.stdout != "out\n" || res.stderr != "err\n" {
		t.Errorf("got %+v stdout %q stderr %q", res.exit, res.stdout, res.stderr)
	}
	if res.exit.Started.IsZero() || res.exit.Finished.Before(res.exit.Started) || res.pid <= 0 {
		t.Errorf("times %v..%v pid %d", res.exit.Started, res.exit.Finished, res.pid)
	}

	t.Run("stdin", func(t *testing.T) {
		id := testID(t)
		expectClean(t, r, id)
		var out bytes.Buffer
		ex, err := r.Run(context.Background(), Spec{ID: id, Args: []string{"cat"}},
			IO{Stdin: strings.NewReader("hello\n"), Stdout: &out, Stderr: &out}, nil)
		if err != nil || ex.Code != 0 || out.String() != "hello\n" {
			t.Errorf("cat: %+v %v %q", ex, err, out.String())
		}
	})
	t.Run("env", func(t *testing.T) {
		res := sh(t, r, `echo "$FOO|$HOME|$PATH"`, func(s *Spec) { s.Env = []string{"FOO=bar baz"} })
		if res.stdout != "bar baz|/app|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n" {
			t.Errorf("env: %q", res.stdout)
		}
	})
	t.Run("not found", func(t *testing.T) {
		id := testID(t)
		expectClean(t, r, id)
		res := run(t, r, Spec{ID: id, Args: []string{"/no/such/binary"}})
		if res.err == nil {
			t.Errorf("running a missing binary: %+v, want an error", res.exit)
		}
	})
	t.Run("signal", func(t *testing.T) {
		id := testID(t)
		expectClean(t, r, id)
		started := make(chan int, 1)
		done := make(chan result, 1)
		go func() {
			var res result
			res.exit, res.err = r.Run(context.Background(), Spec{ID: id,
				Args: []string{"/bin/sh", "-c", `trap "exit 7" TERM; while :; do sleep 0.05; done`}},
				IO{}, func(pid int) { started <- pid })
			done <- res
		}()
		<-started
		// The trap must be set before the signal arrives.
		time.Sleep(200 * time.Millisecond)
		if err := r.Signal(id, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		res := <-done
		if res.err != nil || res.exit.Code != 7 {
			t.Errorf("after SIGTERM: %+v %v", res.exit, res.err)
		}
		if err := r.Signal(id, syscall.SIGTERM); !errors.Is(err, ErrNotFound) {
			t.Errorf("Signal after exit = %v, want ErrNotFound", err)
		}
	})
}

func TestRuncCancel(t *testing.T) {
	r := newTestRunc(t)
	id := testID(t)
	expectClean(t, r, id)
	ctx, cancel := context.WithCancel(context.Background())
	var pid int
	go func() { time.Sleep(300 * time.Millisecond); cancel() }()
	start := time.Now()
	ex, err := r.Run(ctx, Spec{ID: id, Args: []string{"sleep", "60"}}, IO{}, func(p int) { pid = p })
	if err != nil || ex.Signal != "SIGKILL" || ex.Code != 137 || ex.OOMKilled {
		t.Errorf("Run = %+v, %v; want killed", ex, err)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("cancel took %v", time.Since(start))
	}
	if pid == 0 || alive(pid) {
		t.Errorf("pid %d still alive", pid)
	}
	// Cancelled before it starts: an error, and nothing runs.
	id2 := testID(t)
	expectClean(t, r, id2)
	if _, err := r.Run(ctx, Spec{ID: id2, Args: []string{"true"}}, IO{}, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Run with a cancelled ctx = %v", err)
	}
}

func TestRuncTTY(t *testing.T) {
	r := newTestRunc(t)
	res := sh(t, r, "tty; test -t 0 && echo stdin-is-tty; echo $TERM", func(s *Spec) { s.TTY = true })
	if !strings.HasPrefix(res.stdout, "/dev/pts/") || !strings.Contains(res.stdout, "stdin-is-tty") ||
		!strings.Contains(res.stdout, "xterm") {
		t.Errorf("tty output %q", res.stdout)
	}

	t.Run("size", func(t *testing.T) {
		res := sh(t, r, "stty size", func(s *Spec) { s.TTY, s.ConsoleSize = true, ConsoleSize{Rows: 40, Cols: 100} })
		if strings.TrimSpace(res.stdout) != "40 100" {
			t.Errorf("stty size %q", res.stdout)
		}
	})

	t.Run("console", func(t *testing.T) {
		id := testID(t)
		expectClean(t, r, id)
		got := make(chan string, 1)
		ex, err := r.Run(context.Background(), Spec{ID: id, TTY: true, Args: []string{"/bin/sh", "-c", "read x; echo got $x"}},
			IO{Console: func(m *os.File) {
				go func() {
					defer m.Close()
					_, _ = m.Write([]byte("ping\n"))
					b, _ := io.ReadAll(m) // ends with EIO when the job is gone
					got <- string(b)
				}()
			}}, nil)
		if err != nil || ex.Code != 0 {
			t.Fatalf("Run = %+v, %v", ex, err)
		}
		if out := <-got; !strings.Contains(out, "got ping") {
			t.Errorf("console output %q", out)
		}
	})
}

func TestRuncDeleteAndList(t *testing.T) {
	r := newTestRunc(t)
	id := testID(t)
	expectClean(t, r, id)
	started := make(chan int, 1)
	done := make(chan result, 1)
	go func() {
		var res result
		res.exit, res.err = r.Run(context.Background(), Spec{ID: id, Args: []string{"sleep", "60"}}, IO{},
			func(pid int) { started <- pid })
		done <- res
	}()
	pid := <-started
	ids, err := r.List()
	if err != nil || len(ids) != 1 || ids[0] != id {
		t.Errorf("List() = %v, %v; want [%s]", ids, err, id)
	}
	// A second job with the same id is refused while the first has state.
	if _, err := r.Run(context.Background(), Spec{ID: id, Args: []string{"true"}}, IO{}, nil); !errors.Is(err, ErrExists) {
		t.Errorf("second Run = %v, want ErrExists", err)
	}
	if err := r.Delete(id); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if res.err != nil || res.exit.Signal != "SIGKILL" || alive(pid) {
		t.Errorf("after Delete: %+v %v alive=%v", res.exit, res.err, alive(pid))
	}
	if err := r.Delete(id); err != nil {
		t.Errorf("second Delete: %v", err)
	}
	if err := r.Delete("Bad/Id"); !errors.Is(err, ErrInvalidSpec) {
		t.Errorf("Delete(bad id) = %v", err)
	}
	if err := r.Signal("no-such-job", syscall.SIGTERM); !errors.Is(err, ErrNotFound) {
		t.Errorf("Signal(unknown) = %v", err)
	}
}

func TestRuncRejectsBadSpecs(t *testing.T) {
	r := newTestRunc(t)
	for name, s := range map[string]Spec{
		"id":       {ID: "Bad_ID", Args: []string{"true"}},
		"long id":  {ID: strings.Repeat("a", 65), Args: []string{"true"}},
		"no args":  {ID: "x"},
		"env":      {ID: "x", Args: []string{"true"}, Env: []string{"NOEQUALS"}},
		"dir":      {ID: "x", Args: []string{"true"}, Dir: "relative"},
		"layer":    {ID: "x", Args: []string{"true"}, RootFS: []string{"/a:b"}},
		"mount":    {ID: "x", Args: []string{"true"}, Mounts: []Mount{{Source: "/tmp", Destination: "/"}}},
		"negative": {ID: "x", Args: []string{"true"}, Limits: Limits{MemoryMB: -1}},
	} {
		if _, err := r.Run(context.Background(), s, IO{}, nil); !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("%s: Run = %v, want ErrInvalidSpec", name, err)
		}
	}
}
