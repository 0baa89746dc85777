package logs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pierpaas/pier/api"
)

// Service is the discovery service the aggregators register under; its
// leader (oldest instance) is the active one.
const Service = "pier-logs"

// Defaults of the per-app ring and of the job cursors kept.
const (
	DefaultMaxLines = 10000
	DefaultMaxBytes = 4 << 20
	DefaultMaxJobs  = 100000
	// DefaultMaxTotalBytes bounds all rings together, however many apps.
	DefaultMaxTotalBytes = 512 << 20
)

// ErrInactive is returned by an aggregator that is not the active one: its
// callers should find the leader of Service again.
var ErrInactive = errors.New("logs: this aggregator is not the active one")

// Config configures an aggregator.
type Config struct {
	// MaxLines and MaxBytes bound each app's ring (DefaultMaxLines,
	// DefaultMaxBytes when 0).
	MaxLines, MaxBytes int
	// MaxTotalBytes bounds all rings together (DefaultMaxTotalBytes):
	// past it the biggest rings lose their oldest lines first, so the
	// aggregator's memory does not grow with the number of apps.
	MaxTotalBytes int
	// MaxJobs bounds how many jobs' cursors are remembered for dedup; the
	// least recently heard from go first.
	MaxJobs  int
	Registry prometheus.Registerer
	Log      *slog.Logger
	// LeaderDead, if set, tells a standby when the active aggregator's
	// server is certainly dead, so that it takes over at once instead of
	// when the dead one's registration expires (see Lead).
	LeaderDead func(ctx context.Context, id string) bool
}

// Stats are an aggregator's counters, for tests and benchmarks (the same
// figures are Prometheus metrics).
type Stats struct {
	Apps, Lines, Bytes int
	Ingested           uint64 // lines taken into a ring (platform lines too)
	Duplicates         uint64 // lines dropped because they were already held
	Lost               uint64 // lines hosts reported they could not ship
	Evicted            uint64 // lines pushed out of a full ring
}

// Aggregator holds the recent lines of every app. Only an active
// aggregator takes lines; activating starts from nothing under a new
// instance id, which tells hosts to ship again all they hold.
type Aggregator struct {
	cfg Config
	m   *metrics

	mu       sync.Mutex
	active   bool
	instance string
	term     chan struct{} // closed when this active term ends
	apps     map[string]*ring
	jobs     map[string]*jobCursor
	forward  func(*api.AppLogLine)
	stats    Stats
	total    int // bytes of all rings
}

// jobCursor is the newest line number held of a job: lines at or below
// it are duplicates (a host replaying after a reconnect).
type jobCursor struct {
	host string
	seq  uint64
	seen time.Time
}

// NewAggregator returns an inactive aggregator.
func NewAggregator(cfg Config) *Aggregator {
	if cfg.MaxLines <= 0 {
		cfg.MaxLines = DefaultMaxLines
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.MaxJobs <= 0 {
		cfg.MaxJobs = DefaultMaxJobs
	}
	if cfg.MaxTotalBytes <= 0 {
		cfg.MaxTotalBytes = DefaultMaxTotalBytes
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	a := &Aggregator{cfg: cfg, term: make(chan struct{})}
	close(a.term)
	a.m = newMetrics(cfg.Registry, a)
	return a
}

// SetForwarder sets what every line taken is also passed to (the drains).
// fn is called in the order lines are taken and must not block.
func (a *Aggregator) SetForwarder(fn func(*api.AppLogLine)) {
	a.mu.Lock()
	a.forward = fn
	a.mu.Unlock()
}

// Activate makes the aggregator the active one, with empty rings.
func (a *Aggregator) Activate() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.active {
		return
	}
	var b [8]byte
	rand.Read(b[:])
	a.active, a.instance, a.term = true, hex.EncodeToString(b[:]), make(chan struct{})
	a.apps, a.jobs, a.total = map[string]*ring{}, map[string]*jobCursor{}, 0
	a.cfg.Log.Info("log aggregator active", "instance", a.instance)
}

// Deactivate stops taking lines and frees them; followers are cut off so
// they find the new active aggregator.
func (a *Aggregator) Deactivate() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.active {
		return
	}
	a.active = false
	close(a.term)
	a.apps, a.jobs, a.total = nil, nil, 0
	a.cfg.Log.Info("log aggregator inactive", "instance", a.instance)
}

// Active reports whether the aggregator takes lines.
func (a *Aggregator) Active() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.active
}

// Cursors returns where each of host's jobs resumes.
func (a *Aggregator) Cursors(host string) (api.LogCursors, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.active {
		return api.LogCursors{}, ErrInactive
	}
	out := api.LogCursors{Instance: a.instance, Jobs: map[string]uint64{}}
	for id, c := range a.jobs {
		if c.host == host {
			out.Jobs[id] = c.seq
		}
	}
	return out, nil
}

// Ingest takes a batch from a host. Lines it holds already are skipped,
// and a line's gap becomes a notice of the lines lost before it. It
// returns the cursors of the batch's jobs.
func (a *Aggregator) Ingest(b *api.LogBatch) (api.LogCursors, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.active {
		return api.LogCursors{}, ErrInactive
	}
	now := time.Now()
	out := api.LogCursors{Instance: a.instance, Jobs: make(map[string]uint64, len(b.Jobs))}
	for i := range b.Jobs {
		jl := &b.Jobs[i]
		if jl.Job == "" || jl.App == "" {
			continue
		}
		c := a.jobs[jl.Job]
		if c == nil {
			c = &jobCursor{host: b.Host}
			a.jobs[jl.Job] = c
		}
		c.host, c.seen = b.Host, now
		for k := range jl.Lines {
			l := &jl.Lines[k]
			if l.Seq <= c.seq {
				a.stats.Duplicates++
				a.m.duplicates.Inc()
				continue
			}
			// Lines between the cursor and this one that the host no
			// longer has: say so in the stream.
			gap := l.Gap
			if c.seq > 0 && l.Seq-c.seq-1 > gap {
				gap = l.Seq - c.seq - 1
			}
			if gap > 0 {
				a.stats.Lost += gap
				a.m.lost.Add(float64(gap))
				a.addLocked(&api.AppLogLine{
					Time: l.Time, App: jl.App, Source: api.LogSourcePier, Process: jl.ProcessType,
					Job: jl.Job, Release: jl.Release, Host: b.Host,
					Text: fmt.Sprintf("Error L10 (output buffer overflow): %d lines lost before they reached the log aggregator", gap),
				})
			}
			c.seq = l.Seq
			a.addLocked(&api.AppLogLine{
				Time: l.Time, App: jl.App, Source: api.LogSourceApp, Process: jl.ProcessType,
				Job: jl.Job, Release: jl.Release, Host: b.Host, Stream: l.Stream, Seq: l.Seq, Text: l.Text,
			})
		}
		out.Jobs[jl.Job] = c.seq
	}
	if len(a.jobs) > a.cfg.MaxJobs {
		a.forgetOldJobsLocked()
	}
	return out, nil
}

// Emit adds a platform line to an app's stream.
func (a *Aggregator) Emit(l api.AppLogLine) {
	if l.Source == "" {
		l.Source = api.LogSourcePier
	}
	if l.Time.IsZero() {
		l.Time = time.Now()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.active && l.App != "" {
		a.addLocked(&l)
	}
}

func (a *Aggregator) addLocked(l *api.AppLogLine) {
	r := a.apps[l.App]
	if r == nil {
		r = newRing(a.cfg.MaxLines, a.cfg.MaxBytes)
		a.apps[l.App] = r
	}
	before := r.bytes
	if ev := r.add(*l); ev > 0 {
		a.stats.Evicted += uint64(ev)
		a.m.evicted.Add(float64(ev))
	}
	a.total += r.bytes - before
	if a.total > a.cfg.MaxTotalBytes {
		a.shrinkLocked()
	}
	l.ID = r.next - 1
	a.stats.Ingested++
	a.m.ingested.WithLabelValues(l.Source).Inc()
	if a.forward != nil {
		a.forward(l)
	}
}

// shrinkLocked takes the oldest lines of the biggest rings until all
// rings hold at most 90% of MaxTotalBytes: in steps, so that the scan for
// the biggest is paid rarely. A ring may be emptied (many apps with a line
// each); it stays, small, for the followers waiting on it.
func (a *Aggregator) shrinkLocked() {
	target := a.cfg.MaxTotalBytes / 10 * 9
	for a.total > target {
		var big *ring
		floor := 0 // the second biggest
		for _, r := range a.apps {
			switch {
			case big == nil || r.bytes > big.bytes:
				if big != nil {
					floor = big.bytes
				}
				big = r
			case r.bytes > floor:
				floor = r.bytes
			}
		}
		if big == nil || big.n == 0 {
			return
		}
		// Down to the second biggest, or by what is over, whichever
		// takes less, but at least one line.
		goal := min(max(floor, big.bytes-(a.total-target)), big.bytes-1)
		for big.n > 0 && big.bytes > goal {
			b := big.bytes
			big.evictOldest()
			a.total -= b - big.bytes
			a.stats.Evicted++
			a.m.evicted.Inc()
		}
		if big.n == 0 {
			big.buf, big.head = nil, 0
		}
	}
}

// forgetOldJobsLocked drops the cursors of the jobs heard from least
// recently, down to 90% of MaxJobs.
func (a *Aggregator) forgetOldJobsLocked() {
	type aged struct {
		id   string
		seen time.Time
	}
	all := make([]aged, 0, len(a.jobs))
	for id, c := range a.jobs {
		all = append(all, aged{id, c.seen})
	}
	slices.SortFunc(all, func(x, y aged) int { return x.seen.Compare(y.seen) })
	for _, j := range all[:len(all)-a.cfg.MaxJobs*9/10] {
		delete(a.jobs, j.id)
	}
}

// view is what a reader needs of an app's ring at one moment.
type view struct {
	lines   []api.AppLogLine
	last    uint64
	skipped uint64
	notify  <-chan struct{} // closed when a line is added after last
	term    <-chan struct{} // closed when the active term ends
}

// ringLocked returns app's ring, making an empty one for an app that has
// not logged yet, so a follower can wait on it.
func (a *Aggregator) ringLocked(app string) *ring {
	r := a.apps[app]
	if r == nil {
		r = newRing(a.cfg.MaxLines, a.cfg.MaxBytes)
		a.apps[app] = r
	}
	return r
}

func (a *Aggregator) tail(app string, n int, f filter) (view, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.active {
		return view{}, ErrInactive
	}
	r := a.ringLocked(app)
	lines, last := r.tail(n, f)
	return view{lines: lines, last: last, notify: r.notify, term: a.term}, nil
}

func (a *Aggregator) after(app string, id uint64, max int, f filter) (view, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.active {
		return view{}, ErrInactive
	}
	r := a.ringLocked(app)
	lines, last, skipped := r.after(id, max, f)
	return view{lines: lines, last: last, skipped: skipped, notify: r.notify, term: a.term}, nil
}

// Stats returns the aggregator's counters and what its rings hold.
func (a *Aggregator) Stats() Stats {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.stats
	s.Apps = len(a.apps)
	for _, r := range a.apps {
		s.Lines += r.n
		s.Bytes += r.bytes
	}
	return s
}

// metrics are the aggregator's Prometheus metrics.
type metrics struct {
	ingested   *prometheus.CounterVec
	duplicates prometheus.Counter
	lost       prometheus.Counter
	evicted    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, a *Aggregator) *metrics {
	m := &metrics{
		ingested: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pier_logs_lines_ingested_total", Help: "Log lines the aggregator took, by source (app, pier).",
		}, []string{"source"}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pier_logs_lines_duplicate_total", Help: "Log lines dropped because the aggregator held them already (a host replaying).",
		}),
		lost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pier_logs_lines_lost_total", Help: "Log lines hosts reported lost before they could be shipped.",
		}),
		evicted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pier_logs_lines_evicted_total", Help: "Log lines pushed out of a full per-app ring.",
		}),
	}
	held := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "pier_logs_ring_bytes", Help: "Approximate bytes the aggregator's rings hold.",
	}, func() float64 { return float64(a.Stats().Bytes) })
	register(reg, m.ingested, m.duplicates, m.lost, m.evicted, held)
	return m
}

// register adds collectors to reg, if any; a collector already there (a
// second aggregator in one test process) is not an error.
func register(reg prometheus.Registerer, cs ...prometheus.Collector) {
	if reg == nil {
		return
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				slog.Default().Warn("logs: metric not registered", "err", err)
			}
		}
	}
}
