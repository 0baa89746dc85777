package controller

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"sort"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/controller/deployer"
	"github.com/pierpaas/pier/discovery"
	"github.com/pierpaas/pier/logs"
	"github.com/pierpaas/pier/scheduler"
	"github.com/pierpaas/pier/store"
)

// The parts of GET /v1/status beyond the store, the servers and the
// hosts: the leaders of the leader-elected loops, deployments that
// failed or hang, process types that keep crashing, and certificates
// about to expire. Each reads one prefix; a part that cannot be read
// says so as a problem rather than failing the whole answer.

const (
	// crashLoopRestarts is how many restarts make a process type
	// crash-looping when its newest job is not running either.
	crashLoopRestarts = 3
	// slowDeployment is how long a deployment may run before it is
	// worth a look.
	slowDeployment = 15 * time.Minute
	// certWarning is how close to its end a certificate is worth a look.
	certWarning = 14 * 24 * time.Hour
)

// leaders names the server leading each leader-elected loop ("" when
// none does).
func (c *Controller) leaders(ctx context.Context) map[string]string {
	out := map[string]string{}
	for name, prefix := range map[string]string{"scheduler": scheduler.ElectionPrefix, "deployer": deployer.ElectionPrefix} {
		// concurrency.Election: the key created first leads.
		resp, err := c.Client.Get(ctx, prefix, append(clientv3.WithFirstCreate(), clientv3.WithPrefix())...)
		if err == nil && len(resp.Kvs) > 0 {
			out[name] = string(resp.Kvs[0].Value)
		} else {
			out[name] = ""
		}
	}
	// The log aggregator that is active is the oldest registered.
	out["logs"] = ""
	if insts, err := discovery.New(c.Client).Instances(ctx, logs.Service); err == nil && len(insts) > 0 {
		out["logs"] = insts[0].ID
	}
	return out
}

// deploymentsToLookAt are the deployments that failed within the last
// hour, and those running for longer than slowDeployment.
func (c *Controller) deploymentsToLookAt(ctx context.Context, now time.Time) ([]api.DeploymentHealth, error) {
	items, _, err := store.List[api.Deployment](ctx, c.Client, store.DeploymentsPrefix)
	if err != nil {
		return nil, err
	}
	var out []api.DeploymentHealth
	for _, it := range items {
		d := it.Value
		failed := d.State == api.DeployFailed && now.Sub(d.UpdatedAt) < time.Hour
		slow := !d.State.Done() && now.Sub(d.CreatedAt) > slowDeployment
		if failed || slow {
			out = append(out, api.DeploymentHealth{ID: d.ID, App: d.App, Version: d.Version, State: d.State, Reason: d.Reason, Since: d.CreatedAt})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Since.After(out[j].Since) })
	return out, nil
}

// crashing lists the process types whose newest service job has been
// restarted crashLoopRestarts times or more and is not running: what
// Heroku calls a crashed dyno.
func (c *Controller) crashing(ctx context.Context) []api.CrashingProcess {
	newest := map[[2]string]api.Job{}
	for _, it := range c.jobs.List() {
		j := it.Value
		if j.Scheduler == scheduler.OneOffScheduler || j.Scheduler == scheduler.CronScheduler || j.Desired != api.DesiredRunning {
			continue
		}
		k := [2]string{j.App, j.ProcessType}
		if cur, ok := newest[k]; !ok || j.Restarts > cur.Restarts {
			newest[k] = j
		}
	}
	var out []api.CrashingProcess
	for k, j := range newest {
		if j.Restarts < crashLoopRestarts {
			continue
		}
		st, _, err := store.Get[api.JobStatus](ctx, c.Client, store.JobStatusPrefix+j.ID)
		if err == nil && st.State == api.JobRunning {
			continue
		}
		out = append(out, api.CrashingProcess{App: k[0], ProcessType: k[1], Job: j.ID, Restarts: j.Restarts, State: st.State, Error: st.Error})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].App+out[i].ProcessType < out[j].App+out[j].ProcessType })
	return out
}

// certificatesToLookAt are the routes' own certificates that end within
// certWarning (ACME certificates are renewed by the routers themselves).
func (c *Controller) certificatesToLookAt(ctx context.Context, now time.Time) ([]api.CertificateHealth, error) {
	routes, _, err := store.List[api.Route](ctx, c.Client, store.RoutesPrefix)
	if err != nil {
		return nil, err
	}
	var out []api.CertificateHealth
	for _, it := range routes {
		r := it.Value
		if r.TLS == nil {
			continue
		}
		block, _ := pem.Decode([]byte(r.TLS.CertPEM))
		if block == nil {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil || cert.NotAfter.Sub(now) > certWarning {
			continue
		}
		out = append(out, api.CertificateHealth{Route: r.ID, Service: r.Service, Domain: r.Domain, NotAfter: cert.NotAfter})
	}
	return out, nil
}

// moreProblems adds the sentences of the parts above.
func moreProblems(st api.ClusterStatus, now time.Time) []string {
	var out []string
	for _, name := range []string{"scheduler", "deployer", "logs"} {
		if st.Leaders[name] == "" {
			what := map[string]string{"scheduler": "no scheduler leads: nothing is placed", "deployer": "no deployer leads: releases are not rolled out",
				"logs": "no log aggregator is active: logs are kept on the hosts until one is"}[name]
			out = append(out, what)
		}
	}
	for _, s := range st.Servers {
		if s.MissingBlobs > 0 {
			out = append(out, fmt.Sprintf("server %s lacks %d kept artifacts that no live server has", s.Name, s.MissingBlobs))
		}
	}
	for _, d := range st.Deployments {
		if d.State == api.DeployFailed {
			out = append(out, fmt.Sprintf("app %s: the deployment of v%d failed: %s", d.App, d.Version, d.Reason))
		} else {
			out = append(out, fmt.Sprintf("app %s: the deployment of v%d has been %s for %s", d.App, d.Version, d.State, now.Sub(d.Since).Round(time.Minute)))
		}
	}
	for _, p := range st.Crashing {
		why := p.Error
		if why == "" {
			why = string(p.State)
		}
		out = append(out, fmt.Sprintf("app %s: %s keeps crashing (%d restarts; %s)", p.App, p.ProcessType, p.Restarts, why))
	}
	for _, cert := range st.Certificates {
		verb := "expires"
		if cert.NotAfter.Before(now) {
			verb = "expired"
		}
		out = append(out, fmt.Sprintf("route %s (%s): its certificate %s on %s", cert.Route, cert.Domain, verb, cert.NotAfter.Format(time.DateOnly)))
	}
	return out
}
