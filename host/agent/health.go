package agent

import (
	"context"
	"sync"
	"syscall"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/discovery"
	"github.com/pierpaas/pier/host/health"
)

// portHealth tracks the checks of a running job's ports.
type portHealth struct {
	mu      sync.Mutex
	healthy map[int]bool // by port index, for ports that are checked
}

// watchHealth checks each port that has a service or a health check, for
// as long as ctx lasts: a port is in discovery only while its check
// passes. The job's status carries the overall verdict.
func (w *worker) watchHealth(ctx context.Context, running api.JobStatus) {
	job := &w.lj.Job
	ph := &portHealth{healthy: map[int]bool{}}
	for i, p := range job.Ports {
		if p.Service == "" && p.Health == nil || i >= len(w.lj.HostPorts) {
			continue
		}
		check := health.Check{Kind: health.KindTCP, Addr: w.addr(i)}
		if h := p.Health; h != nil {
			check.Kind, check.Path, check.Threshold = h.Kind, h.Path, h.Threshold
			check.Interval, check.Timeout, check.StartGrace = time.Duration(h.Interval), time.Duration(h.Timeout), time.Duration(h.StartGrace)
		}
		ph.healthy[i] = false
		go func() {
			err := health.Run(ctx, check.WithDefaults(), func(s health.Status) {
				w.onHealth(ctx, ph, i, p, s, running)
			})
			if err != nil && ctx.Err() == nil {
				w.a.cfg.Log.Warn("health check not run", "job", job.ID, "port", i, "err", err)
			}
		}()
	}
}

func (w *worker) onHealth(ctx context.Context, ph *portHealth, i int, p api.Port, s health.Status, running api.JobStatus) {
	job := &w.lj.Job
	id := instanceID(job.ID, i)
	healthy := s.State == health.Healthy
	if p.Service != "" {
		if healthy {
			w.a.services.set(p.Service, discovery.Instance{
				ID: id, Addr: w.addr(i), Proto: p.Proto,
				Meta: map[string]string{"job": job.ID, "host": w.a.cfg.ID, "app": job.App,
					"release": job.Release, "process_type": job.ProcessType},
			})
		} else {
			w.a.services.unset(id)
		}
	}
	ph.mu.Lock()
	ph.healthy[i] = healthy
	all := true
	for _, ok := range ph.healthy {
		all = all && ok
	}
	ph.mu.Unlock()
	st := running
	st.Healthy = &all
	if s.State == health.Unhealthy {
		st.Error = "health check failed: " + s.Err
		w.a.cfg.Log.Warn("job unhealthy", "job", job.ID, "port", i, "err", s.Err, "failures", s.Failures)
	}
	if ctx.Err() == nil {
		w.a.writeStatus(ctx, st)
	}
	if s.State == health.Unhealthy && job.KillUnhealthy {
		w.killReason.Store("killed: health check failed: " + s.Err)
		w.shim.Signal(ctx, syscall.SIGKILL)
	}
}

// deregister removes all of the job's ports from discovery and reports
// whether it had any there to remove.
func (w *worker) deregister() bool {
	had := false
	for i, p := range w.lj.Job.Ports {
		if p.Service != "" {
			had = w.a.services.unset(instanceID(w.lj.Job.ID, i)) || had
		}
	}
	return had
}
