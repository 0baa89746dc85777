package agent

import (
	"context"
	"net/http"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/host/shim"
	"github.com/pierpaas/pier/logs"
)

// shipLogs sends the output of the jobs of apps on this host to the
// active log aggregator (package logs), found through discovery and
// reached with the host's certificate. It only reads the files the jobs'
// shims write, so nothing it does can hold a job up.
func (a *Agent) shipLogs(ctx context.Context) {
	loc := logs.NewLocator(a.reg, a.cfg.Log)
	go loc.Run(ctx)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = a.Creds.ClientConfig()
	tr.ForceAttemptHTTP2 = true
	defer tr.CloseIdleConnections()
	s := logs.NewShipper(logs.ShipperConfig{
		Host: a.cfg.ID, Jobs: a.shipJobs, Done: a.jobDone, Leader: loc.Leader,
		Client: &http.Client{Transport: tr}, Log: a.cfg.Log, Registry: a.Metrics,
	})
	s.Run(ctx)
}

// shipJobs lists the jobs whose output is shipped: those of apps (ad-hoc
// jobs of `pier host run` belong to none) that the host still keeps.
// Build jobs are left out: their output goes to the push and is kept with
// the build (pier builds:output), and hundreds of compile lines would
// push the app's own out of its log ring.
func (a *Agent) shipJobs() []logs.ShipJob {
	jobs, _ := a.knownJobs()
	out := make([]logs.ShipJob, 0, len(jobs))
	for _, hj := range jobs {
		j := &hj.Job
		if j.App == "" || api.IsBuildCommand(j.Args) {
			continue
		}
		out = append(out, logs.ShipJob{ID: j.ID, App: j.App, Release: j.Release, ProcessType: j.ProcessType,
			Dir: shim.LogDir(a.jobDir(j.ID))})
	}
	return out
}
