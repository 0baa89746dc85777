package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path"
	"regexp"
	goruntime "runtime"
	"strings"
	"syscall"
	"time"
)

// Runtime runs jobs. A job's id names all the state a runtime keeps for it,
// so one id runs at most once at a time, and Delete(id) must have been
// called (Run does it itself when it returns) before the id can be reused.
type Runtime interface {
	// Run starts the job, calls started with the pid of its process as seen
	// from the host once it runs, and blocks until it exits. Cancelling ctx
	// kills it (the Exit then reports SIGKILL and ctx.Err() tells why). A
	// non-nil error means the job could not be started or observed; the
	// Exit is then zero. Run removes the job's state before it returns.
	Run(ctx context.Context, spec Spec, stdio IO, started func(pid int)) (Exit, error)
	// Signal sends sig to the job's main process. ErrNotFound if the job
	// is not running.
	Signal(id string, sig syscall.Signal) error
	// Delete kills whatever is left of the job and removes its state:
	// processes, mounts, cgroups, files. It is idempotent and safe to call
	// for a job whose Run was interrupted by a crash of the caller.
	Delete(id string) error
	// List returns the ids of the jobs this runtime holds state for,
	// running or not, so the caller can Delete those it does not know.
	List() ([]string, error)
	// Name is the driver's name: "runc", "process" or "fake".
	Name() string
}

// New returns the runtime to use by default: Runc when this process runs
// as root on Linux, else the process driver, which isolates nothing and
// says so in the log.
func New(o RuncOptions) (Runtime, error) {
	if goruntime.GOOS != "linux" || os.Geteuid() != 0 {
		return NewProcess(o.Log), nil
	}
	r, err := NewRunc(o)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// RuncOptions configure the runc driver. Zero values take the defaults.
type RuncOptions struct {
	// StateDir holds one bundle directory per job; default
	// /var/lib/pier/runtime.
	StateDir string
	// Root is runc's own state directory (runc --root); default
	// /run/pier/runc. Kept apart from runc's default so that `runc list`
	// on the host shows only someone else's containers, and ours cannot
	// collide with them.
	Root string
	// Binary is the runc executable; default "runc" from PATH.
	Binary string
	// Log defaults to slog.Default().
	Log *slog.Logger
}

// Spec is what to run and how to confine it.
type Spec struct {
	ID   string   // job id, [a-z0-9-]{1,64}; names the container, cgroup and state dir
	Args []string // command and arguments, executed directly (no shell)
	// Init is the path, inside the job, of pier's init (package pid1: the
	// pier binary, bound in with Mounts). With it the job's first process
	// is that init, which runs Args as its child, passes the stop signals
	// on to the child's process group and reaps orphans, and the Exit is
	// the command's as the init reports it, signal included. Without it an
	// app that installs no SIGTERM handler ignores a stop's SIGTERM, as
	// PID 1 of its namespace. Drivers that give jobs no PID namespace of
	// their own (process, fake) need no init and ignore it.
	Init string
	Env  []string // KEY=VALUE; PATH, HOME (and TERM with a TTY) get defaults if absent
	// Dir is the working directory inside the container; it defaults to
	// /app when AppDir is set and to / otherwise.
	Dir string
	// AppDir is a host directory (the unpacked artifact) mounted at /app,
	// read-only unless Writable; optional. Never modified.
	AppDir string
	// RootFS lists unpacked OCI image layer directories, lowest first, in
	// overlayfs form (whiteouts as 0:0 character devices, opaque directories
	// marked with the trusted.overlay.opaque xattr), or one flattened tree.
	// Empty means the host stack: the host's /usr and /lib* and a generated
	// /etc. The directories must not change while a job uses them.
	RootFS   []string
	Hostname string // defaults to ID
	TTY      bool   // give the process a pty as its stdio (see IO.Console)
	// ConsoleSize is the pty's size from the start, with TTY; zero leaves
	// it 0×0 until the caller resizes it. Set here rather than by the
	// caller with TIOCSWINSZ, which could only come after the process
	// has already started and asked.
	ConsoleSize ConsoleSize
	// Root runs the process as uid 0 instead of the unprivileged "app" user
	// (uid and gid 1000). Root in a container still has only the small
	// capability set, no_new_privs and the seccomp filter.
	Root bool
	// UID and GID are the user and group the process runs as, unless
	// Root; zero means AppUID and, for GID, the uid (AppGID for AppUID).
	// Each app gets a uid of its own (see api.AppUID). On the host stack
	// the generated /etc/passwd and /etc/group name them "app", home /app.
	UID, GID int
	// Writable lets the job write to its root file system and /app, as a
	// Heroku dyno can (Rails writes tmp/ and log/ under /app; images write
	// to /var/run). Writes land in upper layers on the job's size-capped
	// tmpfs and vanish with the job; AppDir and the image layers stay
	// untouched. Off by default, when only /tmp and /dev/shm are writable.
	Writable bool
	Limits   Limits
	Mounts   []Mount // extra bind mounts, e.g. build cache directories
	// NetNS is the path of a network namespace (a bind-mounted nsfs file)
	// the job joins; its owner has set it up. Empty shares the host's
	// network. Drivers without namespaces (process, fake) ignore it.
	NetNS string
	// Nameservers replace the host's resolvers in the job's
	// /etc/resolv.conf; empty copies the host's file. A job in its own
	// network namespace cannot reach a resolver on the host's loopback.
	Nameservers []string
}

// ConsoleSize is a terminal's size in character cells.
type ConsoleSize struct {
	Rows, Cols uint16
}

// Limits are the job's resource limits. Zero means the default.
type Limits struct {
	MemoryMB  int64 // memory limit without swap; 0 = unlimited
	CPUMillis int64 // CPU quota in millicores (1000 = one core); 0 = unlimited
	PIDs      int64 // maximum number of tasks; 0 = DefaultPIDs
	// DiskMB caps the job's writable storage (/tmp and, with Writable, the
	// upper layers of / and /app); 0 = DefaultDiskMB. It is a tmpfs, so
	// what is written there is also charged to the job's memory.
	DiskMB int64
}

// Defaults for zero Limits. PIDs is never unlimited because a fork bomb
// without a limit takes the whole host down with it.
const (
	DefaultPIDs   = 1024
	DefaultDiskMB = 256
)

// The unprivileged user jobs run as, unless Spec.Root. The generated
// /etc/passwd of the stack names it "app" with /app as its home, like a
// Heroku dyno.
const (
	AppUID = 1000
	AppGID = 1000
)

// Mount is an extra bind mount of a host directory or file.
type Mount struct {
	Source      string // absolute host path
	Destination string // absolute path inside the container
	ReadOnly    bool
}

// IO is the job's stdio. For a job without a TTY, nil Stdin reads as empty
// and nil Stdout or Stderr discards. With Spec.TTY, Stderr is unused and
// the process's stdio is a pty: if Console is set, Run hands it the pty
// master as the process starts (output waits in the pty until read) and the
// callee owns it from then on (copying, resizing with TIOCSWINSZ, closing);
// if not, Run copies Stdin to the pty and the pty to Stdout itself.
type IO struct {
	Stdin   io.Reader
	Stdout  io.Writer
	Stderr  io.Writer
	Console func(master *os.File)
}

// Exit is how a job ended.
type Exit struct {
	// Code is the exit status, or 128+n when signal n killed the process,
	// as a shell reports it.
	Code      int
	Signal    string // e.g. "SIGKILL" when a signal killed the process; "" otherwise
	OOMKilled bool   // the kernel killed a process of the job for exceeding its memory limit
	Started   time.Time
	Finished  time.Time
}

// Errors. Spec validation errors wrap ErrInvalidSpec.
var (
	ErrInvalidSpec = errors.New("runtime: invalid spec")
	ErrExists      = errors.New("runtime: job already has state")
	ErrNotFound    = errors.New("runtime: no such job")
	ErrUnsupported = errors.New("runtime: not supported by this driver")
)

var idPattern = regexp.MustCompile(`^[a-z0-9-]{1,64}$`)

// ValidID reports whether id can name a job. The pattern keeps ids safe to
// use as path elements, cgroup names and runc container ids.
func ValidID(id string) bool { return idPattern.MatchString(id) }

// Validate checks a spec the way Run does, so a caller can refuse a job
// before trying to run it. Errors wrap ErrInvalidSpec.
func (s Spec) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidSpec, fmt.Sprintf(format, a...))
	}
	if !ValidID(s.ID) {
		return bad("id %q does not match [a-z0-9-]{1,64}", s.ID)
	}
	if len(s.Args) == 0 || s.Args[0] == "" {
		return bad("no command")
	}
	for _, kv := range s.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return bad("env %q is not KEY=VALUE", kv)
		}
	}
	if s.Init != "" && !path.IsAbs(s.Init) {
		return bad("init %q is not absolute", s.Init)
	}
	if s.Dir != "" && !path.IsAbs(s.Dir) {
		return bad("dir %q is not absolute", s.Dir)
	}
	if s.AppDir != "" && (!path.IsAbs(s.AppDir) || strings.ContainsAny(s.AppDir, ":,")) {
		return bad("app dir %q must be absolute and free of ':' and ','", s.AppDir)
	}
	for _, l := range s.RootFS {
		// overlayfs separates lower dirs with ':' and options with ','.
		if !path.IsAbs(l) || strings.ContainsAny(l, ":,") {
			return bad("rootfs layer %q must be absolute and free of ':' and ','", l)
		}
	}
	for _, m := range s.Mounts {
		if !path.IsAbs(m.Source) || !path.IsAbs(m.Destination) || path.Clean(m.Destination) == "/" {
			return bad("mount %s:%s needs absolute paths and a destination other than /", m.Source, m.Destination)
		}
	}
	if s.NetNS != "" && !path.IsAbs(s.NetNS) {
		return bad("network namespace %q is not absolute", s.NetNS)
	}
	for _, ns := range s.Nameservers {
		if net.ParseIP(ns) == nil {
			return bad("nameserver %q is not an IP address", ns)
		}
	}
	if err := s.validateUser(); err != nil {
		return err
	}
	if s.Hostname != "" && !validHostname(s.Hostname) {
		return bad("hostname %q", s.Hostname)
	}
	l := s.Limits
	if l.MemoryMB < 0 || l.CPUMillis < 0 || l.PIDs < 0 || l.DiskMB < 0 {
		return bad("negative limit")
	}
	return nil
}

func validHostname(h string) bool {
	if len(h) > 63 {
		return false
	}
	for _, c := range h {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// withDefaults fills the defaults every driver applies the same way.
func (s Spec) withDefaults() Spec {
	if s.Hostname == "" {
		s.Hostname = s.ID
	}
	if s.Dir == "" {
		s.Dir = "/"
		if s.AppDir != "" {
			s.Dir = "/app"
		}
	}
	if s.Limits.PIDs == 0 {
		s.Limits.PIDs = DefaultPIDs
	}
	if s.Limits.DiskMB == 0 {
		s.Limits.DiskMB = DefaultDiskMB
	}
	home := "/app"
	if s.Root {
		home = "/root"
	}
	env := append([]string(nil), s.Env...)
	env = setDefault(env, "PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	env = setDefault(env, "HOME", home)
	if s.TTY {
		env = setDefault(env, "TERM", "xterm")
	}
	s.Env = env
	return s
}

func setDefault(env []string, key, value string) []string {
	for _, kv := range env {
		if strings.HasPrefix(kv, key+"=") {
			return env
		}
	}
	return append(env, key+"="+value)
}
