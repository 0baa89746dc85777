package e2e

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// balancer stands for the load balancer (or DNS name with several
// addresses) a real cluster puts in front of its routers: requests are
// spread over the routers in rotation, and an operator takes a router out
// of rotation before restarting it, as for any upgrade behind a balancer.
type balancer struct {
	mu      sync.Mutex
	targets []string
	next    atomic.Uint64
}

func (b *balancer) add(addr string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !slices.Contains(b.targets, addr) {
		b.targets = append(b.targets, addr)
	}
}

func (b *balancer) remove(addr string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.targets = slices.DeleteFunc(b.targets, func(s string) bool { return s == addr })
}

func (b *balancer) pick() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.targets) == 0 {
		return ""
	}
	return b.targets[int(b.next.Add(1)%uint64(len(b.targets)))]
}

// sample is one request of the load.
type sample struct {
	at  time.Time // when it was sent
	dur time.Duration
	ok  bool
	who string // the answering job, "JOB-ID HOST-ID"
	err string
}

// load sends GET /whoami to one app through the routers from a fixed
// number of workers at a fixed pace: bounded, so that the suite measures
// pier and not a machine overloaded by its own test.
type load struct {
	app     string
	domain  string // the cluster domain (appDomain when empty)
	lb      *balancer
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	samples []sample
	stopped bool
}

const (
	loadWorkers  = 4
	loadInterval = 20 * time.Millisecond // per worker: about 200 requests a second in all
	loadTimeout  = 2 * time.Second
)

// startLoad starts the load; it stops when the test ends at the latest.
func startLoad(t *testing.T, c *cluster, app string) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{app: app, domain: c.domain, lb: c.lb, cancel: cancel}
	for range loadWorkers {
		l.wg.Add(1)
		go l.worker(ctx)
	}
	t.Cleanup(func() { l.stop() })
	return l
}

func (l *load) worker(ctx context.Context) {
	defer l.wg.Done()
	// One client per worker, keeping its connections alive as a browser
	// or an upstream proxy would.
	hc := &http.Client{Timeout: loadTimeout, Transport: &http.Transport{MaxIdleConnsPerHost: 2}}
	defer hc.CloseIdleConnections()
	tick := time.NewTicker(loadInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		s := l.once(ctx, hc)
		if ctx.Err() != nil && !s.ok {
			return // cut short by the stop, not a failure of pier's
		}
		l.mu.Lock()
		l.samples = append(l.samples, s)
		l.mu.Unlock()
	}
}

func (l *load) once(ctx context.Context, hc *http.Client) (s sample) {
	s.at = time.Now()
	defer func() { s.dur = time.Since(s.at) }()
	target := l.lb.pick()
	if target == "" {
		s.err = "no router in rotation"
		return s
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+target+"/whoami", nil)
	req.Host = l.app + "." + cmp.Or(l.domain, appDomain)
	resp, err := hc.Do(req)
	if err != nil {
		s.err = err.Error()
		return s
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	switch {
	case err != nil:
		s.err = err.Error()
	case resp.StatusCode != http.StatusOK:
		s.err = fmt.Sprintf("%s via %s: %s", resp.Status, target, strings.TrimSpace(string(body)))
	case len(strings.Fields(string(body))) != 2:
		s.err = fmt.Sprintf("unexpected body %q", body)
	default:
		s.ok, s.who = true, strings.TrimSpace(string(body))
	}
	return s
}

// stop ends the load and waits for the workers.
func (l *load) stop() {
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
}

func (l *load) snapshot() []sample {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.samples)
}

// summary is what a scenario reports about its load.
type summary struct {
	Requests int           `json:"requests"`
	Failed   int           `json:"failed"`
	P50      time.Duration `json:"-"`
	P99      time.Duration `json:"-"`
	Max      time.Duration `json:"-"`
	// Errors are a few distinct failure messages, for diagnosis.
	Errors []string `json:"errors,omitempty"`
	// FailedSpan is from the first failed request to the end of the last.
	FailedSpan time.Duration `json:"-"`
}

func (l *load) summary() summary {
	ss := l.snapshot()
	var sum summary
	var durs []time.Duration
	var firstFail, lastFail time.Time
	seen := map[string]bool{}
	for _, s := range ss {
		sum.Requests++
		durs = append(durs, s.dur)
		if s.ok {
			continue
		}
		sum.Failed++
		if firstFail.IsZero() {
			firstFail = s.at
		}
		lastFail = s.at.Add(s.dur)
		msg := s.err
		if len(msg) > 160 {
			msg = msg[:160]
		}
		if !seen[msg] && len(sum.Errors) < 5 {
			seen[msg] = true
			sum.Errors = append(sum.Errors, msg)
		}
	}
	if sum.Failed > 0 {
		sum.FailedSpan = lastFail.Sub(firstFail)
	}
	if len(durs) > 0 {
		sort.Slice(durs, func(i, j int) bool { return durs[i] < durs[j] })
		sum.P50 = durs[len(durs)/2]
		sum.P99 = durs[len(durs)*99/100]
		sum.Max = durs[len(durs)-1]
	}
	return sum
}

func (s summary) String() string {
	out := fmt.Sprintf("%d requests, %d failed, latency p50 %s p99 %s max %s", s.Requests, s.Failed,
		s.P50.Round(100*time.Microsecond), s.P99.Round(100*time.Microsecond), s.Max.Round(time.Millisecond))
	if s.Failed > 0 {
		out += fmt.Sprintf(", failures over %s: %q", s.FailedSpan.Round(time.Millisecond), s.Errors)
	}
	return out
}

// firstOK returns the completion time of the first successful request
// sent after t0 whose answering job satisfies pred.
func (l *load) firstOK(t0 time.Time, pred func(who string) bool) (time.Time, bool) {
	var best time.Time
	for _, s := range l.snapshot() {
		if s.ok && !s.at.Before(t0) && pred(s.who) {
			if end := s.at.Add(s.dur); best.IsZero() || end.Before(best) {
				best = end
			}
		}
	}
	return best, !best.IsZero()
}

// waitOK waits until a request sent after t0 satisfying pred succeeded,
// and returns when it completed.
func (l *load) waitOK(t0 time.Time, timeout time.Duration, pred func(who string) bool) (time.Time, bool) {
	deadline := time.Now().Add(timeout)
	for {
		if at, ok := l.firstOK(t0, pred); ok {
			return at, true
		}
		if time.Now().After(deadline) {
			return time.Time{}, false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// jobOf is the job id in a whoami answer.
func jobOf(who string) string { j, _, _ := strings.Cut(who, " "); return j }

// hostOf is the host id in a whoami answer.
func hostOf(who string) string { _, h, _ := strings.Cut(who, " "); return h }

// timeline is the load per half second from t0, "+1.5s 90/3" being
// 90 requests sent in that half second of which 3 failed, printed for
// the spans with failures: for a failing scenario, when it went wrong.
func (l *load) timeline(t0 time.Time) string {
	type bucket struct{ n, failed int }
	buckets := map[int]*bucket{}
	for _, s := range l.snapshot() {
		k := int(s.at.Sub(t0) / (500 * time.Millisecond))
		if s.at.Before(t0) {
			k--
		}
		b := buckets[k]
		if b == nil {
			b = &bucket{}
			buckets[k] = b
		}
		b.n++
		if !s.ok {
			b.failed++
		}
	}
	var keys []int
	for k, b := range buckets {
		if b.failed > 0 {
			keys = append(keys, k)
		}
	}
	sort.Ints(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%+.1fs %d/%d", float64(k)/2, buckets[k].n, buckets[k].failed))
	}
	return strings.Join(parts, " ")
}
