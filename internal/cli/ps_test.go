package cli

import (
	"testing"

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
