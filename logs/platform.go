package logs

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/store"
)

// Platform puts the platform's own lines into the apps' streams, as
// Heroku's heroku[api] and heroku[web.1] lines: deploys starting and
// ending, scaling, and jobs coming up, crashing (with the exit code),
// killed out of memory or failing their health checks. It watches the
// store from the moment it starts; what happened before is not told
// again, since a new aggregator would otherwise repeat history.
type Platform struct {
	Client *clientv3.Client
	Emit   func(api.AppLogLine)
	Log    *slog.Logger
}

// platformQueue bounds the changes waiting to be told; past it they are
// dropped (a burst of thousands of job changes at once).
const platformQueue = 4096

// Run watches until ctx ends.
func (p *Platform) Run(ctx context.Context) {
	if p.Log == nil {
		p.Log = slog.Default()
	}
	deps := store.NewCache[api.Deployment](p.Client, store.DeploymentsPrefix)
	forms := store.NewCache[api.Formation](p.Client, store.FormationsPrefix)
	jobs := store.NewCache[api.Job](p.Client, store.JobsPrefix)
	statuses := store.NewCache[api.JobStatus](p.Client, store.JobStatusPrefix)
	work := make(chan func(), platformQueue)
	queue := func(f func()) {
		select {
		case work <- f:
		default:
			p.Log.Debug("platform log line dropped: queue full")
		}
	}
	deps.OnEvent(func(e store.Event[api.Deployment]) {
		if synced(deps.Synced()) && e.New != nil {
			if line, ok := deployLine(e.Old, e.New); ok {
				queue(func() { p.Emit(line) })
			}
		}
	})
	forms.OnEvent(func(e store.Event[api.Formation]) {
		if synced(forms.Synced()) && e.New != nil {
			if line, ok := scaleLine(e.Old, e.New); ok {
				queue(func() { p.Emit(line) })
			}
		}
	})
	statuses.OnEvent(func(e store.Event[api.JobStatus]) {
		if !synced(statuses.Synced()) || e.New == nil {
			return
		}
		old, st := e.Old, e.New.Value
		queue(func() {
			job, ok := p.jobOf(ctx, jobs, st)
			if !ok || job.App == "" {
				return
			}
			var prev *api.JobStatus
			if old != nil {
				prev = &old.Value
			}
			for _, text := range jobLines(prev, &st) {
				p.Emit(api.AppLogLine{Time: time.Now(), App: job.App, Source: api.LogSourcePier,
					Process: job.ProcessType, Job: job.ID, Release: job.Release, Host: st.HostID, Text: text})
			}
		})
	})
	for _, run := range []func(context.Context) error{deps.Run, forms.Run, jobs.Run, statuses.Run} {
		go run(ctx)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case f := <-work:
			f()
		}
	}
}

func synced(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// jobOf finds a status's job. Its record is written before any status,
// but the two caches may be a moment apart.
func (p *Platform) jobOf(ctx context.Context, jobs *store.Cache[api.Job], st api.JobStatus) (api.Job, bool) {
	key, err := store.Key(store.JobsPrefix, st.HostID, st.ID)
	if err != nil {
		return api.Job{}, false
	}
	for range 10 {
		if it, ok := jobs.Get(key); ok {
			return it.Value, true
		}
		select {
		case <-ctx.Done():
			return api.Job{}, false
		case <-time.After(100 * time.Millisecond):
		}
	}
	return api.Job{}, false
}

func version(app, release string) string {
	if v, ok := strings.CutPrefix(release, app+"-"); ok {
		return v
	}
	return release
}

func deployLine(old, cur *store.Item[api.Deployment]) (api.AppLogLine, bool) {
	d := cur.Value
	if old != nil && old.Value.State == d.State {
		return api.AppLogLine{}, false
	}
	line := api.AppLogLine{Time: time.Now(), App: d.App, Source: api.LogSourcePier, Process: "api", Release: d.NewRelease}
	v := fmt.Sprintf("v%d", d.Version)
	switch {
	case old == nil:
		line.Text = fmt.Sprintf("Deploy %s started (%s)", v, cmp.Or(d.Strategy.Kind, api.StrategyOneByOne))
	case d.State == api.DeployComplete:
		line.Text = fmt.Sprintf("Deploy %s finished", v)
	case d.State == api.DeployFailed:
		line.Text = fmt.Sprintf("Deploy %s failed: %s; the previous release keeps serving", v, d.Reason)
	default:
		return line, false
	}
	return line, true
}

func scaleLine(old, cur *store.Item[api.Formation]) (api.AppLogLine, bool) {
	f := cur.Value
	if old != nil && maps.Equal(old.Value.Processes, f.Processes) {
		return api.AppLogLine{}, false
	}
	var parts []string
	for _, t := range slices.Sorted(maps.Keys(f.Processes)) {
		parts = append(parts, fmt.Sprintf("%s@%d", t, f.Processes[t]))
	}
	return api.AppLogLine{Time: time.Now(), App: f.App, Source: api.LogSourcePier, Process: "api", Release: f.Release,
		Text: fmt.Sprintf("Scaled %s to %s", version(f.App, f.Release), strings.Join(parts, " "))}, true
}

// jobLines says what changed in a job's status, Heroku's way.
func jobLines(old, st *api.JobStatus) []string {
	var out []string
	if old == nil || old.State != st.State {
		switch st.State {
		case api.JobRunning:
			out = append(out, "State changed to up")
		case api.JobComplete:
			out = append(out, "Process exited with status 0")
		case api.JobFailed:
			switch {
			case st.OOMKilled:
				out = append(out, "Error R14 (Memory quota exceeded): process killed: out of memory")
			case st.ExitCode != nil && st.Signal == "":
				out = append(out, fmt.Sprintf("Process exited with status %d", *st.ExitCode))
			case st.Signal != "":
				out = append(out, "Process killed by "+st.Signal)
			}
			if st.Error != "" && !st.OOMKilled {
				out = append(out, "State changed to crashed: "+st.Error)
			} else {
				out = append(out, "State changed to crashed")
			}
		case api.JobShutdown:
			out = append(out, "Stopped")
		case api.JobLost:
			out = append(out, "Host "+st.HostID+" lost: the job is gone")
		case api.JobRejected:
			out = append(out, "Could not start: "+st.Error)
		}
	}
	wasHealthy := old != nil && old.Healthy != nil && *old.Healthy
	switch {
	case st.Healthy == nil:
	case !*st.Healthy && strings.HasPrefix(st.Error, "health check failed") && (old == nil || old.Error != st.Error || wasHealthy):
		out = append(out, "Error H20 (health check failed): "+strings.TrimPrefix(st.Error, "health check failed: "))
	case *st.Healthy && !wasHealthy && st.State == api.JobRunning:
		out = append(out, "Health check passing")
	}
	return out
}
