package deployer_test

import (
	"fmt"
	"maps"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/controller/deployer"
	"github.com/pierpaas/pier/scheduler"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// checked is a process type whose jobs have a health-checked port.
var checked = api.ProcessType{Args: []string{"serve"}, Ports: []api.Port{{Proto: "http", Health: &api.HealthCheck{Kind: "tcp"}}}}

type fixture struct {
	v   deployer.View
	now time.Time
}

// fx is a running deployment of hello from hello-v1 to hello-v2 by kind
// (batch size 2), both releases with a checked web process type.
func fx(kind string, old, target map[string]int) *fixture {
	f := &fixture{now: t0.Add(10 * time.Second)}
	procs := map[string]api.ProcessType{}
	for t := range target {
		procs[t] = checked
	}
	f.v = deployer.View{
		Deployment: api.Deployment{ID: "hello-v2", App: "hello", OldRelease: "hello-v1", NewRelease: "hello-v2",
			Strategy: api.DeployStrategy{Kind: kind, BatchSize: 2}, OldProcesses: old, Processes: target,
			State: api.DeployRunning, CreatedAt: t0},
		App:     &api.App{Name: "hello", Release: "hello-v1"},
		Release: &api.Release{ID: "hello-v2", App: "hello", Version: 2, Processes: procs},
		Old:     &api.Formation{App: "hello", Release: "hello-v1", Processes: maps.Clone(old)},
	}
	return f
}

func (f *fixture) newF(c map[string]int) *fixture {
	f.v.New = &api.Formation{App: "hello", Release: "hello-v2", Processes: c}
	return f
}

func (f *fixture) oldF(c map[string]int) *fixture {
	f.v.Old.Processes = c
	return f
}

// jobs adds n jobs of ptype in state; healthy is nil for no verdict.
func (f *fixture) jobs(ptype string, n int, state api.JobState, healthy *bool, errMsg string) *fixture {
	for range n {
		id := fmt.Sprintf("hello-%s-%d", ptype, len(f.v.Jobs))
		j := api.Job{ID: id, App: "hello", Release: "hello-v2", ProcessType: ptype, Ports: checked.Ports,
			Desired: api.DesiredRunning, CreatedAt: t0.Add(time.Second), Scheduler: scheduler.ServiceScheduler}
		st := &api.JobStatus{ID: id, State: state, Healthy: healthy, Error: errMsg}
		f.v.Jobs = append(f.v.Jobs, deployer.Job{Job: j, Status: st})
	}
	return f
}

func (f *fixture) ready(ptype string, n int) *fixture {
	return f.jobs(ptype, n, api.JobRunning, ptr(true), "")
}

func (f *fixture) with(fn func(*fixture)) *fixture { fn(f); return f }

func ptr[T any](v T) *T { return &v }

func web(n int) map[string]int { return map[string]int{"web": n} }

func withRelease(f *fixture) {
	f.v.Release.Processes[api.ReleaseProcess] = api.ProcessType{Args: []string{"migrate"}}
}

func TestDecide(t *testing.T) {
	tests := []struct {
		name string
		f    *fixture
		want deployer.Action
	}{
		// States.
		{"pending begins", fx("", web(3), web(3)).with(func(f *fixture) { f.v.Deployment.State = api.DeployPending }),
			deployer.Action{Kind: deployer.Begin}},
		{"pending records missing old counts", fx("", nil, web(3)).oldF(web(2)).with(func(f *fixture) { f.v.Deployment.State = api.DeployPending }),
			deployer.Action{Kind: deployer.Begin, OldProcesses: web(2)}},
		{"done waits", fx("", web(3), web(3)).with(func(f *fixture) { f.v.Deployment.State = api.DeployComplete }),
			deployer.Action{Kind: deployer.Wait}},
		{"app deleted fails without restoring", fx("", web(3), web(3)).with(func(f *fixture) { f.v.App = nil }),
			deployer.Action{Kind: deployer.Fail, Note: "app deleted"}},
		{"release gone fails", fx("", web(3), web(3)).with(func(f *fixture) { f.v.Release = nil }),
			deployer.Action{Kind: deployer.Fail, Note: "release hello-v2 not found", Restore: true}},
		{"unknown process type fails", fx("", web(3), map[string]int{"web": 1, "worker": 2}).with(func(f *fixture) {
			delete(f.v.Release.Processes, "worker")
		}), deployer.Action{Kind: deployer.Fail, Note: "release hello-v2 has no process type worker", Restore: true}},

		// One by one, 3 to 3.
		{"one-by-one starts one", fx(api.StrategyOneByOne, web(3), web(3)),
			deployer.Action{Kind: deployer.Scale, New: web(1)}},
		{"one-by-one waits for a job not running", fx(api.StrategyOneByOne, web(3), web(3)).newF(web(1)).jobs("web", 1, api.JobStarting, nil, ""),
			deployer.Action{Kind: deployer.Wait}},
		{"one-by-one waits for a checked job with no verdict", fx(api.StrategyOneByOne, web(3), web(3)).newF(web(1)).jobs("web", 1, api.JobRunning, nil, ""),
			deployer.Action{Kind: deployer.Wait}},
		{"one-by-one waits for an unhealthy job", fx(api.StrategyOneByOne, web(3), web(3)).newF(web(1)).jobs("web", 1, api.JobRunning, ptr(false), "health check failed: refused"),
			deployer.Action{Kind: deployer.Wait}},
		{"one-by-one steps when ready", fx(api.StrategyOneByOne, web(3), web(3)).newF(web(1)).ready("web", 1),
			deployer.Action{Kind: deployer.Scale, New: web(2), Old: web(2)}},
		{"one-by-one last step", fx(api.StrategyOneByOne, web(3), web(3)).newF(web(2)).oldF(web(2)).ready("web", 2),
			deployer.Action{Kind: deployer.Scale, New: web(3), Old: web(1)}},
		{"one-by-one completes", fx(api.StrategyOneByOne, web(3), web(3)).newF(web(3)).oldF(web(1)).ready("web", 3),
			deployer.Action{Kind: deployer.Complete}},
		{"scale down completes with old left", fx(api.StrategyOneByOne, web(3), web(2)).newF(web(2)).oldF(web(1)).ready("web", 2),
			deployer.Action{Kind: deployer.Complete}},
		{"two types step together", fx(api.StrategyOneByOne, map[string]int{"web": 2, "worker": 1}, map[string]int{"web": 2, "worker": 1}).
			newF(map[string]int{"web": 1, "worker": 1}).ready("web", 1),
			deployer.Action{Kind: deployer.Scale, New: map[string]int{"web": 2, "worker": 1}, Old: map[string]int{"web": 1, "worker": 1}}},

		// Batch of 2, 4 to 5.
		{"batch starts two", fx(api.StrategyBatch, web(4), web(5)),
			deployer.Action{Kind: deployer.Scale, New: web(2)}},
		{"batch lowers old per ready job", fx(api.StrategyBatch, web(4), web(5)).newF(web(2)).ready("web", 1).jobs("web", 1, api.JobStarting, nil, ""),
			deployer.Action{Kind: deployer.Scale, Old: web(3)}},
		{"batch steps when the batch is ready", fx(api.StrategyBatch, web(4), web(5)).newF(web(2)).oldF(web(3)).ready("web", 2),
			deployer.Action{Kind: deployer.Scale, New: web(4), Old: web(2)}},
		{"batch last step is partial", fx(api.StrategyBatch, web(4), web(5)).newF(web(4)).oldF(web(2)).ready("web", 4),
			deployer.Action{Kind: deployer.Scale, New: web(5), Old: web(0)}},

		// All at once.
		{"all-at-once starts all", fx(api.StrategyAllAtOnce, web(3), web(3)),
			deployer.Action{Kind: deployer.Scale, New: web(3)}},
		{"all-at-once lowers old as jobs turn ready", fx(api.StrategyAllAtOnce, web(3), web(3)).newF(web(3)).ready("web", 2).jobs("web", 1, api.JobRunning, nil, ""),
			deployer.Action{Kind: deployer.Scale, Old: web(1)}},
		{"all-at-once completes", fx(api.StrategyAllAtOnce, web(3), web(3)).newF(web(3)).oldF(web(1)).ready("web", 3),
			deployer.Action{Kind: deployer.Complete}},

		// First deploy: no old release.
		{"first deploy starts", fx(api.StrategyOneByOne, nil, web(2)).with(firstDeploy),
			deployer.Action{Kind: deployer.Scale, New: web(1)}},
		{"first deploy completes", fx(api.StrategyOneByOne, nil, web(2)).with(firstDeploy).newF(web(2)).ready("web", 2),
			deployer.Action{Kind: deployer.Complete}},
		{"nothing to run completes and writes the formation", fx(api.StrategyOneByOne, nil, map[string]int{}).with(firstDeploy),
			deployer.Action{Kind: deployer.Complete, New: map[string]int{}}},

		// Failures.
		{"timeout explains unhealthy jobs", fx(api.StrategyOneByOne, web(1), web(1)).with(timeout30s).newF(web(1)).
			jobs("web", 1, api.JobRunning, ptr(false), "health check failed: dial tcp 127.0.0.1:1: connection refused"),
			deployer.Action{Kind: deployer.Fail, Restore: true,
				Note: "web: 0 of 1 new jobs healthy after 30s (1 running but failing its health check: dial tcp 127.0.0.1:1: connection refused)"}},
		{"timeout explains jobs not running and not placed", fx(api.StrategyAllAtOnce, web(3), web(3)).with(timeout30s).newF(web(3)).
			jobs("web", 1, api.JobStarting, nil, "").with(func(f *fixture) {
			f.v.Pending = []api.Pending{{ProcessType: "web", Count: 2, Reason: "1 host: 1 lacked memory"}}
		}), deployer.Action{Kind: deployer.Fail, Restore: true,
			Note: "web: 0 of 3 new jobs healthy after 30s (1 not running yet, 2 not placed: 1 host: 1 lacked memory)"}},
		{"done beats the timeout", fx(api.StrategyOneByOne, web(1), web(1)).with(timeout30s).newF(web(1)).ready("web", 1),
			deployer.Action{Kind: deployer.Complete}},
		{"crash fails fast", fx(api.StrategyOneByOne, web(3), web(3)).newF(web(1)).jobs("web", 1, api.JobFailed, nil, "exit status 1"),
			deployer.Action{Kind: deployer.Fail, Restore: true, Note: "web job hello-web-0 failed: exit status 1", Job: "hello-web-0"}},
		{"rejection fails fast", fx(api.StrategyOneByOne, web(3), web(3)).newF(web(1)).jobs("web", 1, api.JobRejected, nil, "artifact: digest mismatch"),
			deployer.Action{Kind: deployer.Fail, Restore: true, Note: "web job hello-web-0 rejected: artifact: digest mismatch", Job: "hello-web-0"}},
		{"crash before the deployment is ignored", fx(api.StrategyOneByOne, web(3), web(3)).newF(web(1)).jobs("web", 1, api.JobFailed, nil, "exit status 1").
			with(func(f *fixture) { f.v.Jobs[0].Job.CreatedAt = t0.Add(-time.Hour) }),
			deployer.Action{Kind: deployer.Wait}},
		{"one-off of the release crashing is ignored", fx(api.StrategyOneByOne, web(3), web(3)).newF(web(1)).jobs("web", 1, api.JobFailed, nil, "exit status 1").
			with(func(f *fixture) { f.v.Jobs[0].Job.Scheduler = scheduler.OneOffScheduler }),
			deployer.Action{Kind: deployer.Wait}},

		// Release phase.
		{"release phase requested first", fx(api.StrategyOneByOne, web(3), web(3)).with(withRelease),
			deployer.Action{Kind: deployer.RunRelease, OneOff: &api.OneOff{ID: "hello-v2-release", App: "hello", Release: "hello-v2",
				ProcessType: api.ReleaseProcess, CreatedAt: t0.Add(10 * time.Second)}}},
		{"release phase request found is only recorded", fx(api.StrategyOneByOne, web(3), web(3)).with(withRelease).
			with(func(f *fixture) { f.v.ReleaseRun.Requested = true }),
			deployer.Action{Kind: deployer.RunRelease}},
		{"release phase running waits", fx(api.StrategyOneByOne, web(3), web(3)).with(withRelease).with(releaseRun(api.JobRunning, nil, "")),
			deployer.Action{Kind: deployer.Wait, Note: "release phase: job hello-v2-release running"}},
		{"release phase not placed waits", fx(api.StrategyOneByOne, web(3), web(3)).with(withRelease).with(func(f *fixture) {
			f.v.Deployment.ReleaseJob = "hello-v2-release"
			f.v.ReleaseRun = deployer.ReleaseRun{Requested: true, Pending: "no hosts"}
		}), deployer.Action{Kind: deployer.Wait, Note: "release phase: job hello-v2-release not placed: no hosts"}},
		{"release phase ok rolls out", fx(api.StrategyOneByOne, web(3), web(3)).with(withRelease).with(releaseRun(api.JobComplete, ptr(0), "")),
			deployer.Action{Kind: deployer.Scale, New: web(1)}},
		{"release phase failure fails", fx(api.StrategyOneByOne, web(3), web(3)).with(withRelease).with(releaseRun(api.JobFailed, ptr(3), "exit status 3")),
			deployer.Action{Kind: deployer.Fail, Restore: true, Note: "release phase failed: exit status 3", Job: "hello-v2-release"}},
		{"release phase timeout cancels it", fx(api.StrategyOneByOne, web(3), web(3)).with(withRelease).with(timeout30s).with(releaseRun(api.JobRunning, nil, "")),
			deployer.Action{Kind: deployer.Fail, Restore: true, CancelRelease: true,
				Note: "release phase did not finish within 30s (job hello-v2-release running)"}},
		{"release phase only completes", fx(api.StrategyOneByOne, nil, map[string]int{api.ReleaseProcess: 1}).with(firstDeploy).with(withRelease).
			with(releaseRun(api.JobComplete, ptr(0), "")),
			deployer.Action{Kind: deployer.Complete, New: map[string]int{}}},
		{"release result expired after rollout began", fx(api.StrategyOneByOne, web(3), web(3)).with(withRelease).newF(web(1)).ready("web", 1).
			with(func(f *fixture) { f.v.Deployment.ReleaseJob = "hello-v2-release" }),
			deployer.Action{Kind: deployer.Scale, New: web(2), Old: web(2)}},
		{"release result vanished before rollout", fx(api.StrategyOneByOne, web(3), web(3)).with(withRelease).
			with(func(f *fixture) { f.v.Deployment.ReleaseJob = "hello-v2-release" }),
			deployer.Action{Kind: deployer.Fail, Restore: true, Note: "release phase job hello-v2-release vanished before reporting a result"}},

		// Process types that are not counted jobs.
		{"cron switches at once", fx(api.StrategyOneByOne, map[string]int{"tick": 1}, map[string]int{"tick": 1}).with(func(f *fixture) {
			f.v.Release.Processes["tick"] = api.ProcessType{Args: []string{"tick"}, Schedule: "@hourly"}
		}), deployer.Action{Kind: deployer.Complete, New: map[string]int{"tick": 1}}},
		{"cron waits for nothing beside a web rollout", fx(api.StrategyOneByOne, map[string]int{"tick": 1, "web": 1}, map[string]int{"tick": 1, "web": 1}).with(func(f *fixture) {
			f.v.Release.Processes["tick"] = api.ProcessType{Args: []string{"tick"}, Schedule: "@hourly"}
		}), deployer.Action{Kind: deployer.Scale, New: map[string]int{"tick": 1, "web": 1}, Old: map[string]int{"tick": 0, "web": 1}}},
		{"omni waits for every new job", fx(api.StrategyOneByOne, map[string]int{"agent": 1}, map[string]int{"agent": 1}).with(omni).
			newF(map[string]int{"agent": 1}).ready("agent", 1).jobs("agent", 1, api.JobStarting, nil, ""),
			deployer.Action{Kind: deployer.Wait}},
		{"omni completes when all serve", fx(api.StrategyOneByOne, map[string]int{"agent": 1}, map[string]int{"agent": 1}).with(omni).
			newF(map[string]int{"agent": 1}).ready("agent", 2),
			deployer.Action{Kind: deployer.Complete}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := deployer.Decide(&tt.f.v, tt.f.now)
			note := got.Note
			if tt.want.Note == "" {
				got.Note = ""
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got  %+v (note %q)\nwant %+v", got, note, tt.want)
			}
		})
	}
}

func firstDeploy(f *fixture) {
	f.v.Deployment.OldRelease, f.v.Deployment.OldProcesses, f.v.Old = "", nil, nil
	f.v.App.Release = ""
}

func timeout30s(f *fixture) {
	f.v.Deployment.Strategy.Timeout = api.Duration(30 * time.Second)
	f.now = t0.Add(31 * time.Second)
}

func omni(f *fixture) {
	f.v.Release.Processes["agent"] = api.ProcessType{Args: []string{"agent"}, Omni: true}
}

func releaseRun(state api.JobState, code *int, errMsg string) func(*fixture) {
	return func(f *fixture) {
		f.v.Deployment.ReleaseJob = "hello-v2-release"
		f.v.ReleaseRun = deployer.ReleaseRun{Requested: true,
			Status: &api.JobStatus{ID: "hello-v2-release", State: state, ExitCode: code, Error: errMsg}}
	}
}

// TestDecideOneByOneSequence replays a whole one-by-one deployment through
// Decide, each new job turning ready as soon as it is asked for, and checks
// that the new formation steps by one and capacity never drops below the
// target nor exceeds it by more than the step.
func TestDecideOneByOneSequence(t *testing.T) {
	for _, tc := range []struct {
		kind        string
		old, target int
		step        int
	}{{api.StrategyOneByOne, 3, 3, 1}, {api.StrategyBatch, 5, 5, 2}, {api.StrategyOneByOne, 2, 4, 1}, {api.StrategyBatch, 4, 1, 2}} {
		t.Run(fmt.Sprintf("%s-%d-to-%d", tc.kind, tc.old, tc.target), func(t *testing.T) {
			f := fx(tc.kind, web(tc.old), web(tc.target))
			var seq []int
			for range 20 {
				a := deployer.Decide(&f.v, f.now)
				switch a.Kind {
				case deployer.Complete:
					if got := f.v.New.Processes["web"]; got != tc.target {
						t.Fatalf("complete at %d, want %d", got, tc.target)
					}
					t.Logf("new formation: %v", seq)
					return
				case deployer.Scale:
				default:
					t.Fatalf("unexpected %v: %s", a.Kind, a.Note)
				}
				if a.Old != nil {
					f.oldF(a.Old)
				}
				if a.New != nil {
					prev := 0
					if f.v.New != nil {
						prev = f.v.New.Processes["web"]
					}
					if n := a.New["web"]; n-prev > tc.step || n < prev {
						t.Fatalf("new formation went %d -> %d, step %d", prev, n, tc.step)
					}
					seq = append(seq, a.New["web"])
					f.newF(a.New)
				}
				newN, oldN := f.v.New.Processes["web"], f.v.Old.Processes["web"]
				if newN+oldN > max(tc.old, tc.target)+tc.step {
					t.Fatalf("new %d + old %d exceeds target + step", newN, oldN)
				}
				// Ready capacity: old jobs still wanted plus ready new ones.
				if readyNew := len(f.v.Jobs); oldN+readyNew < min(tc.old, tc.target) {
					t.Fatalf("old %d + ready new %d below %d", oldN, readyNew, min(tc.old, tc.target))
				}
				f.v.Jobs = nil
				f.ready("web", newN)
			}
			t.Fatal("no completion in 20 steps")
		})
	}
}

func TestReleaseJobID(t *testing.T) {
	if got := deployer.ReleaseJobID("hello-v2"); got != "hello-v2-release" {
		t.Fatalf("got %q", got)
	}
	long1 := strings.Repeat("a", 55) + "-v12345"
	long2 := strings.Repeat("a", 55) + "-v12346"
	a, b := deployer.ReleaseJobID(long1), deployer.ReleaseJobID(long2)
	if !api.ValidID(a) || !api.ValidID(b) || a == b || a != deployer.ReleaseJobID(long1) {
		t.Fatalf("long ids: %q %q", a, b)
	}
}

func TestReady(t *testing.T) {
	plain := &api.Job{}
	running := func(h *bool) *api.JobStatus { return &api.JobStatus{State: api.JobRunning, Healthy: h} }
	for _, tc := range []struct {
		name string
		job  *api.Job
		st   *api.JobStatus
		want bool
	}{
		{"no status", plain, nil, false},
		{"starting", plain, &api.JobStatus{State: api.JobStarting}, false},
		{"running, nothing checked", plain, running(nil), true},
		{"running, checked, no verdict", &api.Job{Ports: checked.Ports}, running(nil), false},
		{"running, service port, no verdict", &api.Job{Ports: []api.Port{{Proto: "http", Service: "web.hello"}}}, running(nil), false},
		{"healthy", &api.Job{Ports: checked.Ports}, running(ptr(true)), true},
		{"unhealthy", &api.Job{Ports: checked.Ports}, running(ptr(false)), false},
	} {
		if got := deployer.Ready(tc.job, tc.st); got != tc.want {
			t.Errorf("%s: got %v", tc.name, got)
		}
	}
}
