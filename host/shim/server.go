package shim

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/pierpaas/pier/runtime"
)

// Status is what a running shim reports.
type Status struct {
	Started *Started `json:"started,omitempty"`
	Result  *Result  `json:"result,omitempty"`
}

// server is the shim's control socket. Only the socket's owner (root) can
// connect: the socket is created with mode 0600 in a 0700 directory, since
// jobs share the host's network namespace and must not reach it.
type server struct {
	id   string
	rt   runtime.Runtime
	log  *slog.Logger
	http *http.Server
	path string
	att  *attacher

	mu     sync.Mutex
	status Status
	done   chan struct{}
}

func listen(path, id string, rt runtime.Runtime, att *attacher, log *slog.Logger) (*server, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	os.Remove(path) // a stale socket of a shim that died before its job started
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("shim: listen %s: %w", path, err)
	}
	s := &server{id: id, rt: rt, log: log, path: path, att: att, done: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", s.serveStatus)
	mux.HandleFunc("POST /signal", s.serveSignal)
	mux.HandleFunc("GET /wait", s.serveWait)
	mux.HandleFunc("GET /attach", s.serveAttach)
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go s.http.Serve(ln)
	return s, nil
}

func (s *server) setStarted(st *Started) {
	s.mu.Lock()
	s.status.Started = st
	s.mu.Unlock()
}

func (s *server) finish(r *Result) {
	s.mu.Lock()
	s.status.Result = r
	s.mu.Unlock()
	close(s.done)
}

func (s *server) snapshot() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// close waits briefly for waiters to collect the result, then stops.
func (s *server) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s.http.Shutdown(ctx)
	os.Remove(s.path)
}

func (s *server) serveStatus(w http.ResponseWriter, r *http.Request) {
	writeJSONResponse(w, s.snapshot())
}

func (s *server) serveSignal(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.Atoi(r.URL.Query().Get("signal"))
	if err != nil || n <= 0 || n > 64 {
		http.Error(w, "signal must be a number from 1 to 64", http.StatusBadRequest)
		return
	}
	if err := s.rt.Signal(s.id, syscall.Signal(n)); err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) serveWait(w http.ResponseWriter, r *http.Request) {
	select {
	case <-s.done:
		writeJSONResponse(w, s.snapshot())
	case <-r.Context().Done():
	}
}

func writeJSONResponse(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}
