package runtime

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pierpaas/pier/runtime/pid1"
)

// Runc runs each job as an OCI container with runc. See the package
// documentation for the isolation it gives.
type Runc struct {
	stateDir  string
	root      string
	binary    string
	log       *slog.Logger
	swapLimit bool // the kernel accounts memory+swap, so swap can be limited
}

var _ Runtime = (*Runc)(nil)

// NewRunc checks that this process can run containers and returns the
// driver.
func NewRunc(o RuncOptions) (*Runc, error) {
	if o.StateDir == "" {
		o.StateDir = "/var/lib/pier/runtime"
	}
	if o.Root == "" {
		o.Root = "/run/pier/runc"
	}
	if o.Binary == "" {
		o.Binary = "runc"
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("%w: the runc driver needs root", ErrUnsupported)
	}
	bin, err := exec.LookPath(o.Binary)
	if err != nil {
		return nil, fmt.Errorf("runtime: runc not found (%w); install it with `apt-get install runc` or scripts/setup", err)
	}
	for _, d := range []string{o.StateDir, o.Root} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("runtime: %w", err)
		}
	}
	stateDir, err := filepath.Abs(o.StateDir)
	if err != nil {
		return nil, err
	}
	root, err := filepath.Abs(o.Root)
	if err != nil {
		return nil, err
	}
	r := &Runc{stateDir: stateDir, root: root, binary: bin, log: o.Log}
	if mounts, err := cgroupMounts(); err == nil {
		if m, ok := v1Controller(mounts, "memory"); ok {
			_, err := os.Stat(filepath.Join(m, "memory.memsw.limit_in_bytes"))
			r.swapLimit = err == nil
		} else {
			r.swapLimit = true // cgroup v2: runc turns this into memory.swap.max
		}
	}
	return r, nil
}

func (*Runc) Name() string { return "runc" }

func (r *Runc) bundle(id string) string { return filepath.Join(r.stateDir, id) }

// Run starts the container with `runc run --detach` and waits for its
// process itself, rather than leaving that to a foreground `runc run`, for
// two reasons: runc run folds a death by signal into an exit code of 128+n,
// and the container's cgroup must outlive the process so that its OOM kill
// counter can be read. To be able to wait, Run makes the calling process a
// child subreaper (PR_SET_CHILD_SUBREAPER), so that the container process
// becomes its child when runc exits. That is a process-wide setting, fitting
// for the per-job shim this is written for.
func (r *Runc) Run(ctx context.Context, spec Spec, sio IO, started func(pid int)) (Exit, error) {
	if err := spec.Validate(); err != nil {
		return Exit{}, err
	}
	spec = spec.withDefaults()
	if err := ctx.Err(); err != nil {
		return Exit{}, err
	}
	dir := r.bundle(spec.ID)
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return Exit{}, fmt.Errorf("%w: %s", ErrExists, spec.ID)
		}
		return Exit{}, fmt.Errorf("runtime: %w", err)
	}
	defer func() {
		if err := r.Delete(spec.ID); err != nil {
			r.log.Warn("runtime: cleanup failed; the job stays in List until Delete succeeds", "job", spec.ID, "err", err)
		}
	}()
	if err := r.prepare(spec, dir); err != nil {
		return Exit{}, err
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return Exit{}, fmt.Errorf("runtime: become subreaper: %w", err)
	}

	c, err := r.start(ctx, spec, dir, sio)
	if err != nil {
		return Exit{}, err
	}
	ex := Exit{Started: time.Now()}
	// Until it is reaped, the pid is the container's and no one else's.
	stop := context.AfterFunc(ctx, func() { _ = unix.Kill(c.pid, unix.SIGKILL) })
	defer stop()
	if started != nil {
		started(c.pid)
	}

	ws, err := reap(c.pid)
	ex.Finished = time.Now()
	if err != nil {
		c.finish(0)
		return Exit{}, fmt.Errorf("runtime: wait for %s: %w", spec.ID, err)
	}
	if c.status != nil {
		// How the command ended, from its init; nothing if the init was
		// killed first (SIGKILL), when its own status is the job's.
		cws, ok, err := pid1.ReadStatus(c.status)
		c.status.Close()
		if err != nil {
			c.finish(5 * time.Second)
			return Exit{}, fmt.Errorf("runtime: runc run %s: %w", spec.ID, err)
		}
		if ok {
			ws = cws
		}
	}
	e := exitFromStatus(ws)
	ex.Code, ex.Signal = e.Code, e.Signal
	ex.OOMKilled = r.oomKilled(spec.ID, ex)
	// Once the container's init is gone the kernel has killed everything
	// else in its PID namespace, so the output pipes are at EOF already;
	// the timeout only guards against a writer of the caller's that hangs.
	c.finish(5 * time.Second)
	return ex, nil
}

// startedContainer is a container between its start and its end.
type startedContainer struct {
	pid    int
	finish func(timeout time.Duration) // waits for output, releases stdio
	status *os.File                    // read end of the init's status pipe, with Spec.Init
}

func (r *Runc) start(ctx context.Context, spec Spec, dir string, sio IO) (_ *startedContainer, err error) {
	pidFile := filepath.Join(dir, "pid")
	args := []string{"run", "--detach", "--bundle", dir, "--pid-file", pidFile}
	var (
		stderr           bytes.Buffer
		st               *stdio
		sock             *consoleSocket
		statusR, statusW *os.File
	)
	if spec.Init != "" {
		// The init's status pipe goes in as the first descriptor after
		// stdio (pid1.StatusFD); runc passes it on with --preserve-fds.
		if statusR, statusW, err = os.Pipe(); err != nil {
			return nil, fmt.Errorf("runtime: %w", err)
		}
		defer statusW.Close()
		defer func() {
			if err != nil {
				statusR.Close()
			}
		}()
		args = append(args, "--preserve-fds", "1")
	}
	if spec.TTY {
		if sock, err = newConsoleSocket(); err != nil {
			return nil, err
		}
		defer sock.close()
		args = append(args, "--console-socket", sock.path)
	} else if st, err = newStdio(sio); err != nil {
		return nil, err
	}
	args = append(args, spec.ID)
	// Not cancelled with ctx: a runc killed halfway leaves a container
	// process that nobody would reap. ctx kills the process once it runs.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	cmd := r.command(cctx, dir, args...)
	if st != nil {
		// runc hands these very descriptors to the container.
		cmd.Stdin, cmd.Stdout, cmd.Stderr = st.files[0], st.files[1], st.files[2]
	} else {
		cmd.Stdout, cmd.Stderr = &stderr, &stderr
	}

	if statusW != nil {
		cmd.ExtraFiles = []*os.File{statusW}
	}
	var master chan consoleResult
	if sock != nil {
		master = make(chan consoleResult, 1)
		go func() { f, err := sock.receive(); master <- consoleResult{f, err} }()
	}
	err = cmd.Run()
	if statusW != nil {
		statusW.Close() // the init holds it now, alone
	}
	if st != nil {
		st.handedOver()
	}
	if sock != nil {
		sock.close() // ends a receive still waiting because runc failed
	}
	if err != nil {
		if st != nil {
			st.close()
		}
		if master != nil {
			if res := <-master; res.f != nil {
				res.f.Close()
			}
		}
		return nil, fmt.Errorf("runtime: runc run %s: %w", spec.ID, r.runcError(dir, stderr.Bytes(), err))
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return nil, fmt.Errorf("runtime: runc run %s: %w", spec.ID, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return nil, fmt.Errorf("runtime: runc run %s: bad pid file %q", spec.ID, b)
	}
	c := &startedContainer{pid: pid, status: statusR}
	if st != nil {
		c.finish = st.drain
		return c, nil
	}
	res := <-master
	if res.err != nil {
		_ = unix.Kill(pid, unix.SIGKILL)
		_, _ = reap(pid)
		return nil, fmt.Errorf("runtime: receive console of %s: %w", spec.ID, res.err)
	}
	if sio.Console != nil {
		sio.Console(res.f)
		c.finish = func(time.Duration) {}
	} else {
		c.finish = console(res.f, sio)
	}
	return c, nil
}

// reap waits for pid, a child of ours, and collects its status.
func reap(pid int) (syscall.WaitStatus, error) {
	var ws syscall.WaitStatus
	for {
		_, err := syscall.Wait4(pid, &ws, 0, nil)
		if !errors.Is(err, syscall.EINTR) {
			return ws, err
		}
	}
}

func (r *Runc) command(ctx context.Context, dir string, args ...string) *exec.Cmd {
	global := []string{"--root", r.root}
	if dir != "" {
		// runc writes the real cause of a failure, often from inside the
		// container's init, to its log; runcError digs it out.
		global = append(global, "--log", filepath.Join(dir, "runc.log"), "--log-format", "json")
	}
	cmd := exec.CommandContext(ctx, r.binary, append(global, args...)...)
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// runc runs a short runc command and returns its combined output.
func (r *Runc) runc(ctx context.Context, dir string, args ...string) ([]byte, error) {
	return r.command(ctx, dir, args...).CombinedOutput()
}

// runcError is the most telling message about a failed runc command: the
// last error in its log if there is one, else what it printed.
func (r *Runc) runcError(dir string, output []byte, err error) error {
	msg := strings.TrimSpace(string(output))
	if dir != "" {
		if f, ferr := os.Open(filepath.Join(dir, "runc.log")); ferr == nil {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				var line struct{ Level, Msg string }
				if json.Unmarshal(sc.Bytes(), &line) == nil && line.Level == "error" && line.Msg != "" {
					msg = line.Msg
				}
			}
			f.Close()
		}
	}
	if msg == "" {
		return err
	}
	return fmt.Errorf("%w: %s", err, msg)
}

func (r *Runc) Signal(id string, sig syscall.Signal) error {
	if !ValidID(id) {
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	out, err := r.runc(context.Background(), "", "kill", id, strconv.Itoa(int(sig)))
	if err != nil {
		if notRunning(out) {
			return fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		return fmt.Errorf("runtime: signal %s: %w", id, r.runcError("", out, err))
	}
	return nil
}

func notRunning(runcOutput []byte) bool {
	s := string(runcOutput)
	return strings.Contains(s, "does not exist") || strings.Contains(s, "not running") ||
		strings.Contains(s, "process already finished")
}

// List returns the ids that have a bundle or runc state. Names starting
// with a dot in the state directory are not jobs.
func (r *Runc) List() ([]string, error) {
	entries, err := os.ReadDir(r.stateDir)
	if err != nil {
		return nil, fmt.Errorf("runtime: %w", err)
	}
	var ids []string
	for _, e := range entries {
		if e.IsDir() && ValidID(e.Name()) {
			ids = append(ids, e.Name())
		}
	}
	out, err := r.command(context.Background(), "", "list", "--quiet").Output()
	if err != nil {
		return nil, fmt.Errorf("runtime: runc list: %w", err)
	}
	for _, id := range strings.Fields(string(out)) {
		if ValidID(id) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}
