package controller_test

import (
	"net/http"
	"slices"
	"testing"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/client"
)

// liveJobs are the app's service jobs meant to run, and how many run.
func (e *env) liveJobs(app string) (ids []string, running int) {
	e.t.Helper()
	jl, err := e.cli.Jobs(ctx(e.t), app)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, j := range jl.Jobs {
		if !j.OneOff && j.Desired == api.DesiredRunning && !j.State.Terminal() {
			ids = append(ids, j.ID)
			if j.State == api.JobRunning {
				running++
			}
		}
	}
	return ids, running
}

// deployWorkers makes app with a release of two worker jobs, running.
func (e *env) deployWorkers(app string) {
	e.t.Helper()
	c := ctx(e.t)
	if _, err := e.cli.CreateApp(c, api.CreateAppRequest{Name: app}); err != nil {
		e.t.Fatal(err)
	}
	res, err := e.cli.CreateRelease(c, app, api.CreateReleaseRequest{Artifact: &api.Artifact{SHA256: e.slug("x")}, Processes: worker()})
	if err != nil {
		e.t.Fatal(err)
	}
	if d := e.deployed(res); d.State != api.DeployComplete {
		e.t.Fatalf("deployment: %+v", d)
	}
	if _, err := e.cli.Scale(c, app, map[string]int{"worker": 2}); err != nil {
		e.t.Fatal(err)
	}
	waitFor(e.t, "two running workers", func() bool { ids, n := e.liveJobs(app); return len(ids) == 2 && n == 2 })
}

func TestRestart(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	if _, err := e.cli.CreateApp(c, api.CreateAppRequest{Name: "empty"}); err != nil {
		t.Fatal(err)
	}
	_, err := e.cli.Restart(c, "empty", api.RestartRequest{})
	wantCode(t, err, api.ErrCodeInvalid, 422) // no release
	_, err = e.cli.Run(c, "empty", api.RunRequest{Args: []string{"true"}})
	wantCode(t, err, api.ErrCodeInvalid, 422) // nothing to run it with

	e.deployWorkers("app")
	old, _ := e.liveJobs("app")
	_, err = e.cli.Restart(c, "app", api.RestartRequest{ProcessType: "web"})
	wantCode(t, err, api.ErrCodeInvalid, 422)
	_, err = e.cli.Restart(c, "app", api.RestartRequest{Job: "app-worker-nosuchjob"})
	wantCode(t, err, api.ErrCodeNotFound, 404)
	_, err = e.cli.Restart(c, "nosuch", api.RestartRequest{})
	wantCode(t, err, api.ErrCodeNotFound, 404)

	// One job.
	res, err := e.cli.Restart(c, "app", api.RestartRequest{Job: old[0]})
	if err != nil || !slices.Equal(res.Jobs, old[:1]) {
		t.Fatalf("restart %s: %+v, %v", old[0], res, err)
	}
	waitFor(t, "the job replaced", func() bool {
		ids, n := e.liveJobs("app")
		return len(ids) == 2 && n == 2 && !slices.Contains(ids, old[0]) && slices.Contains(ids, old[1])
	})
	// Every job.
	before, _ := e.liveJobs("app")
	res, err = e.cli.Restart(c, "app", api.RestartRequest{})
	if err != nil || len(res.Jobs) != 2 {
		t.Fatalf("restart: %+v, %v", res, err)
	}
	waitFor(t, "every job replaced", func() bool {
		ids, n := e.liveJobs("app")
		return len(ids) == 2 && n == 2 && !slices.Contains(ids, before[0]) && !slices.Contains(ids, before[1])
	})
}

func TestMaintenanceAndRename(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	e.deployWorkers("old")
	app, err := e.cli.SetMaintenance(c, "old", true)
	if err != nil || !app.Maintenance {
		t.Fatalf("maintenance on: %+v, %v", app, err)
	}
	if app, _ := e.cli.App(c, "old"); !app.Maintenance || app.URL != "" {
		t.Fatalf("app in maintenance: %+v (no web process: no URL)", app)
	}
	if _, err := e.cli.CreateApp(c, api.CreateAppRequest{Name: "taken"}); err != nil {
		t.Fatal(err)
	}
	_, err = e.cli.RenameApp(c, "old", "taken")
	wantCode(t, err, api.ErrCodeConflict, 409)
	_, err = e.cli.RenameApp(c, "old", "Bad Name")
	wantCode(t, err, api.ErrCodeInvalid, 422)
	_, err = e.cli.RenameApp(c, "old", "old")
	wantCode(t, err, api.ErrCodeInvalid, 422)

	app, err = e.cli.RenameApp(c, "old", "new")
	if err != nil || app.Name != "new" || app.Release != "new-v1" || !app.Maintenance {
		t.Fatalf("rename: %+v, %v", app, err)
	}
	_, err = e.cli.App(c, "old")
	wantCode(t, err, api.ErrCodeNotFound, 404)
	rels, err := e.cli.Releases(c, "new")
	if err != nil || len(rels) != 1 || rels[0].ID != "new-v1" || rels[0].App != "new" {
		t.Fatalf("releases after the rename: %+v, %v", rels, err)
	}
	if f, err := e.cli.Formation(c, "new"); err != nil || f.Processes["worker"] != 2 {
		t.Fatalf("formation after the rename: %+v, %v", f, err)
	}
	if deps, err := e.cli.Deployments(c, "new"); err != nil || len(deps) != 1 || deps[0].NewRelease != "new-v1" {
		t.Fatalf("deployments after the rename: %+v, %v", deps, err)
	}
	waitFor(t, "two workers under the new name", func() bool { ids, n := e.liveJobs("new"); return len(ids) == 2 && n == 2 })
	// The old name is free again, without a trace.
	if _, err := e.cli.CreateApp(c, api.CreateAppRequest{Name: "old"}); err != nil {
		t.Fatal(err)
	}
	if rels, err := e.cli.Releases(c, "old"); err != nil || len(rels) != 0 {
		t.Fatalf("the new app old inherited %+v, %v", rels, err)
	}
}

// Logs of a job the app never had are an error, not an empty stream.
func TestLogsOfUnknownJob(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	e.deployWorkers("app")
	err := e.cli.Logs(c, "app", client.LogsQuery{Job: "app-worker-nosuchjob"}, func(api.AppLogLine) error { return nil })
	wantCode(t, err, api.ErrCodeNotFound, 404)
}

// Any path, one the API has or not, wants a key first.
func TestUnknownPathsWantAKey(t *testing.T) {
	e := newEnv(t)
	for _, p := range []string{"/", "/nope", "/v2/apps", "/.env"} {
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
			req, _ := http.NewRequest(m, e.srv.URL+p, nil)
			resp, err := e.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 401 {
				t.Errorf("%s %s without a key: %d, want 401", m, p, resp.StatusCode)
			}
		}
	}
}
