package health

import (
	"context"
	"time"
)

// State is what the checks say of a port.
type State string

const (
	Unknown   State = "unknown" // no probe has succeeded, and not enough have failed
	Healthy   State = "healthy"
	Unhealthy State = "unhealthy"
)

// Status is a transition reported by Run.
type Status struct {
	State State
	// Err is the last failed probe's error; empty when Healthy.
	Err string
	// Failures is how many counted probes in a row have failed.
	Failures int
	// Time is when the probe that caused the transition ended.
	Time time.Time
}

// firstInterval is the pause before the first extra probe while the state
// is Unknown; it doubles up to maxUnknownInterval (or Interval, if
// shorter). A job that boots in a second is then in discovery within half
// a second of being ready, not an Interval later: every recovery (a
// replacement after a host failure, a rolling deploy) waits on that.
var (
	firstInterval      = 100 * time.Millisecond
	maxUnknownInterval = 500 * time.Millisecond
)

// Run probes c until ctx ends and calls report on each change of state,
// from Run's goroutine; it returns ctx's error, or an error wrapping
// ErrInvalid at once if c is not valid. Pass c through WithDefaults to fill
// what a spec left out.
//
// The first probe is made at once and the regular ones follow every
// Interval. StartGrace counts from the call, so the agent calls Run when it
// has started the job. While the state is Unknown, extra probes are made in
// between, 100ms after the last one and then doubling: they can make the
// job Healthy, but their failures do not count, so a job that is slow to
// start is declared Unhealthy no sooner than without them.
func Run(ctx context.Context, c Check, report func(Status)) error {
	if err := Validate(c); err != nil {
		return err
	}
	p := newProber(c)
	defer p.close()
	return run(ctx, c, p.probe, report)
}

// run is Run with the probe injected, for tests.
func run(ctx context.Context, c Check, probe func(context.Context) error, report func(Status)) error {
	start := time.Now()
	nextRegular := start
	backoff := min(firstInterval, c.Interval)
	m := machine{threshold: c.Threshold, state: Unknown}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
		began := time.Now()
		// Timers do not fire early, so this is exact for a probe made
		// when the regular one was due.
		regular := !began.Before(nextRegular)
		if regular {
			nextRegular = began.Add(c.Interval)
		}
		err := probe(ctx)
		if ctx.Err() != nil {
			// The probe failed because we are stopping, not because the
			// job did: report nothing.
			return ctx.Err()
		}
		ended := time.Now()
		errMsg := ""
		if err != nil {
			errMsg = errText(err, c.Timeout)
		}
		// A probe is in the grace period if it began in it: the job was
		// still allowed to be booting when it was asked.
		counts := regular && began.Sub(start) >= c.StartGrace
		if st, changed := m.observe(err == nil, errMsg, counts); changed {
			st.Time = ended
			report(st)
		}
		next := nextRegular
		if m.state == Unknown {
			if extra := began.Add(backoff); extra.Before(next) {
				next = extra
			}
			backoff = min(backoff*2, maxUnknownInterval, c.Interval)
		}
		timer.Reset(max(0, time.Until(next)))
	}
}

// machine turns probe results into states. It does no I/O and reads no
// clock, so every path through it is a table test.
type machine struct {
	threshold int
	state     State
	failures  int // in a row, outside the grace period
	successes int // in a row
	lastErr   string
}

// observe records one probe and returns the new status, and whether the
// state changed. A failure that does not count (in the grace period, or an
// extra probe) still resets the successes in a row.
func (m *machine) observe(ok bool, errMsg string, counts bool) (Status, bool) {
	old := m.state
	if ok {
		m.failures = 0
		m.successes++
		switch {
		case m.state == Unknown:
			// One success is enough to start: waiting for Threshold
			// of them would only slow deploys down.
			m.state = Healthy
		case m.state == Unhealthy && m.successes >= m.threshold:
			m.state = Healthy
		}
	} else {
		m.successes = 0
		m.lastErr = errMsg
		if counts {
			m.failures++
			if m.state != Unhealthy && m.failures >= m.threshold {
				m.state = Unhealthy
			}
		}
	}
	st := Status{State: m.state, Failures: m.failures}
	if m.state != Healthy {
		st.Err = m.lastErr
	}
	return st, m.state != old
}
