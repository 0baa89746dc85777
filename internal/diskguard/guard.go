package diskguard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ReserveFile is the name of the reserve in the guarded directory.
const ReserveFile = "disk-reserve.pier"

const mib = 1 << 20

// Config says what to guard and how.
type Config struct {
	Dir string
	// Low is the free space below which the disk is under pressure
	// (DefaultLow of the filesystem's size when 0).
	Low int64
	// Reserve is the size of the reserve file (DefaultReserve of the
	// filesystem's size when 0; none when negative).
	Reserve int64
	// Interval is how often free space is measured (1 s when 0). statfs
	// is the only way to learn it; it costs microseconds.
	Interval time.Duration
	Log      *slog.Logger
	// statfs measures the filesystem; tests replace it.
	statfs func(dir string) (free, total int64, err error)
}

// DefaultLow is 5 % of a filesystem of total bytes, at least 64 MiB and
// at most 1 GiB: enough for etcd to grow its database by a few steps and
// for the daemons' own state, small enough not to waste a big disk.
func DefaultLow(total int64) int64 { return min(max(total/20, 64*mib), 1024*mib) }

// DefaultReserve is 64 MiB, or 2 % of a small filesystem.
func DefaultReserve(total int64) int64 { return min(64*mib, max(total/50, 4*mib)) }

// Status is what the guard knows of its disk.
type Status struct {
	Dir      string    `json:"dir"`
	Free     int64     `json:"free_bytes"`
	Total    int64     `json:"total_bytes"`
	Low      int64     `json:"low_bytes"`
	Pressure bool      `json:"pressure"`
	Since    time.Time `json:"since,omitzero"` // when Pressure last changed
	Error    string    `json:"error,omitempty"`
}

// Reason says what is wrong in a sentence, "" when nothing is.
func (s Status) Reason() string {
	if !s.Pressure {
		return ""
	}
	return fmt.Sprintf("the disk of %s has %d MiB free, below the %d MiB pier keeps free", s.Dir, s.Free/mib, s.Low/mib)
}

// ErrPressure is wrapped by the errors of work refused under pressure.
var ErrPressure = errors.New("diskguard: disk low on space")

// Refuse returns an error wrapping ErrPressure that says what was refused
// and why, or nil when the disk is fine.
func (s Status) Refuse(what string) error {
	if !s.Pressure {
		return nil
	}
	return fmt.Errorf("%w: %s refused: %s; pier resumes by itself once space is freed", ErrPressure, what, s.Reason())
}

// Guard watches one directory's disk.
type Guard struct {
	cfg Config

	mu       sync.Mutex
	status   Status
	watchers []func(Status)
	changed  chan struct{}
}

// New measures the disk once and prepares the reserve: given back at once
// when the disk is already under pressure (a daemon starting on a full
// disk needs the room), taken otherwise.
func New(cfg Config) (*Guard, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.statfs == nil {
		cfg.statfs = statfs
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, err
	}
	g := &Guard{cfg: cfg, changed: make(chan struct{})}
	g.status = Status{Dir: cfg.Dir}
	g.Check()
	return g, nil
}

// Status is the latest measurement.
func (g *Guard) Status() Status {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.status
}

// OnChange has fn called (from the guard's goroutine) each time pressure
// starts or ends.
func (g *Guard) OnChange(fn func(Status)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.watchers = append(g.watchers, fn)
}

// Changed is closed at the next change of pressure.
func (g *Guard) Changed() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.changed
}

// Run measures the disk every Interval until ctx ends.
func (g *Guard) Run(ctx context.Context) {
	t := time.NewTicker(g.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			g.Check()
		}
	}
}

// Check measures the disk now, moves the reserve as the pressure
// requires, and tells the watchers of a change.
func (g *Guard) Check() Status {
	free, total, err := g.cfg.statfs(g.cfg.Dir)
	g.mu.Lock()
	prev := g.status
	next := prev
	next.Error = ""
	if err != nil {
		// Keep the last verdict: not knowing is no reason to refuse work.
		next.Error = err.Error()
		g.status = next
		g.mu.Unlock()
		return next
	}
	low, reserve := g.limits(total)
	held := g.reserveSize()
	next.Free, next.Total, next.Low = free, total, low
	next.Pressure = underPressure(prev.Pressure, free, low, reserve-held)
	if next.Pressure != prev.Pressure {
		next.Since = time.Now()
	}
	g.status = next
	var watchers []func(Status)
	if next.Pressure != prev.Pressure {
		watchers = append(watchers, g.watchers...)
		close(g.changed)
		g.changed = make(chan struct{})
	}
	g.mu.Unlock()

	if next.Pressure {
		if held > 0 {
			os.Remove(g.reservePath())
			next.Free += held
			g.cfg.Log.Warn("disk under pressure: reserve given back", "dir", g.cfg.Dir, "free_mib", next.Free/mib, "low_mib", low/mib)
		}
	} else if held < reserve {
		if err := g.takeReserve(reserve); err != nil {
			g.cfg.Log.Warn("disk reserve", "dir", g.cfg.Dir, "err", err)
		}
	}
	if next.Pressure != prev.Pressure && !next.Pressure {
		g.cfg.Log.Info("disk pressure over", "dir", g.cfg.Dir, "free_mib", next.Free/mib)
	}
	for _, fn := range watchers {
		fn(next)
	}
	return next
}

// underPressure decides from the free space whether the disk is under
// pressure. Coming out needs room to take the reserve back (missing, the
// part of it not held) and half the threshold again, so that the verdict
// does not flap when space hovers around the threshold.
func underPressure(was bool, free, low, missing int64) bool {
	if !was {
		return free < low
	}
	return free < low+missing+low/2
}

func (g *Guard) limits(total int64) (low, reserve int64) {
	low, reserve = g.cfg.Low, g.cfg.Reserve
	if low == 0 {
		low = DefaultLow(total)
	}
	switch {
	case reserve == 0:
		reserve = DefaultReserve(total)
	case reserve < 0:
		reserve = 0
	}
	return low, reserve
}

func (g *Guard) reservePath() string { return filepath.Join(g.cfg.Dir, ReserveFile) }

// reserveSize is how much of the reserve is held on disk now.
func (g *Guard) reserveSize() int64 {
	var st unix.Stat_t
	if unix.Stat(g.reservePath(), &st) != nil {
		return 0
	}
	return st.Blocks * 512
}

// takeReserve allocates the reserve's blocks (fallocate, so they are
// really taken, not a sparse promise).
func (g *Guard) takeReserve(size int64) error {
	f, err := os.OpenFile(g.reservePath(), os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	err = unix.Fallocate(int(f.Fd()), 0, 0, size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		// Half a reserve on a disk that had no room for it is worse than
		// none: it is the space something else needs.
		os.Remove(g.reservePath())
	}
	return err
}

func statfs(dir string) (free, total int64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	// Bavail: what an unprivileged writer gets; the blocks reserved for
	// root are the last resort of the whole machine, not ours.
	return int64(st.Bavail) * st.Bsize, int64(st.Blocks) * st.Bsize, nil
}
