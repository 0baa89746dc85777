package daemon

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// DefaultReadyTimeout bounds one readiness evaluation when Health.Timeout is
// zero. Supervisors and load balancers usually give up on a probe after a few
// seconds; answering before they do means the reply names the slow check
// instead of the prober recording an anonymous timeout.
const DefaultReadyTimeout = 2 * time.Second

// ErrCheckTimeout is reported for a readiness check that did not return
// within the timeout.
var ErrCheckTimeout = errors.New("daemon: readiness check timed out")

// Health holds the named readiness checks of one daemon. The zero value is
// ready to use and has no checks, which means "ready".
type Health struct {
	// Timeout bounds one evaluation of all checks; zero means
	// DefaultReadyTimeout. Set it before serving.
	Timeout time.Duration

	mu     sync.Mutex
	checks []readyCheck
}

type readyCheck struct {
	name string
	fn   func(ctx context.Context) error
}

// CheckResult is the outcome of one readiness check; Err is nil on success.
type CheckResult struct {
	Name string
	Err  error
}

// AddReadyCheck registers a readiness check. fn should honour ctx: it is
// cancelled when the evaluation times out. Registering a name again replaces
// the earlier check, so a subsystem that restarts can re-register without
// first removing itself. Checks may be added while the handler is serving,
// since subsystems come up at different times.
func (h *Health) AddReadyCheck(name string, fn func(ctx context.Context) error) {
	if name == "" || fn == nil {
		panic("daemon: AddReadyCheck needs a name and a function")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := range h.checks {
		if h.checks[i].name == name {
			h.checks[i].fn = fn
			return
		}
	}
	h.checks = append(h.checks, readyCheck{name: name, fn: fn})
}

// Check runs every registered check concurrently and returns their results in
// registration order. It returns within the timeout even when a check ignores
// its context: such a check is reported as ErrCheckTimeout and left to finish
// on its own, because a probe that hangs is worse than one that says which
// dependency is stuck.
func (h *Health) Check(ctx context.Context) []CheckResult {
	h.mu.Lock()
	checks := append([]readyCheck(nil), h.checks...)
	timeout := h.Timeout
	h.mu.Unlock()
	if timeout <= 0 {
		timeout = DefaultReadyTimeout
	}

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	// One buffered channel per check: a check that outlives the evaluation
	// can still send its result and exit instead of leaking blocked forever.
	done := make([]chan error, len(checks))
	for i, c := range checks {
		done[i] = make(chan error, 1)
		go func() { done[i] <- runCheck(ctx, c.fn) }()
	}

	results := make([]CheckResult, len(checks))
	for i, c := range checks {
		var err error
		select {
		case err = <-done[i]:
		case <-ctx.Done():
			// Prefer a result that arrived at the same moment as the deadline.
			select {
			case err = <-done[i]:
			default:
				err = timeoutError(ctx, timeout)
			}
		}
		results[i] = CheckResult{Name: c.name, Err: err}
	}
	return results
}

// Ready reports nil when every check passes, or the failures joined into one
// error. Daemons use it to wait for themselves before announcing readiness.
func (h *Health) Ready(ctx context.Context) error {
	var errs []error
	for _, r := range h.Check(ctx) {
		if r.Err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r.Name, r.Err))
		}
	}
	return errors.Join(errs...)
}

// runCheck turns a panic into a failed check. The check runs on its own
// goroutine, where net/http's panic recovery does not reach, so without this
// one buggy check would take the whole daemon down from a health probe.
func runCheck(ctx context.Context, fn func(context.Context) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return fn(ctx)
}

func timeoutError(ctx context.Context, timeout time.Duration) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		// Wrap ctx.Err too, so the message reads the same whether the check
		// returned ctx.Err itself or we stopped waiting for it.
		return fmt.Errorf("%w after %s: %w", ErrCheckTimeout, timeout, ctx.Err())
	}
	// The caller went away (the prober hung up); say so rather than blame
	// the check.
	return ctx.Err()
}
