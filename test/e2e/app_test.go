package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/client"
	"github.com/pierpaas/pier/internal/procfile"
	"github.com/pierpaas/pier/internal/tarball"
	"github.com/pierpaas/pier/store"
)

// webCommand serves examples/hello from a copy in /tmp that also holds
// /whoami, the answering job's and host's ids, so that the load can tell
// which job answered each request (a replacement or the original).
//
// It is `python3 -m http.server $PORT` with a SIGTERM handler: python
// is PID 1 of the container, and the kernel drops signals PID 1 has no
// handler for, so plain http.server ignores a stop's SIGTERM and is
// killed only when the grace period (10 s) ends, which would slow every
// stop, deploy and stale-job cleanup the scenarios measure.
const webCommand = `mkdir -p /tmp/www && cp -r /app/. /tmp/www/ && ` +
	`echo "$PIER_JOB_ID $PIER_HOST_ID" > /tmp/www/whoami && cd /tmp/www && ` +
	`exec python3 -c 'import runpy, signal, sys; signal.signal(signal.SIGTERM, lambda *a: sys.exit(0)); ` +
	`sys.argv = ["http.server", sys.argv[1]]; runpy.run_module("http.server", run_name="__main__")' $PORT`

// The slug: examples/hello packed as `pier deploy` packs it. Made once;
// the digest is the same for every app, so a host downloads it once.
var (
	slugOnce   sync.Once
	slug       []byte
	slugDigest string
	slugErr    error
)

func helloSlug() ([]byte, string, error) {
	slugOnce.Do(func() { slug, slugDigest, slugErr = packSlug("../../examples/hello") })
	return slug, slugDigest, slugErr
}

// ownSlug is examples/hello with a file naming app: a slug no host has
// fetched before.
func ownSlug(t *testing.T, app string) ([]byte, string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("../../examples/hello")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "slug-of"), []byte(app+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	body, digest, err := packSlug(dir)
	if err != nil {
		t.Fatal(err)
	}
	return body, digest
}

func packSlug(dir string) ([]byte, string, error) {
	var buf bytes.Buffer
	if _, err := tarball.Pack(context.Background(), dir, &buf, tarball.Options{}); err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(buf.Bytes())
	return buf.Bytes(), hex.EncodeToString(sum[:]), nil
}

func ctxT(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// release uploads the hello slug and makes a new release of app with
// env, on the controller ctl, and returns it with its deployment.
func (c *cluster) release(t *testing.T, ctl *client.Controller, app string, env map[string]string) api.ReleaseResult {
	t.Helper()
	body, digest, err := helloSlug()
	if err != nil {
		t.Fatal(err)
	}
	return c.releaseSlug(t, ctl, app, body, digest, env)
}

// releaseSlug is release with a given slug. The upload goes to ctl's
// server only: the servers copy it among themselves.
func (c *cluster) releaseSlug(t *testing.T, ctl *client.Controller, app string, body []byte, digest string, env map[string]string) api.ReleaseResult {
	t.Helper()
	ctx, cancel := ctxT(20 * time.Second)
	defer cancel()
	if err := ctl.PutBlob(ctx, digest, int64(len(body)), bytes.NewReader(body)); err != nil {
		t.Fatalf("upload the slug of %s: %v", app, err)
	}
	procs := procfile.ProcessTypes(app, procfile.Procfile{"web": webCommand})
	web := procs["web"]
	// Small jobs, so that scenario 5's nine fit on 2-core hosts, but
	// not so small that python's start is throttled: at 50 millicores
	// it took seconds, which every recovery time would include.
	web.Resources = api.Resources{CPUMillis: 250, MemoryMB: 64}
	procs["web"] = web
	res, err := ctl.CreateRelease(ctx, app, api.CreateReleaseRequest{
		Artifact:  &api.Artifact{Type: "slug", SHA256: digest, Size: int64(len(body))},
		Processes: procs,
		Env:       env,
	})
	if err != nil {
		t.Fatalf("release of %s: %v", app, err)
	}
	return res
}

// waitDeployment waits for a deployment to end, and fails unless it
// completed.
func waitDeployment(t *testing.T, ctl *client.Controller, d api.Deployment, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := ctxT(5 * time.Second)
		got, err := ctl.Deployment(ctx, d.App, d.ID)
		cancel()
		if err == nil && got.State.Done() {
			if got.State != api.DeployComplete {
				t.Fatalf("deployment of %s v%d: %s: %s", d.App, d.Version, got.State, got.Reason)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("deployment of %s v%d not done after %s (last: %+v, %v)", d.App, d.Version, timeout, got, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// deployWeb creates app, deploys examples/hello to it and scales web to
// n, then waits for n running jobs and for the routers to serve it. The
// app is destroyed when the test ends.
func (c *cluster) deployWeb(t *testing.T, app string, n int) []api.AppJob {
	t.Helper()
	c.createApp(t, app)
	return c.scaleAndWait(t, app, n)
}

// createApp creates app and deploys its first release (one web job),
// and waits for the routers to serve it.
func (c *cluster) createApp(t *testing.T, app string) {
	t.Helper()
	ctl, err := c.controller()
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	ctx, cancel := ctxT(20 * time.Second)
	_, err = ctl.CreateApp(ctx, api.CreateAppRequest{Name: app})
	cancel()
	if err != nil {
		t.Fatalf("create %s: %v", app, err)
	}
	t.Cleanup(func() { c.destroy(t, app) })
	res := c.release(t, ctl, app, nil)
	waitDeployment(t, ctl, res.Deployment, 60*time.Second)
	c.waitServed(t, app, 30*time.Second)
}

// scaleAndWait scales web to n and waits for n running jobs.
func (c *cluster) scaleAndWait(t *testing.T, app string, n int) []api.AppJob {
	t.Helper()
	ctl, err := c.controller()
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	c.scale(t, ctl, app, n)
	js := c.waitRunning(t, app, n, 60*time.Second)
	c.waitServed(t, app, 30*time.Second)
	// Running is not yet routed: a job is registered in discovery once
	// its health check passes. A scenario's fault must find every job
	// of the app in the routers' tables.
	c.waitInstances(t, app, n, 30*time.Second)
	return js
}

// waitInstances waits until discovery lists exactly n instances of the
// app's web service.
func (c *cluster) waitInstances(t *testing.T, app string, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := ctxT(5 * time.Second)
		resp, err := c.etcd.Get(ctx, store.ServicesPrefix+api.ServiceName(app, "web")+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		cancel()
		if err == nil && resp.Count == int64(n) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: discovery does not list %d instances after %s:\n%s", app, n, timeout, c.instances(app))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *cluster) scale(t *testing.T, ctl *client.Controller, app string, n int) {
	t.Helper()
	ctx, cancel := ctxT(20 * time.Second)
	defer cancel()
	if _, err := ctl.Scale(ctx, app, map[string]int{"web": n}); err != nil {
		t.Fatalf("scale %s web=%d: %v", app, n, err)
	}
}

// destroy deletes an app at the end of a scenario, so that the next
// one starts on empty hosts.
func (c *cluster) destroy(t *testing.T, app string) {
	ctl, err := c.controller()
	if err != nil {
		t.Logf("destroy %s: %v", app, err)
		return
	}
	defer ctl.Close()
	ctx, cancel := ctxT(20 * time.Second)
	defer cancel()
	if err := ctl.DeleteApp(ctx, app); err != nil {
		t.Logf("destroy %s: %v", app, err)
	}
}

// webJobs are the app's web jobs meant to run and running.
func webJobs(jl api.JobList) []api.AppJob {
	var out []api.AppJob
	for _, j := range jl.Jobs {
		if j.ProcessType == "web" && !j.OneOff && j.State == api.JobRunning && j.Desired == api.DesiredRunning {
			out = append(out, j)
		}
	}
	return out
}

func (c *cluster) jobs(app string) (api.JobList, error) {
	ctl, err := c.controller()
	if err != nil {
		return api.JobList{}, err
	}
	defer ctl.Close()
	ctx, cancel := ctxT(5 * time.Second)
	defer cancel()
	return ctl.Jobs(ctx, app)
}

// waitRunning waits until exactly n web jobs of app run, and returns them.
func (c *cluster) waitRunning(t *testing.T, app string, n int, timeout time.Duration) []api.AppJob {
	t.Helper()
	return c.waitJobs(t, app, fmt.Sprintf("%d running web jobs", n), timeout, func(js []api.AppJob) bool { return len(js) == n })
}

// waitJobs waits until the app's running web jobs satisfy cond.
func (c *cluster) waitJobs(t *testing.T, app, what string, timeout time.Duration, cond func([]api.AppJob) bool) []api.AppJob {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		jl, err := c.jobs(app)
		if err == nil {
			js := webJobs(jl)
			if cond(js) {
				return js
			}
			last = describeJobs(jl)
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %s after %s; last: %s", app, what, timeout, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func describeJobs(jl api.JobList) string {
	var parts []string
	for _, j := range jl.Jobs {
		parts = append(parts, fmt.Sprintf("%s@%s:%s/%s", j.ID, j.HostID, j.State, j.Desired))
	}
	for _, p := range jl.Pending {
		parts = append(parts, fmt.Sprintf("pending %+v", p))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// waitServed waits until every router serves the app.
func (c *cluster) waitServed(t *testing.T, app string, timeout time.Duration) {
	t.Helper()
	for _, r := range c.routers {
		b := &balancer{}
		b.add(routerAddr(r))
		l := &load{app: app, domain: c.domain, lb: b}
		deadline := time.Now().Add(timeout)
		for {
			s := l.once(context.Background(), insecure)
			if s.ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not served by %s after %s: %s", app, r.name, timeout, s.err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func hostsOf(js []api.AppJob) []string {
	var out []string
	for _, j := range js {
		out = append(out, j.HostID)
	}
	sort.Strings(out)
	return out
}

func jobIDs(js []api.AppJob) []string {
	var out []string
	for _, j := range js {
		out = append(out, j.ID)
	}
	sort.Strings(out)
	return out
}
