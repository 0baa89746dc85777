package controller_test

import (
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
)

// TestCrashedJobListed: a worker that keeps crashing is listed by pier ps
// as its last job, ended with its exit code, its slot's restart count and
// when it restarts next, instead of vanishing between restarts.
func TestCrashedJobListed(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	e.cli.CreateApp(c, api.CreateAppRequest{Name: "app"})
	res, err := e.cli.CreateRelease(c, "app", api.CreateReleaseRequest{Processes: worker()})
	if err != nil {
		t.Fatal(err)
	}
	e.deployed(res)
	if _, err := e.cli.Scale(c, "app", map[string]int{"worker": 1}); err != nil {
		t.Fatal(err)
	}
	// Each new job crashes as soon as it runs, until one is seen waiting
	// for a restart a while off (the backoff doubles from 100 ms).
	var crashed api.AppJob
	waitFor(t, "a crashed worker waiting to restart", func() bool {
		jl, err := e.cli.Jobs(c, "app")
		if err != nil {
			return false
		}
		for _, j := range jl.Jobs {
			switch {
			case j.State == api.JobRunning:
				e.host.Runtime.Exit(j.ID, 3)
			case j.Crashed() && j.RestartAt.After(time.Now().Add(300*time.Millisecond)):
				crashed = j
				return true
			}
		}
		return false
	})
	if crashed.State != api.JobFailed || crashed.ExitCode == nil || *crashed.ExitCode != 3 || crashed.Restarts < 2 ||
		crashed.FinishedAt.IsZero() || !crashed.RestartAt.After(crashed.FinishedAt) || crashed.Desired != api.DesiredRunning {
		t.Fatalf("crashed job: %+v", crashed)
	}
	// Scaled to zero, nothing is left to restart: the crashed job goes.
	if _, err := e.cli.Scale(c, "app", map[string]int{"worker": 0}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "no jobs listed", func() bool {
		jl, err := e.cli.Jobs(c, "app")
		return err == nil && len(jl.Jobs) == 0
	})
}
