package gitreceive

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

// Builder builds and releases an app from a pushed commit.
type Builder interface {
	// Build builds and releases req.App from the pushed commit. req.Source
	// is a gzipped tar of the commit's tree. Progress goes to out as it
	// happens (the pusher sees it as "remote: ..." lines); an error fails
	// the push, and its message is shown. ctx ends when the pusher goes
	// away: the branch will not move, so neither should the release.
	Build(ctx context.Context, req BuildRequest, out io.Writer) error
}

// BuildRequest is one push to build.
type BuildRequest struct {
	App    string
	Commit string // the pushed commit, 40 hex digits
	Ref    string // refs/heads/main or refs/heads/master
	// Pusher says who pushed, for logs and audit: "ssh:SHA256:..." (the
	// key's fingerprint) or "http:api-key".
	Pusher string
	Source io.Reader
}

// Auth decides who may push and to what.
type Auth interface {
	// AuthorizeKey says whether a public key may push (it is registered).
	AuthorizeKey(ctx context.Context, key ssh.PublicKey) error
	// AuthorizeAPIKey checks an API key given as the HTTP basic-auth
	// password (or as a bearer token).
	AuthorizeAPIKey(ctx context.Context, secret string) error
	// AppID identifies an app for as long as it exists ("" when there is
	// no such app): an app destroyed and created again under the same name
	// gets another, so it does not inherit the old one's repository.
	AppID(ctx context.Context, app string) (string, error)
}

// Config configures a Receiver.
type Config struct {
	// RepoDir is where bare repositories live, one per app
	// (RepoDir/<app>.git), each created on the app's first push.
	RepoDir string
	HostKey ssh.Signer // needed by ServeSSH only
	Builder Builder
	Auth    Auth
	Log     *slog.Logger
	// Git is the git binary; "git" from PATH by default.
	Git string
	// Hook is the command git's pre-receive hook runs; by default this
	// executable's hidden `git-hook` command, which calls RunHook.
	Hook []string
}

// Environment of receive-pack and so of the hook: how to reach the
// Receiver back, and which git to use.
const (
	envSocket = "PIER_GIT_HOOK_SOCKET"
	envToken  = "PIER_GIT_HOOK_TOKEN"
	envGit    = "PIER_GIT_HOOK_GIT"
)

// Receiver serves git pushes and fetches for every app.
type Receiver struct {
	cfg     Config
	log     *slog.Logger
	sockDir string
	hookLn  net.Listener
	stop    context.CancelFunc
	ctx     context.Context // ends at Close, and with it every build
	wg      sync.WaitGroup

	initMu sync.Mutex // serialises repository creation and hook writes

	mu     sync.Mutex
	locks  map[string]chan struct{} // app → a one-slot semaphore held for a whole push
	pushes map[string]*push         // hook token → the push it was made for
	closed bool
}

// push is one running receive-pack, known to the hook by its token.
type push struct {
	ctx    context.Context // ends when the pusher goes away
	app    string
	pusher string
	dir    string // the repository
}

// New checks cfg, makes RepoDir, and starts listening for hooks on a unix
// socket in a private directory. Close stops that.
func New(cfg Config) (*Receiver, error) {
	if cfg.RepoDir == "" || cfg.Builder == nil || cfg.Auth == nil {
		return nil, errors.New("gitreceive: RepoDir, Builder and Auth are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Git == "" {
		cfg.Git = "git"
	}
	if _, err := exec.LookPath(cfg.Git); err != nil {
		return nil, fmt.Errorf("gitreceive: %w", err)
	}
	if len(cfg.Hook) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("gitreceive: find the hook command: %w", err)
		}
		cfg.Hook = []string{exe, "git-hook"}
	}
	dir, err := filepath.Abs(cfg.RepoDir)
	if err != nil {
		return nil, err
	}
	cfg.RepoDir = dir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("gitreceive: %w", err)
	}
	// A crash in the middle of creating a repository leaves its temporary
	// directory behind; nothing else can be using one now.
	old, _ := filepath.Glob(filepath.Join(dir, ".init-*"))
	for _, o := range old {
		os.RemoveAll(o)
	}
	ctx, stop := context.WithCancel(context.Background())
	r := &Receiver{
		ctx:    ctx,
		stop:   stop,
		cfg:    cfg,
		log:    cfg.Log.With("component", "gitreceive"),
		locks:  map[string]chan struct{}{},
		pushes: map[string]*push{},
	}
	if err := r.listenHooks(); err != nil {
		stop()
		return nil, err
	}
	return r, nil
}

// listenHooks opens the hook socket. Only this user can reach it (0700
// directory, 0600 socket), and a caller still needs a live push's token.
func (r *Receiver) listenHooks() error {
	dir, err := os.MkdirTemp("", "pier-git-")
	if err != nil {
		return fmt.Errorf("gitreceive: %w", err)
	}
	sock := filepath.Join(dir, "hook.sock")
	if len(sock) > 100 { // sun_path is 108 bytes; a long TMPDIR would not fit
		os.RemoveAll(dir)
		if dir, err = os.MkdirTemp("/tmp", "pier-git-"); err != nil {
			return fmt.Errorf("gitreceive: %w", err)
		}
		sock = filepath.Join(dir, "hook.sock")
	}
	ln, err := net.Listen("unix", sock)
	if err == nil {
		err = os.Chmod(sock, 0o600)
	}
	if err != nil {
		os.RemoveAll(dir)
		return fmt.Errorf("gitreceive: hook socket: %w", err)
	}
	r.sockDir, r.hookLn = dir, ln
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.acceptHooks(ln)
	}()
	return nil
}

// Close stops the hook listener, cancels the builds in progress (their
// pushes fail) and removes the socket. Stop ServeSSH and the HTTP server
// first, or pushes may still begin and then fail.
func (r *Receiver) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	r.stop()
	err := r.hookLn.Close()
	r.wg.Wait()
	os.RemoveAll(r.sockDir)
	return err
}

// repoPath is where app's repository lives. app must be valid already.
func (r *Receiver) repoPath(app string) string {
	return filepath.Join(r.cfg.RepoDir, app+".git")
}

func (r *Receiver) repoExists(app string) bool {
	_, err := os.Stat(filepath.Join(r.repoPath(app), "HEAD"))
	return err == nil
}

// appIDKey is the git config key recording which app a repository is of.
const appIDKey = "pier.appid"

// forgetStale removes app's repository if it belongs to an earlier app of
// that name (one destroyed since): its code is not the new app's to see.
func (r *Receiver) forgetStale(ctx context.Context, app, id string) error {
	r.initMu.Lock()
	defer r.initMu.Unlock()
	if !r.repoExists(app) {
		return nil
	}
	dir := r.repoPath(app)
	out, _ := r.command(ctx, nil, "-C", dir, "config", "--get", appIDKey).Output()
	if bytesTrim(out) == id {
		return nil
	}
	r.log.Info("removing the repository of a destroyed app", "app", app)
	return os.RemoveAll(dir)
}

// ensureRepo creates app's repository if need be and (re)writes its hook,
// so a repository made by an older binary calls the current one.
func (r *Receiver) ensureRepo(ctx context.Context, app, id string) (string, error) {
	r.initMu.Lock()
	defer r.initMu.Unlock()
	dir := r.repoPath(app)
	if _, err := os.Stat(filepath.Join(dir, "HEAD")); errors.Is(err, fs.ErrNotExist) {
		// Made aside and renamed into place, so a half-made repository is
		// never served.
		tmp, err := os.MkdirTemp(r.cfg.RepoDir, ".init-"+app+"-")
		if err != nil {
			return "", err
		}
		defer os.RemoveAll(tmp)
		for _, args := range [][]string{
			{"init", "--quiet", "--bare", "--initial-branch=main", tmp},
			// Pushed objects are untrusted input: check them, but let
			// through the oddity old repositories commonly carry.
			{"-C", tmp, "config", "receive.fsckObjects", "true"},
			{"-C", tmp, "config", "receive.fsck.zeroPaddedFilemode", "ignore"},
			{"-C", tmp, "config", "receive.denyDeletes", "true"},
			{"-C", tmp, "config", appIDKey, id},
		} {
			if out, err := r.command(ctx, nil, args...).CombinedOutput(); err != nil {
				return "", fmt.Errorf("gitreceive: git %s: %v: %s", args[0], err, bytesTrim(out))
			}
		}
		if err := os.Rename(tmp, dir); err != nil {
			return "", err
		}
	} else if err != nil {
		return "", err
	}
	return dir, writeAtomic(filepath.Join(dir, "hooks", "pre-receive"), []byte(hookScript(r.cfg.Hook)), 0o755)
}

// hookScript is the pre-receive hook: a fixed script that execs the hook
// command. The command comes from the server's configuration, never from
// a user, and is single-quoted anyway.
func hookScript(cmd []string) string {
	q := make([]string, len(cmd))
	for i, a := range cmd {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return "#!/bin/sh\n# Written by pier's git receiver on every push: the build runs here.\nexec " +
		strings.Join(q, " ") + "\n"
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err2 := f.Close(); err == nil {
		err = err2
	}
	if err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// lockApp takes app's push lock, waiting for a push in progress to finish
// (calling waiting first, so the pusher knows why nothing happens).
// Pushes to one app are serialised: builds of one app never overlap, and
// a push's view of the branch cannot change under it.
func (r *Receiver) lockApp(ctx context.Context, app string, waiting func()) (unlock func(), err error) {
	r.mu.Lock()
	sem := r.locks[app]
	if sem == nil {
		sem = make(chan struct{}, 1)
		r.locks[app] = sem
	}
	r.mu.Unlock()
	unlock = func() { <-sem }
	select {
	case sem <- struct{}{}:
		return unlock, nil
	default:
	}
	if waiting != nil {
		waiting()
	}
	select {
	case sem <- struct{}{}:
		return unlock, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// startPush registers a push and returns the environment that lets its
// hook reach the Receiver; end forgets the push, so its token dies with it.
func (r *Receiver) startPush(ctx context.Context, app, dir, pusher string) (env []string, end func(), err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, nil, err
	}
	token := hex.EncodeToString(b[:])
	r.mu.Lock()
	r.pushes[token] = &push{ctx: ctx, app: app, dir: dir, pusher: pusher}
	r.mu.Unlock()
	env = []string{
		envSocket + "=" + r.hookLn.Addr().String(),
		envToken + "=" + token,
		envGit + "=" + r.cfg.Git,
	}
	return env, func() {
		r.mu.Lock()
		delete(r.pushes, token)
		r.mu.Unlock()
	}, nil
}

// claim returns the push a token was made for, once: a token is good for
// one hook run.
func (r *Receiver) claim(token string) *push {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.pushes[token]
	delete(r.pushes, token)
	return p
}

// command prepares a git command. Only our own arguments reach it, never
// a shell. Hooks are pinned to the repository's own hooks directory
// whatever the server's git configuration says, since a push that skips
// its hook would skip its build. The whole process group (git and the
// hook under it) is stopped when ctx ends, which stops a build whose
// pusher went away.
func (r *Receiver) command(ctx context.Context, env []string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, r.cfg.Git, args...)
	cmd.Env = append(gitEnviron(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// serviceCommand is the command line of one pack service in dir.
func (r *Receiver) serviceCommand(ctx context.Context, service, dir string, env []string, extra ...string) *exec.Cmd {
	args := []string{"-c", "core.hooksPath=" + filepath.Join(dir, "hooks"), strings.TrimPrefix(service, "git-")}
	if service == "git-upload-pack" {
		args = append(args, "--strict") // dir exactly, not dir.git or dir/.git
	}
	args = append(append(args, extra...), dir)
	return r.command(ctx, env, args...)
}

// gitEnviron is this process's environment without the variables that
// would point git somewhere else (GIT_DIR and friends) or pose as a hook.
func gitEnviron() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "GIT_") || strings.HasPrefix(kv, "PIER_GIT_HOOK_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// protocolRE is what we pass on as GIT_PROTOCOL from a client: a version.
var protocolRE = regexp.MustCompile(`^version=[0-9]$`)

// runService runs a pack service with the client's streams. stdin is
// copied by our own goroutine rather than by exec, whose Wait would block
// on a client that never closes its side.
func runService(cmd *exec.Cmd, stdin io.Reader, stdout, stderr io.Writer) error {
	cmd.Stdout, cmd.Stderr = stdout, stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() {
		io.Copy(in, stdin)
		in.Close()
	}()
	err = cmd.Wait()
	// Anything the hook left behind in the group goes too.
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	return err
}

func bytesTrim(b []byte) string { return strings.TrimSpace(string(b)) }
