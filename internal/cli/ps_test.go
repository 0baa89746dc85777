package cli

import (
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
)

// pier ps leaves build jobs to pier builds unless --all.
func TestWithoutBuilds(t *testing.T) {
	jobs := []api.AppJob{
		{ID: "web-1", ProcessType: "web", Args: []string{api.PierBinary, "slugrun", "--", "web"}},
		{ID: "hello-build-1", OneOff: true, Args: []string{api.PierBinary, "slugbuild"}},
		{ID: "run-1", OneOff: true, Args: []string{"sh", "-c", "x"}},
	}
	got := withoutBuilds(jobs)
	if len(got) != 2 || got[0].ID != "web-1" || got[1].ID != "run-1" {
		t.Errorf("withoutBuilds = %+v", got)
	}
	if len(jobs) != 3 || jobs[1].ID != "hello-build-1" {
		t.Errorf("withoutBuilds changed its argument: %+v", jobs)
	}
}

// A crashed service job says how it ended and when its type restarts.
func TestCrashedState(t *testing.T) {
	now := time.Now()
	three := 3
	for _, c := range []struct {
		job  api.AppJob
		want string
	}{
		{api.AppJob{State: api.JobFailed, ExitCode: &three, RestartAt: now.Add(8 * time.Second)}, "crashed (exit 3), restarts in 8s"},
		{api.AppJob{State: api.JobFailed, Error: "out of memory", RestartAt: now.Add(-time.Second)}, "crashed (out of memory), restarting"},
		{api.AppJob{State: api.JobFailed, ExitCode: &three}, "crashed (exit 3), not restarted"},
		{api.AppJob{State: api.JobRejected, Error: "no such image", RestartAt: now.Add(time.Minute)}, "crashed (rejected: no such image), restarts in 1m0s"},
	} {
		if got := crashedState(c.job, now); got != c.want {
			t.Errorf("crashedState(%+v) = %q, want %q", c.job, got, c.want)
		}
	}
}
