package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/pierpaas/pier/host/shim"
)

// ErrAgentRunning is StopJobs' error while the host's agent runs: it
// would report the jobs' ends and the scheduler would start them again.
var ErrAgentRunning = errors.New("agent: the host's agent is running")

// StopJobs stops every job still running on the host whose data directory
// is dataDir, as a desired shutdown would (SIGTERM, SIGKILL after the
// job's grace period), all at once, and returns how many it stopped. It
// is for `pier up --stop-jobs` and `pier down`, while no agent runs
// there: the bbolt lock on its local state says whether one does. The
// jobs' desired state is left alone, so the next agent finds them ended,
// reports it, and the scheduler starts them again: the apps come back
// with the next `pier up`.
func StopJobs(ctx context.Context, dataDir string) (int, error) {
	cfg := Config{DataDir: dataDir}
	db, err := bolt.Open(cfg.statePath(), 0o600, &bolt.Options{Timeout: 300 * time.Millisecond, ReadOnly: true})
	if errors.Is(err, bolt.ErrTimeout) {
		return 0, ErrAgentRunning
	}
	if err != nil {
		return 0, fmt.Errorf("agent: no host state in %s: %w", dataDir, err)
	}
	jobs, err := (&localState{db: db}).all()
	db.Close()
	if err != nil {
		return 0, err
	}
	var (
		wg      sync.WaitGroup
		stopped atomic.Int32
	)
	for _, lj := range jobs {
		dir := cfg.jobsDir() + "/" + lj.Job.ID
		if lj.Reported.Terminal() || !shim.Running(dir) {
			continue
		}
		sc, err := shim.ReadConfig(dir)
		if err != nil || sc.Socket == "" {
			continue
		}
		grace := lj.Job.StopGrace.Or(defaultStopGrace)
		wg.Go(func() {
			if stopJob(ctx, shim.NewClient(sc.Socket), grace) {
				stopped.Add(1)
			}
		})
	}
	wg.Wait()
	return int(stopped.Load()), ctx.Err()
}

// stopJob stops one job through its shim and reports whether it ran.
func stopJob(ctx context.Context, c *shim.Client, grace time.Duration) bool {
	defer c.Close()
	if st, err := c.Status(ctx); err != nil || st.Result != nil {
		return false // ended already, or its shim does not answer
	}
	c.Signal(ctx, syscall.SIGTERM)
	wctx, cancel := context.WithTimeout(ctx, grace)
	_, err := c.Wait(wctx)
	cancel()
	if err != nil && ctx.Err() == nil {
		c.Signal(ctx, syscall.SIGKILL)
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		c.Wait(wctx)
		cancel()
	}
	return true
}
