package runtime

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// BareRun measures runc alone: it prepares spec's bundle once, exactly as
// Run would, then times n plain `runc run` invocations of it, one after the
// other, with stdio on /dev/null. Set beside the time of Run for the same
// spec, the difference is what pier adds to a container start (bundle,
// tmpfs and overlay, create/start, OOM check, cleanup). It is meant for
// benchmarks.
func (r *Runc) BareRun(ctx context.Context, spec Spec, n int) ([]time.Duration, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	spec = spec.withDefaults()
	spec.TTY = false
	dir := r.bundle(spec.ID)
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("%w: %s", ErrExists, spec.ID)
		}
		return nil, err
	}
	defer func() { _ = r.Delete(spec.ID) }()
	if err := r.prepare(spec, dir); err != nil {
		return nil, err
	}
	times := make([]time.Duration, 0, n)
	for range n {
		// runc run deletes the container when it exits, so the id can be
		// used again at once.
		cmd := r.command(ctx, dir, "run", "--bundle", dir, spec.ID)
		start := time.Now()
		if err := cmd.Run(); err != nil {
			return times, fmt.Errorf("runtime: runc run: %w", r.runcError(dir, nil, err))
		}
		times = append(times, time.Since(start))
	}
	return times, nil
}
