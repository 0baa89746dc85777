package controller

import (
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/store"
)

// restart replaces an app's service jobs, those of one process type, or
// one job, without a moment with fewer of them serving (pier restart).
// It only writes the jobs to replace into the current release's
// formation (Formation.Restart); the scheduler does the rest, one job at
// a time, as it moves the jobs of a drained host: a new job first, the
// old one stopped once the new one runs and is healthy. A restart is
// thus a record in the store, not a goroutine of this request, and
// survives the loss of any server.
func (c *Controller) restart(w http.ResponseWriter, r *http.Request) error {
	var req api.RestartRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if req.Job != "" && req.ProcessType != "" {
		return invalid("restart a process type or a job, not both")
	}
	ctx := r.Context()
	for {
		app, appRev, err := c.loadApp(ctx, r.PathValue("app"))
		if err != nil {
			return err
		}
		if app.Release == "" {
			return invalid("app %s has no release yet: nothing runs to restart (deploy it first)", app.Name)
		}
		if d, err := c.activeDeployment(ctx, app.Name); err != nil {
			return err
		} else if d != nil {
			return conflict("app %s is being deployed (v%d), which replaces its jobs anyway; restart it when the deployment has finished", app.Name, d.Version)
		}
		rel, err := c.release(ctx, app.Name, app.Release)
		if err != nil {
			return err
		}
		if t := req.ProcessType; t != "" {
			if _, ok := rel.Processes[t]; !ok || t == api.ReleaseProcess {
				return invalid("app %s has no process type %q in v%d (it has: %s)", app.Name, t, rel.Version, scalable(rel))
			}
		}
		jobs, err := c.appJobs(ctx, app.Name)
		if err != nil {
			return err
		}
		ids, err := restartable(app, rel, jobs, req)
		if err != nil {
			return err
		}
		key, err := store.Key(store.FormationsPrefix, app.Name, app.Release)
		if err != nil {
			return err
		}
		f, fRev, err := store.Get[api.Formation](ctx, c.Client, key)
		if errors.Is(err, store.ErrNotFound) {
			return invalid("app %s runs no jobs to restart", app.Name)
		} else if err != nil {
			return err
		}
		f.Restart = mergeRestart(f.Restart, ids, jobs)
		f.UpdatedAt = time.Now().UTC()
		// Guarded by the app too: a deployment that starts meanwhile
		// bumps it, and the restart is then checked again.
		_, err = store.Txn().Unchanged(appKey(app.Name), appRev).Update(key, f, fRev).Commit(ctx, c.Client)
		if errors.Is(err, store.ErrConflict) {
			continue
		} else if err != nil {
			return err
		}
		c.Log.Info("restart requested", "app", app.Name, "release", app.Release, "jobs", ids)
		writeJSON(w, http.StatusAccepted, api.RestartResult{App: app.Name, Jobs: ids})
		return nil
	}
}

// restartable picks the jobs a restart request names: the current
// release's live service jobs, of one type or one job if it says so.
func restartable(app api.App, rel api.Release, jobs api.JobList, req api.RestartRequest) ([]string, error) {
	// An omni type has one job per host, and no room on a host for a
	// second: the scheduler does not restart it one by one (yet).
	omni := func(ptype string) bool { return rel.Processes[ptype].Omni }
	if omni(req.ProcessType) {
		return nil, invalid("process type %s runs one job on every host, which pier restart cannot replace one by one yet; pier kill JOB restarts each", req.ProcessType)
	}
	var ids []string
	for _, j := range jobs.Jobs {
		if req.Job != "" && j.ID != req.Job {
			continue
		}
		if req.Job != "" {
			switch {
			case j.OneOff:
				return nil, invalid("job %s is a one-off job, which a restart would not bring back; pier kill stops it", j.ID)
			case j.State.Terminal() || j.Desired != api.DesiredRunning:
				return nil, conflict("job %s is stopping or has ended (%s)", j.ID, j.State)
			case j.Release != app.Release:
				return nil, conflict("job %s runs an older release, which its deployment is replacing", j.ID)
			case omni(j.ProcessType):
				return nil, invalid("job %s is of process type %s, which runs on every host: pier kill restarts it", j.ID, j.ProcessType)
			}
		}
		if j.OneOff || j.Release != app.Release || j.Desired != api.DesiredRunning || j.State.Terminal() || omni(j.ProcessType) {
			continue
		}
		if req.ProcessType != "" && j.ProcessType != req.ProcessType {
			continue
		}
		ids = append(ids, j.ID)
	}
	switch {
	case req.Job != "" && len(ids) == 0:
		return nil, notFound("app %s has no job %q", app.Name, req.Job)
	case len(ids) == 0 && req.ProcessType != "":
		return nil, invalid("app %s runs no %s jobs to restart (pier scale %s=1 starts one)", app.Name, req.ProcessType, req.ProcessType)
	case len(ids) == 0:
		return nil, invalid("app %s runs no jobs to restart (pier scale starts some)", app.Name)
	}
	return ids, nil
}

// mergeRestart adds ids to a formation's restart list, keeping the
// earlier entries of jobs that still run (a restart going on goes on)
// and dropping those of jobs that are gone.
func mergeRestart(old, ids []string, jobs api.JobList) []string {
	live := map[string]bool{}
	for _, j := range jobs.Jobs {
		if j.Desired == api.DesiredRunning && !j.State.Terminal() {
			live[j.ID] = true
		}
	}
	var out []string
	for _, id := range old {
		if live[id] && !slices.Contains(ids, id) {
			out = append(out, id)
		}
	}
	return append(out, ids...)
}
