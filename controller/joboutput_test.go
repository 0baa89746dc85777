package controller_test

import (
	"strings"
	"testing"

	"github.com/pierpaas/pier/api"
)

// A job's last lines come from its host; another app's job, and a bad
// line count, are refused.
func TestJobOutput(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	for _, name := range []string{"out", "other"} {
		if _, err := e.cli.CreateApp(c, api.CreateAppRequest{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := e.cli.CreateRelease(c, "out", api.CreateReleaseRequest{
		Artifact: &api.Artifact{SHA256: e.slug("x")}, Processes: worker()})
	if err != nil {
		t.Fatal(err)
	}
	if d := e.deployed(res); d.State != api.DeployComplete {
		t.Fatalf("deployment: %+v", d)
	}
	if _, err := e.cli.Scale(c, "out", map[string]int{"worker": 1}); err != nil {
		t.Fatal(err)
	}
	var id string
	waitFor(t, "a running worker", func() bool {
		jl, err := e.cli.Jobs(c, "out")
		if err == nil && len(jl.Jobs) == 1 && jl.Jobs[0].State == api.JobRunning {
			id = jl.Jobs[0].ID
		}
		return id != ""
	})
	for i := range 30 {
		if err := e.host.Runtime.Write(id, "line "+string(rune('a'+i%26))+"\n", ""); err != nil {
			t.Fatal(err)
		}
	}
	var lines []api.LogLine
	waitFor(t, "the job's lines on its host", func() bool {
		lines, err = e.cli.JobOutput(c, "out", id, 5)
		return err == nil && len(lines) == 5 && lines[4].Text == "line d"
	})
	if lines[0].Text != "line z" {
		t.Errorf("last 5 lines: %+v", lines)
	}

	_, err = e.cli.JobOutput(c, "other", id, 5)
	wantCode(t, err, api.ErrCodeNotFound, 404)
	_, err = e.cli.JobOutput(c, "out", "out-worker-nope", 5)
	wantCode(t, err, api.ErrCodeNotFound, 404)
	_, err = e.cli.JobOutput(c, "out", id, 0)
	if err == nil || !strings.Contains(err.Error(), "lines") {
		t.Errorf("lines=0: %v", err)
	}
	wantCode(t, err, api.ErrCodeInvalid, 422)
}
