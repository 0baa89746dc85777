package logs

import (
	"strings"
	"testing"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/store"
)

func TestJobLines(t *testing.T) {
	code := func(n int) *int { return &n }
	yes, no := true, false
	running := &api.JobStatus{State: api.JobRunning}
	tests := []struct {
		name     string
		old, cur *api.JobStatus
		want     string
	}{
		{"up", &api.JobStatus{State: api.JobStarting}, running, "State changed to up"},
		{"crash", running, &api.JobStatus{State: api.JobFailed, ExitCode: code(3), Error: "exit status 3"},
			"Process exited with status 3|State changed to crashed: exit status 3"},
		{"oom", running, &api.JobStatus{State: api.JobFailed, ExitCode: code(137), Signal: "SIGKILL", OOMKilled: true, Error: "out of memory"},
			"Error R14 (Memory quota exceeded): process killed: out of memory|State changed to crashed"},
		{"killed", running, &api.JobStatus{State: api.JobFailed, ExitCode: code(137), Signal: "SIGKILL", Error: "killed by SIGKILL"},
			"Process killed by SIGKILL|State changed to crashed: killed by SIGKILL"},
		{"clean exit", running, &api.JobStatus{State: api.JobComplete, ExitCode: code(0)}, "Process exited with status 0"},
		{"stopped", running, &api.JobStatus{State: api.JobShutdown}, "Stopped"},
		{"lost", running, &api.JobStatus{State: api.JobLost, HostID: "h1"}, "Host h1 lost: the job is gone"},
		{"rejected", nil, &api.JobStatus{State: api.JobRejected, Error: "artifact: digest mismatch"}, "Could not start: artifact: digest mismatch"},
		{"health fails", &api.JobStatus{State: api.JobRunning, Healthy: &yes},
			&api.JobStatus{State: api.JobRunning, Healthy: &no, Error: "health check failed: connection refused"},
			"Error H20 (health check failed): connection refused"},
		{"health still failing, same error", &api.JobStatus{State: api.JobRunning, Healthy: &no, Error: "health check failed: x"},
			&api.JobStatus{State: api.JobRunning, Healthy: &no, Error: "health check failed: x"}, ""},
		{"health passes", &api.JobStatus{State: api.JobRunning, Healthy: &no}, &api.JobStatus{State: api.JobRunning, Healthy: &yes}, "Health check passing"},
		{"nothing new", running, running, ""},
	}
	for _, tt := range tests {
		if got := strings.Join(jobLines(tt.old, tt.cur), "|"); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestDeployAndScaleLines(t *testing.T) {
	dep := func(s api.DeployState) *store.Item[api.Deployment] {
		return &store.Item[api.Deployment]{Value: api.Deployment{App: "shop", Version: 3, NewRelease: "shop-v3", State: s, Reason: "web crashed"}}
	}
	for _, tt := range []struct {
		old, cur *store.Item[api.Deployment]
		want     string
	}{
		{nil, dep(api.DeployPending), "Deploy v3 started (one-by-one)"},
		{dep(api.DeployPending), dep(api.DeployRunning), ""},
		{dep(api.DeployRunning), dep(api.DeployComplete), "Deploy v3 finished"},
		{dep(api.DeployRunning), dep(api.DeployFailed), "Deploy v3 failed: web crashed; the previous release keeps serving"},
	} {
		l, ok := deployLine(tt.old, tt.cur)
		if got := l.Text; (ok && got != tt.want) || (!ok && tt.want != "") {
			t.Errorf("deploy line %q (%v), want %q", got, ok, tt.want)
		}
		if ok && (l.App != "shop" || l.Process != "api" || l.Source != api.LogSourcePier) {
			t.Errorf("deploy line %+v", l)
		}
	}
	form := func(counts map[string]int) *store.Item[api.Formation] {
		return &store.Item[api.Formation]{Value: api.Formation{App: "shop", Release: "shop-v3", Processes: counts}}
	}
	if l, ok := scaleLine(form(map[string]int{"web": 1}), form(map[string]int{"web": 2, "worker": 1})); !ok || l.Text != "Scaled v3 to web@2 worker@1" {
		t.Errorf("scale line %q %v", l.Text, ok)
	}
	if _, ok := scaleLine(form(map[string]int{"web": 1}), form(map[string]int{"web": 1})); ok {
		t.Error("a line for an unchanged formation")
	}
}
