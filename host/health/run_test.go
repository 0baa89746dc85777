package health

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestMachine(t *testing.T) {
	// Each probe is "+" (success), "-" (failure) or "g" (failure that does
	// not count: grace period or extra probe); want lists the transitions
	// as state/failures.
	tests := []struct {
		name      string
		threshold int
		probes    string
		want      []string
	}{
		{"first success is healthy", 3, "+", []string{"healthy/0"}},
		{"stays healthy", 3, "++++", []string{"healthy/0"}},
		{"unknown fails to unhealthy", 3, "---", []string{"unhealthy/3"}},
		{"unknown short of threshold", 3, "--", nil},
		{"late start", 3, "--+", []string{"healthy/0"}},
		{"grace failures do not count", 2, "gggg-", nil},
		{"grace then fail", 2, "gg--", []string{"unhealthy/2"}},
		{"grace then success", 2, "ggg+", []string{"healthy/0"}},
		{"healthy to unhealthy", 2, "+--", []string{"healthy/0", "unhealthy/2"}},
		{"one blip is forgiven", 2, "+-+-+", []string{"healthy/0"}},
		{"unhealthy stays until threshold successes", 2, "+--+-+", []string{"healthy/0", "unhealthy/2"}},
		{"recovers", 2, "+--++", []string{"healthy/0", "unhealthy/2", "healthy/0"}},
		{"failures keep counting while unhealthy", 2, "+----++", []string{"healthy/0", "unhealthy/2", "healthy/0"}},
		{"uncounted failure breaks a recovery", 2, "+--+g+", []string{"healthy/0", "unhealthy/2"}},
		{"threshold one flaps", 1, "+-+-", []string{"healthy/0", "unhealthy/1", "healthy/0", "unhealthy/1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := machine{threshold: tt.threshold, state: Unknown}
			var got []string
			for i, p := range tt.probes {
				st, changed := m.observe(p == '+', fmt.Sprintf("err %d", i), p != 'g')
				if !changed {
					continue
				}
				got = append(got, fmt.Sprintf("%s/%d", st.State, st.Failures))
				if st.State == Healthy && st.Err != "" {
					t.Errorf("healthy status with error %q", st.Err)
				}
				if st.State == Unhealthy && st.Err != fmt.Sprintf("err %d", i) {
					t.Errorf("unhealthy status with error %q, want the last one", st.Err)
				}
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Fatalf("transitions %v, want %v", got, tt.want)
			}
		})
	}
}

// recorder collects reports.
type recorder struct {
	mu  sync.Mutex
	got []Status
	ch  chan Status
}

func newRecorder() *recorder { return &recorder{ch: make(chan Status, 100)} }

func (r *recorder) report(s Status) {
	r.mu.Lock()
	r.got = append(r.got, s)
	r.mu.Unlock()
	r.ch <- s
}

// next waits for the next report.
func (r *recorder) next(t *testing.T, within time.Duration) Status {
	t.Helper()
	select {
	case s := <-r.ch:
		return s
	case <-time.After(within):
		t.Fatalf("no report within %v", within)
		return Status{}
	}
}

func (r *recorder) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case s := <-r.ch:
		t.Fatalf("unexpected report %+v", s)
	case <-time.After(d):
	}
}

// startRun runs run or Run in the background until the test ends.
func startRun(t *testing.T, c Check, probe func(context.Context) error) *recorder {
	t.Helper()
	r := newRecorder()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		if probe != nil {
			done <- run(ctx, c, probe, r.report)
		} else {
			done <- Run(ctx, c, r.report)
		}
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v", err)
		}
	})
	return r
}

func TestRunGracePeriod(t *testing.T) {
	const grace = 300 * time.Millisecond
	c := Check{Kind: KindTCP, Addr: "x:1", Interval: 10 * time.Millisecond, Timeout: time.Second, StartGrace: grace, Threshold: 2}
	var probes atomic.Int32
	start := time.Now()
	r := startRun(t, c, func(context.Context) error {
		probes.Add(1)
		return errors.New("connection refused")
	})
	st := r.next(t, 5*time.Second)
	if elapsed := time.Since(start); elapsed < grace {
		t.Fatalf("unhealthy after %v, inside the grace period", elapsed)
	}
	if st.State != Unhealthy || st.Failures != 2 || st.Err != "connection refused" {
		t.Fatalf("status %+v", st)
	}
	if probes.Load() < 5 {
		t.Fatalf("only %d probes during the grace period", probes.Load())
	}
}

func TestRunFastStart(t *testing.T) {
	// With a long interval, a job that comes up after a few probes is
	// reported healthy long before one interval has passed.
	c := Check{Kind: KindTCP, Addr: "x:1", Interval: time.Minute, Timeout: time.Second, Threshold: 3}
	var probes atomic.Int32
	start := time.Now()
	r := startRun(t, c, func(context.Context) error {
		if probes.Add(1) < 4 {
			return errors.New("refused")
		}
		return nil
	})
	if st := r.next(t, 5*time.Second); st.State != Healthy {
		t.Fatalf("status %+v", st)
	}
	// 100 + 200 + 400 ms of backoff.
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Fatalf("healthy only after %v", elapsed)
	}
	// Now healthy: probes are an interval apart.
	n := probes.Load()
	time.Sleep(300 * time.Millisecond)
	if probes.Load() != n {
		t.Fatalf("probed %d more times within 300ms of a 1m interval", probes.Load()-n)
	}
}

func TestRunExtraProbesDoNotCountFailures(t *testing.T) {
	// Regular probes at 0, 200 and 400ms fail the job with a threshold
	// of 3; the extra probes at 100ms and after do not hasten that.
	const interval = 200 * time.Millisecond
	c := Check{Kind: KindTCP, Addr: "x:1", Interval: interval, Timeout: time.Second, Threshold: 3}
	var probes atomic.Int32
	start := time.Now()
	r := startRun(t, c, func(context.Context) error {
		probes.Add(1)
		return errors.New("refused")
	})
	st := r.next(t, 5*time.Second)
	if elapsed := time.Since(start); elapsed < 2*interval {
		t.Fatalf("unhealthy after %v, before 3 regular probes", elapsed)
	}
	if st.State != Unhealthy || st.Failures != 3 {
		t.Fatalf("status %+v", st)
	}
	if n := probes.Load(); n < 4 {
		t.Fatalf("%d probes: no extra ones", n)
	}
}

func TestRunStopsQuietly(t *testing.T) {
	// A probe cut short by the end of Run is not a failure to report.
	c := Check{Kind: KindTCP, Addr: "x:1", Interval: time.Millisecond, Timeout: time.Second, Threshold: 1}
	r := newRecorder()
	ctx, cancel := context.WithCancel(context.Background())
	inProbe := make(chan struct{})
	done := make(chan error)
	go func() {
		done <- run(ctx, c, func(ctx context.Context) error {
			close(inProbe)
			<-ctx.Done()
			return ctx.Err()
		}, r.report)
	}()
	<-inProbe
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("run = %v", err)
	}
	if len(r.got) != 0 {
		t.Fatalf("reported %+v", r.got)
	}
}

func TestRunRejectsInvalid(t *testing.T) {
	err := Run(context.Background(), Check{Kind: "udp"}, func(Status) { t.Fatal("report") })
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("Run = %v", err)
	}
}
