package logs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pierpaas/pier/api"
)

// ShipJob is a job whose output a Shipper ships.
type ShipJob struct {
	ID, App, Release, ProcessType string
	// Dir is the job's log directory (host/joblog).
	Dir string
}

// ShipperConfig configures a Shipper.
type ShipperConfig struct {
	Host string
	// Jobs lists the jobs to ship, every Refresh. A job no longer listed
	// stops being shipped (its files are about to go).
	Jobs func() []ShipJob
	// Done reports whether a job will write no more lines: once it is,
	// and all its lines are shipped, the job is left alone.
	Done func(id string) bool
	// Leader returns the active aggregator's address (host:port), "" if
	// there is none, and a channel closed when that changes.
	Leader func() (string, <-chan struct{})
	// Client reaches the aggregator: HTTPS with the node's certificate.
	Client *http.Client
	Log    *slog.Logger
	// Registry, if set, gets the shipper's metrics.
	Registry prometheus.Registerer
	// MaxBatchLines and MaxBatchBytes bound one request (2000 lines, 1
	// MiB by default); MaxPendingBytes the lines read ahead per job and
	// not yet sent (256 KiB). The shipper's memory is about jobs ×
	// (MaxPendingBytes + the 64 KiB a file reader buffers) + a batch.
	MaxBatchLines, MaxBatchBytes, MaxPendingBytes int
	// Refresh is how often the job list is read (500ms by default): a
	// new job's first lines wait for it.
	Refresh time.Duration
	// Heartbeat is how long a session stays idle before it checks that
	// its aggregator is still the same instance (1s by default): one that
	// restarted in place must get again what it lost without waiting for
	// the next line.
	Heartbeat time.Duration
}

// ShipperStats are a shipper's counters.
type ShipperStats struct {
	Shipped uint64 // lines the aggregator accepted
	Lost    uint64 // lines the files lost before they were read
	Batches uint64
	Errors  uint64 // failed sessions: the aggregator unreachable, moved, restarted
}

// Shipper sends the output of a host's jobs to the active aggregator.
//
// It reads the jobs' log files, never their pipes, so it cannot slow a
// job down: when the aggregator is slow or gone the shipper falls behind
// in the files, and only if it falls behind further than their rotation
// keeps are lines lost, which the next line's gap reports. Each
// connection to an aggregator (a session) starts by asking it what it
// has of this host's jobs and resumes from there, so a restarted or moved
// aggregator gets again everything the files still hold, and a request
// that failed halfway is sent again without duplicates (the aggregator
// drops lines by job and line number).
type Shipper struct {
	cfg ShipperConfig
	m   shipperMetrics

	mu    sync.Mutex
	stats ShipperStats
}

type shipperMetrics struct {
	shipped, lost, errors prometheus.Counter
}

// NewShipper returns a shipper; Run ships.
func NewShipper(cfg ShipperConfig) *Shipper {
	if cfg.MaxBatchLines <= 0 {
		cfg.MaxBatchLines = 2000
	}
	if cfg.MaxBatchBytes <= 0 {
		cfg.MaxBatchBytes = 1 << 20
	}
	if cfg.MaxPendingBytes <= 0 {
		cfg.MaxPendingBytes = 256 << 10
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = 500 * time.Millisecond
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Done == nil {
		cfg.Done = func(string) bool { return false }
	}
	s := &Shipper{cfg: cfg, m: shipperMetrics{
		shipped: prometheus.NewCounter(prometheus.CounterOpts{Name: "pier_host_logs_shipped_lines_total", Help: "Job log lines shipped to the log aggregator."}),
		lost:    prometheus.NewCounter(prometheus.CounterOpts{Name: "pier_host_logs_lost_lines_total", Help: "Job log lines rotated away (or dropped by the writer) before they could be shipped."}),
		errors:  prometheus.NewCounter(prometheus.CounterOpts{Name: "pier_host_logs_ship_errors_total", Help: "Shipping sessions that ended in an error."}),
	}}
	register(cfg.Registry, s.m.shipped, s.m.lost, s.m.errors)
	return s
}

// Stats returns the shipper's counters.
func (s *Shipper) Stats() ShipperStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Run ships until ctx ends, following the active aggregator as it moves.
func (s *Shipper) Run(ctx context.Context) {
	backoff := time.Duration(0)
	for ctx.Err() == nil {
		addr, changed := s.cfg.Leader()
		if addr == "" {
			select {
			case <-ctx.Done():
				return
			case <-changed:
			}
			continue
		}
		sctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-changed:
				cancel()
			case <-sctx.Done():
			}
		}()
		shipped, err := s.session(sctx, addr)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			s.mu.Lock()
			s.stats.Errors++
			s.mu.Unlock()
			s.m.errors.Inc()
			s.cfg.Log.Debug("log shipping interrupted", "aggregator", addr, "err", err)
		}
		if shipped {
			backoff = 0
		}
		backoff = min(max(2*backoff, 100*time.Millisecond), 5*time.Second)
		select {
		case <-ctx.Done():
			return
		case <-changed: // a new aggregator: go at once
		case <-time.After(backoff):
		}
	}
}

// errNewInstance ends a session whose aggregator restarted under it.
var errNewInstance = errors.New("logs: the aggregator started afresh")

// session ships to one aggregator until an error or ctx ends. It reports
// whether any batch went through.
func (s *Shipper) session(ctx context.Context, addr string) (shipped bool, err error) {
	var cur api.LogCursors
	if err := s.call(ctx, http.MethodGet, addr, "/v1/logs/cursors?host="+url.QueryEscape(s.cfg.Host), nil, &cur); err != nil {
		return false, err
	}
	ss := &session{s: s, cursors: cur.Jobs, readers: map[string]*jobReader{}, done: map[string]bool{},
		sent: map[string]uint64{}, wake: make(chan struct{}, 1)}
	defer ss.stop()
	refresh := time.NewTicker(s.cfg.Refresh)
	defer refresh.Stop()
	idle := time.NewTimer(s.cfg.Heartbeat)
	defer idle.Stop()
	ss.refresh(ctx)
	for {
		batch, lost := ss.collect()
		if len(batch.Jobs) == 0 {
			select {
			case <-ctx.Done():
				return shipped, ctx.Err()
			case <-refresh.C:
				ss.refresh(ctx)
			case <-ss.wake:
			case <-idle.C:
				// An empty batch: is it still the aggregator we know?
				var ack api.LogCursors
				if err := s.call(ctx, http.MethodPost, addr, "/v1/logs/ingest", batch, &ack); err != nil {
					return shipped, err
				}
				if ack.Instance != cur.Instance {
					return shipped, errNewInstance
				}
				idle.Reset(s.cfg.Heartbeat)
			}
			continue
		}
		var ack api.LogCursors
		if err := s.call(ctx, http.MethodPost, addr, "/v1/logs/ingest", batch, &ack); err != nil {
			return shipped, err
		}
		if ack.Instance != cur.Instance {
			return shipped, errNewInstance
		}
		idle.Reset(s.cfg.Heartbeat)
		shipped = true
		n := 0
		for _, jl := range batch.Jobs {
			n += len(jl.Lines)
		}
		s.mu.Lock()
		s.stats.Shipped += uint64(n)
		s.stats.Lost += lost
		s.stats.Batches++
		s.mu.Unlock()
		s.m.shipped.Add(float64(n))
		s.m.lost.Add(float64(lost))
		ss.reap()
		select {
		case <-refresh.C:
			ss.refresh(ctx)
		default:
		}
	}
}

// call makes one request to the aggregator.
func (s *Shipper) call(ctx context.Context, method, addr, path string, body, out any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "https://"+addr+path, r)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return fmt.Errorf("logs: %s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
