package shim

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/runtime"
)

// attachWriteTimeout bounds one frame's write to an attached client: a
// client that stops reading is detached rather than allowed to stall the
// job's output (which the log keeps regardless).
const attachWriteTimeout = 10 * time.Second

// attacher connects at most one client at a time to the job's stdio: it
// sends the job's output (also written to the log) as frames while a
// client is attached, and feeds the client's input to the job's stdin
// pipe or, with a TTY, to the pty master. See api/attach.go for the
// protocol.
type attacher struct {
	tty bool
	log *slog.Logger

	mu        sync.Mutex
	busy      bool     // a client is attached or being attached
	conn      net.Conn // the attached client
	attached  bool     // a client has attached once
	first     chan struct{}
	size      runtime.ConsoleSize // the size the client last asked for
	stdin     *os.File            // without a TTY: our end of the job's stdin, until closed
	console   *os.File            // with a TTY: the pty master once the job runs
	ready     chan struct{}       // closed once console is set, or the job ended
	readyDone bool
	exit      *api.AttachExit // once the job has ended

	wmu sync.Mutex // serialises frames to conn
}

func newAttacher(tty bool, log *slog.Logger) *attacher {
	return &attacher{tty: tty, log: log, first: make(chan struct{}), ready: make(chan struct{})}
}

// waitFirst waits for the first client to attach, up to d; it reports
// whether one did.
func (a *attacher) waitFirst(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-a.first:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

// initialSize is the size the first client asked for, if any.
func (a *attacher) initialSize() runtime.ConsoleSize {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.size
}

// setStdin gives the attacher our end of the job's stdin pipe.
func (a *attacher) setStdin(w *os.File) {
	a.mu.Lock()
	a.stdin = w
	a.mu.Unlock()
}

// setConsole gives the attacher the pty master as the job starts, and
// applies a size asked for since the job's spec was made.
func (a *attacher) setConsole(master *os.File) {
	a.mu.Lock()
	a.console = master
	size := a.size
	a.markReady()
	a.mu.Unlock()
	if size.Rows > 0 && size.Cols > 0 {
		if err := setWinsize(master, size); err != nil {
			a.log.Warn("resize console", "err", err)
		}
	}
}

// closeConsole closes the pty master once the job's output is copied.
func (a *attacher) closeConsole() {
	a.mu.Lock()
	c := a.console
	a.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// markReady wakes input waiting for the console; the caller holds mu.
func (a *attacher) markReady() {
	if !a.readyDone {
		a.readyDone = true
		close(a.ready)
	}
}

// closeStdin ends the job's input: EOF on its stdin pipe, or ^D typed on
// its terminal.
func (a *attacher) closeStdin() {
	if a.tty {
		a.writeStdin([]byte{4})
		return
	}
	a.mu.Lock()
	f := a.stdin
	a.stdin = nil
	a.mu.Unlock()
	if f != nil {
		f.Close()
	}
}

// writeStdin passes input to the job. With a TTY, input sent before the
// job runs waits for its terminal. Input for a job that has no stdin, or
// no longer reads it, is dropped.
func (a *attacher) writeStdin(p []byte) {
	var w *os.File
	if a.tty {
		<-a.ready
		a.mu.Lock()
		w = a.console
		a.mu.Unlock()
	} else {
		a.mu.Lock()
		w = a.stdin
		a.mu.Unlock()
	}
	if w != nil {
		// Blocks while the job does not read: backpressure to the client.
		_, _ = w.Write(p)
	}
}

func (a *attacher) resize(size runtime.ConsoleSize) {
	if !a.tty || size.Rows == 0 || size.Cols == 0 {
		return
	}
	a.mu.Lock()
	a.size = size
	c := a.console
	a.mu.Unlock()
	if c != nil {
		if err := setWinsize(c, size); err != nil {
			a.log.Debug("resize console", "err", err)
		}
	}
}

// output returns a writer that writes to the log and to the attached
// client, if any, as frames of type typ.
func (a *attacher) output(log io.Writer, typ byte) io.Writer {
	return &teeWriter{log: log, a: a, typ: typ}
}

type teeWriter struct {
	log io.Writer
	a   *attacher
	typ byte
}

func (t *teeWriter) Write(p []byte) (int, error) {
	n, err := t.log.Write(p)
	t.a.send(t.typ, p)
	return n, err
}

// send writes p to the attached client, if any; a client that cannot take
// it in time is detached.
func (a *attacher) send(typ byte, p []byte) {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	a.mu.Lock()
	c := a.conn
	a.mu.Unlock()
	if c == nil {
		return
	}
	_ = c.SetWriteDeadline(time.Now().Add(attachWriteTimeout))
	for len(p) > 0 {
		chunk := p[:min(len(p), 32<<10)]
		p = p[len(chunk):]
		if err := api.WriteFrame(c, typ, chunk); err != nil {
			a.log.Debug("attached client dropped", "err", err)
			a.detach(c)
			return
		}
	}
}

// reserve claims the one attach slot.
func (a *attacher) reserve() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.busy {
		return false
	}
	a.busy = true
	return true
}

func (a *attacher) release() {
	a.mu.Lock()
	a.busy = false
	a.mu.Unlock()
}

// attach makes c the attached client, with the size it asked for, and
// serves its input until it goes. A client that comes after the job ended
// gets the exit at once.
func (a *attacher) attach(c net.Conn, r io.Reader, size runtime.ConsoleSize) {
	a.mu.Lock()
	a.conn = c
	first := !a.attached
	a.attached = true
	exit := a.exit
	a.mu.Unlock()
	if size.Rows > 0 && size.Cols > 0 {
		if first {
			a.mu.Lock()
			a.size = size // the job's terminal starts at this size
			a.mu.Unlock()
		} else {
			a.resize(size)
		}
	}
	if first {
		close(a.first)
	}
	if exit != nil {
		a.sendExit(c, exit)
		return
	}
	for {
		typ, p, err := api.ReadFrame(r)
		if err != nil {
			break
		}
		switch typ {
		case api.FrameStdin:
			a.writeStdin(p)
		case api.FrameCloseStdin:
			a.closeStdin()
		case api.FrameResize:
			if rows, cols, ok := api.ParseResize(p); ok {
				a.resize(runtime.ConsoleSize{Rows: rows, Cols: cols})
			}
		}
		// Other frame types are not the client's to send; ignored, so a
		// newer client can talk to an older shim.
	}
	a.detach(c)
}

// detach ends c's attachment. Without a TTY the job's input ends with
// it: whoever would type next is gone.
func (a *attacher) detach(c net.Conn) {
	a.mu.Lock()
	var stdin *os.File
	if a.conn == c {
		a.conn, a.busy = nil, false
		if !a.tty {
			stdin, a.stdin = a.stdin, nil
		}
	}
	a.mu.Unlock()
	c.Close()
	if stdin != nil {
		stdin.Close()
	}
}

// finish sends the job's end to the attached client and closes what is
// left of the job's input.
func (a *attacher) finish(exit *api.AttachExit) {
	a.mu.Lock()
	a.exit = exit
	c := a.conn
	stdin := a.stdin
	a.stdin = nil
	a.markReady()
	a.mu.Unlock()
	if stdin != nil {
		stdin.Close()
	}
	if c != nil {
		a.sendExit(c, exit)
	}
}

func (a *attacher) sendExit(c net.Conn, exit *api.AttachExit) {
	b, _ := json.Marshal(exit)
	a.wmu.Lock()
	_ = c.SetWriteDeadline(time.Now().Add(attachWriteTimeout))
	_ = api.WriteFrame(c, api.FrameExit, b)
	a.wmu.Unlock()
	a.detach(c)
}

// attachExit is a result as an attached client sees it.
func attachExit(r *Result) *api.AttachExit {
	return &api.AttachExit{
		ExitCode: r.Exit.Code, Signal: r.Exit.Signal, OOMKilled: r.Exit.OOMKilled, Error: r.Error,
		StartedAt: r.Exit.Started, FinishedAt: r.Exit.Finished,
	}
}

// serveAttach upgrades the connection to the attach protocol.
func (s *server) serveAttach(w http.ResponseWriter, r *http.Request) {
	if !IsAttachUpgrade(r) {
		http.Error(w, "attach wants Connection: Upgrade and Upgrade: "+api.AttachUpgrade, http.StatusBadRequest)
		return
	}
	size, err := AttachSize(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if !s.att.reserve() {
		http.Error(w, "another client is attached to the job", http.StatusConflict)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		s.att.release()
		http.Error(w, "cannot attach: "+err.Error(), http.StatusInternalServerError)
		return
	}
	_ = conn.SetDeadline(time.Time{})
	if _, err := io.WriteString(conn, switchingProtocols); err != nil {
		s.att.release()
		conn.Close()
		return
	}
	s.att.attach(conn, brw.Reader, size)
}

const switchingProtocols = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + api.AttachUpgrade + "\r\n\r\n"

// IsAttachUpgrade reports whether r asks to switch to the attach
// protocol, over HTTP/1.1 as an upgrade needs.
func IsAttachUpgrade(r *http.Request) bool {
	return r.ProtoMajor == 1 && headerHasToken(r.Header, "Connection", "upgrade") &&
		headerHasToken(r.Header, "Upgrade", api.AttachUpgrade)
}

// headerHasToken reports whether a comma-separated header lists token,
// ignoring case.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// AttachSize reads the optional rows and cols of an attach request.
func AttachSize(r *http.Request) (runtime.ConsoleSize, error) {
	q := r.URL.Query()
	var size runtime.ConsoleSize
	for _, f := range []struct {
		name string
		v    *uint16
	}{{"rows", &size.Rows}, {"cols", &size.Cols}} {
		s := q.Get(f.name)
		if s == "" {
			continue
		}
		n, err := strconv.ParseUint(s, 10, 16)
		if err != nil {
			return size, errBadSize(f.name)
		}
		*f.v = uint16(n)
	}
	return size, nil
}

type errBadSize string

func (e errBadSize) Error() string { return string(e) + " must be a number from 0 to 65535" }

// setWinsize sets a pty's window size through SyscallConn: Fd would make
// the file blocking, and Close could then no longer interrupt a Read.
func setWinsize(f *os.File, size runtime.ConsoleSize) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	ws := &unix.Winsize{Row: size.Rows, Col: size.Cols}
	if cerr := rc.Control(func(fd uintptr) { err = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, ws) }); cerr != nil {
		return cerr
	}
	return err
}

// bufConn is a connection whose first bytes may already sit in a reader's
// buffer.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(p []byte) (int, error) { return c.r.Read(p) }
