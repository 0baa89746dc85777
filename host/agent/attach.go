package agent

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/host/shim"
	"github.com/pierpaas/pier/runtime"
	"github.com/pierpaas/pier/store"
)

// Attach (GET /v1/jobs/{id}/attach, protocol in api/attach.go) is spliced
// through: the agent connects to the job's shim, which speaks the same
// protocol on its socket, upgrades the client's connection, and copies
// bytes both ways without reading them until either side closes. The
// shim, not the agent, owns the job's stdio, so an agent restart ends the
// attachment (and, without a TTY, the job's input) but not the job.

// attachReadyTimeout bounds how long an attach waits for a job that is
// assigned here but whose shim does not serve yet: `pier host run`
// attaches right after it created the job.
const attachReadyTimeout = 30 * time.Second

var (
	errAttachNoJob      = errors.New("no such job")
	errAttachNotRunning = errors.New("job is not running")
)

func (a *Agent) serveAttach(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !shim.IsAttachUpgrade(r) {
		writeError(w, http.StatusBadRequest, api.ErrCodeBadRequest,
			"attach is an HTTP/1.1 upgrade: send Connection: Upgrade and Upgrade: %s", api.AttachUpgrade)
		return
	}
	size, err := shim.AttachSize(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, api.ErrCodeBadRequest, "%v", err)
		return
	}
	if !api.ValidID(id) {
		writeError(w, http.StatusNotFound, api.ErrCodeNotFound, "no job %q on host %s", id, a.cfg.ID)
		return
	}
	jobConn, err := a.attachShim(r.Context(), id, size)
	switch {
	case err == nil:
	case errors.Is(err, errAttachNoJob):
		writeError(w, http.StatusNotFound, api.ErrCodeNotFound, "no job %q on host %s", id, a.cfg.ID)
		return
	case errors.Is(err, errAttachNotRunning):
		writeError(w, http.StatusConflict, api.ErrCodeConflict, "job %s is not running", id)
		return
	case errors.Is(err, shim.ErrAttached):
		writeError(w, http.StatusConflict, api.ErrCodeConflict, "another client is attached to job %s", id)
		return
	default:
		if r.Context().Err() != nil {
			return // the client left
		}
		writeError(w, http.StatusServiceUnavailable, api.ErrCodeUnavailable, "cannot attach to job %s: %v", id, err)
		return
	}
	defer jobConn.Close()
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		writeError(w, http.StatusInternalServerError, api.ErrCodeInternal, "cannot upgrade: %v", err)
		return
	}
	if rec, ok := w.(*statusRecorder); ok {
		rec.code, rec.wrote = http.StatusSwitchingProtocols, true
	}
	if !a.api.track(conn) {
		conn.Close() // the agent is stopping
		return
	}
	defer a.api.untrack(conn)
	_ = conn.SetDeadline(time.Time{})
	if _, err := io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: "+api.AttachUpgrade+"\r\n\r\n"); err != nil {
		conn.Close()
		return
	}
	a.cfg.Log.Debug("attached", "job", id)
	splice(conn, brw.Reader, jobConn)
}

// splice copies both ways until either side ends, then closes both.
func splice(client net.Conn, fromClient io.Reader, job net.Conn) {
	done := make(chan struct{}, 2)
	go func() {
		_, _ = io.Copy(job, fromClient)
		done <- struct{}{}
	}()
	go func() {
		_, _ = io.Copy(client, job)
		done <- struct{}{}
	}()
	<-done
	client.Close()
	job.Close()
	<-done
}

// attachShim connects to the job's shim, waiting for a job that is to
// run here but whose shim is not serving yet.
func (a *Agent) attachShim(ctx context.Context, id string, size runtime.ConsoleSize) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, attachReadyTimeout)
	defer cancel()
	var lastErr error
	for {
		a.mu.Lock()
		wk, ended := a.workers[id], a.ended[id]
		a.mu.Unlock()
		switch {
		case wk != nil:
			c := shim.NewClient(a.socketPath(id))
			conn, err := c.Attach(ctx, size)
			c.Close()
			if err == nil || errors.Is(err, shim.ErrAttached) {
				return conn, err
			}
			if res, _ := shim.ReadResult(a.jobDir(id)); res != nil {
				return nil, errAttachNotRunning
			}
			lastErr = err // its shim is starting
		case ended:
			return nil, errAttachNotRunning
		default:
			if err := a.awaitedJob(ctx, id); err != nil {
				return nil, err
			}
		}
		select {
		case <-ctx.Done():
			if lastErr == nil {
				lastErr = errors.New("its supervisor did not start in time")
			}
			return nil, lastErr
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// awaitedJob returns nil for a job that is to run here but has no worker
// yet (its record may be newer than the agent's cache), and why not
// otherwise.
func (a *Agent) awaitedJob(ctx context.Context, id string) error {
	key, err := store.Key(store.JobsPrefix, a.cfg.ID, id)
	if err != nil {
		return errAttachNoJob
	}
	job, ok := a.jobs.Get(key)
	if !ok {
		rctx, cancel := context.WithTimeout(ctx, statusTimeout)
		rec, _, err := store.Get[api.Job](rctx, a.Client, key)
		cancel()
		switch {
		case errors.Is(err, store.ErrNotFound):
			if _, known := a.hostJob(ctx, id); known {
				return errAttachNotRunning
			}
			return errAttachNoJob
		case err != nil:
			return nil // the store is slow: wait and see
		}
		return awaitable(rec)
	}
	return awaitable(job.Value)
}

func awaitable(job api.Job) error {
	if job.Desired != api.DesiredRunning {
		return errAttachNotRunning
	}
	return nil
}

// track registers a hijacked connection, which the server's shutdown does
// not see, so that stopping the API closes it; false once stopping.
func (s *apiServer) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.hijacked == nil {
		s.hijacked = map[net.Conn]struct{}{}
	}
	s.hijacked[c] = struct{}{}
	return true
}

func (s *apiServer) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.hijacked, c)
	s.mu.Unlock()
}

// closeHijacked ends every attachment; the caller has set closed.
func (s *apiServer) closeHijacked() {
	s.mu.Lock()
	conns := make([]net.Conn, 0, len(s.hijacked))
	for c := range s.hijacked {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}
