package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/client"
	"github.com/pierpaas/pier/internal/pki"
	"github.com/pierpaas/pier/runtime/fake"
	"github.com/pierpaas/pier/store"
	"github.com/pierpaas/pier/store/storetest"
)

// apiHost is a host with the fake runtime whose certificate names
// 127.0.0.1, as a join would issue it, so clients can verify the agent.
func apiHost(t *testing.T, c *storetest.Cluster, id string) (Config, *fake.Runtime) {
	t.Helper()
	cfg := testHost(t, c, id)
	err := c.CA.Issue(filepath.Join(cfg.DataDir, "pki"), pki.Request{CommonName: id, Role: pki.RoleHost, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	rt := fake.New()
	cfg.RuntimeImpl = rt
	return cfg, rt
}

// hostClient is a client with a client certificate of the cluster.
func hostClient(t *testing.T, c *storetest.Cluster, a *Agent) *client.HostClient {
	hc := client.NewHostClientTLS(a.APIAddr(), c.Credentials().ClientConfig())
	t.Cleanup(hc.Close)
	return hc
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func isAPIError(err error, status int, code string) bool {
	var e *api.Error
	return errors.As(err, &e) && e.Status == status && e.Code == code
}

// rawRequest makes a request with a given TLS config and returns the status
// and the decoded error body, if any.
func rawRequest(t *testing.T, cfg *tls.Config, method, url string, body io.Reader) (int, api.Error, error) {
	t.Helper()
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	defer hc.CloseIdleConnections()
	req, _ := http.NewRequest(method, url, body)
	resp, err := hc.Do(req)
	if err != nil {
		return 0, api.Error{}, err
	}
	defer resp.Body.Close()
	var e api.Error
	b, _ := io.ReadAll(resp.Body)
	json.Unmarshal(b, &e)
	return resp.StatusCode, e, nil
}

func TestAPIRequiresClusterCertificate(t *testing.T) {
	c := storetest.NewCluster(t, 1)
	cfg, _ := apiHost(t, c, "h1")
	a := startAgent(t, cfg)
	putJob(t, c, api.Job{ID: "web-1", HostID: "h1", Args: []string{"serve"}})
	waitStatus(t, c, "web-1", inState(api.JobRunning))
	base := "https://" + a.APIAddr()
	creds := c.Credentials()
	noCert := &tls.Config{RootCAs: creds.Pool}

	endpoints := []struct{ method, path string }{
		{"GET", "/v1/status"}, {"GET", "/v1/jobs"}, {"POST", "/v1/jobs"}, {"GET", "/v1/jobs/web-1"},
		{"POST", "/v1/jobs/web-1/stop"}, {"POST", "/v1/jobs/web-1/signal?signal=1"},
		{"GET", "/v1/jobs/web-1/logs?follow=true"}, {"GET", "/v1/jobs/web-1/attach"}, {"GET", "/metrics"}, {"GET", "/no/such/thing"},
	}
	for _, ep := range endpoints {
		code, e, err := rawRequest(t, noCert, ep.method, base+ep.path, strings.NewReader(`{"args":["x"]}`))
		if err != nil || code != http.StatusUnauthorized || e.Code != api.ErrCodeUnauthenticated || e.Message == "" {
			t.Errorf("%s %s without a certificate: %d %+v %v", ep.method, ep.path, code, e, err)
		}
	}
	for _, p := range []string{"/livez", "/readyz"} {
		if code, _, err := rawRequest(t, noCert, "GET", base+p, nil); err != nil || code != http.StatusOK {
			t.Errorf("%s without a certificate: %d %v", p, code, err)
		}
	}

	// A certificate of another CA is refused in the handshake or with 401.
	other, err := pki.NewCA("other")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "other")
	if err := other.Issue(dir, pki.Request{CommonName: "intruder", Role: pki.RoleHost}); err != nil {
		t.Fatal(err)
	}
	foreign, err := pki.LoadCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	fcfg := foreign.ClientConfig()
	fcfg.RootCAs = creds.Pool // trust the agent, present the foreign cert
	for _, ep := range endpoints {
		code, _, err := rawRequest(t, fcfg, ep.method, base+ep.path, nil)
		if err == nil && code != http.StatusUnauthorized {
			t.Errorf("%s %s with a foreign certificate: %d", ep.method, ep.path, code)
		}
	}

	// Nothing was stopped or signalled.
	st := waitStatus(t, c, "web-1", func(api.JobStatus) bool { return true })
	if st.State != api.JobRunning {
		t.Fatalf("unauthenticated requests changed the job: %+v", st)
	}
	jobs, _, _ := store.List[api.Job](context.Background(), c.Client(), store.JobsPrefix)
	if len(jobs) != 1 {
		t.Fatalf("unauthenticated run created a job: %d jobs", len(jobs))
	}

	// With the cluster's certificate, metrics are served.
	code, _, err := rawRequest(t, creds.ClientConfig(), "GET", base+"/metrics", nil)
	if err != nil || code != http.StatusOK {
		t.Fatalf("metrics: %d %v", code, err)
	}
}

func TestAPIListInspectSignalStop(t *testing.T) {
	c := storetest.NewCluster(t, 1)
	cfg, rt := apiHost(t, c, "h1")
	cfg.Version = "test-1"
	a := startAgent(t, cfg)
	hc := hostClient(t, c, a)
	ctx := ctxT(t)

	putJob(t, c, api.Job{ID: "web-1", HostID: "h1", Args: []string{"serve"}, Ports: []api.Port{{Proto: "http"}},
		Resources: api.Resources{MemoryMB: 128, CPUMillis: 500}, StopGrace: api.Duration(5 * time.Second)})
	running := waitStatus(t, c, "web-1", inState(api.JobRunning))

	jobs, err := hc.Jobs(ctx)
	if err != nil || len(jobs) != 1 {
		t.Fatalf("jobs %+v %v", jobs, err)
	}
	hj := jobs[0]
	if hj.Job.ID != "web-1" || !hj.Supervised || !hj.Assigned || hj.Status == nil || hj.StatusFrom != "store" ||
		hj.Status.State != api.JobRunning || hj.Status.PID != running.PID || !slices.Equal(hj.Status.HostPorts, running.HostPorts) {
		t.Fatalf("listed %+v status %+v", hj, hj.Status)
	}
	if one, err := hc.Job(ctx, "web-1"); err != nil || one.Job.ID != "web-1" || one.Status.PID != running.PID {
		t.Fatalf("inspect %+v %v", one, err)
	}
	for _, id := range []string{"nosuch", "Bad..ID", "a%2Fb"} {
		if _, err := hc.Job(ctx, id); !isAPIError(err, http.StatusNotFound, api.ErrCodeNotFound) {
			t.Errorf("inspect %q: %v", id, err)
		}
	}

	st, err := hc.Status(ctx)
	if err != nil || st.ID != "h1" || st.Jobs != 1 || st.Supervised != 1 || st.UsedMemoryMB != 128 ||
		st.UsedCPUMillis != 500 || st.Version != "test-1" || st.MemoryMB == 0 || st.StartedAt.IsZero() {
		t.Fatalf("status %+v %v", st, err)
	}

	// Signals go to the job through its shim.
	if err := hc.Signal(ctx, "web-1", syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	if sigs := rt.Signals("web-1"); !slices.Contains(sigs, syscall.SIGUSR1) {
		t.Fatalf("signals %v", sigs)
	}
	code, e, _ := rawRequest(t, c.Credentials().ClientConfig(), "POST", "https://"+a.APIAddr()+"/v1/jobs/web-1/signal?signal=0", nil)
	if code != http.StatusBadRequest || e.Code != api.ErrCodeBadRequest {
		t.Fatalf("signal 0: %d %+v", code, e)
	}
	if err := hc.Signal(ctx, "nosuch", syscall.SIGUSR1); !isAPIError(err, http.StatusNotFound, api.ErrCodeNotFound) {
		t.Fatalf("signal of an unknown job: %v", err)
	}

	// Stop: SIGTERM, the job ends shutdown, its record is left alone.
	if _, err := hc.Stop(ctx, "web-1"); err != nil {
		t.Fatal(err)
	}
	done, err := hc.WaitJob(ctx, "web-1")
	if err != nil || done.Status.State != api.JobShutdown {
		t.Fatalf("after stop %+v %v", done, err)
	}
	// The worker lets go of the job just after it records the end.
	for deadline := time.Now().Add(10 * time.Second); done.Supervised; {
		if time.Now().After(deadline) {
			t.Fatalf("still supervised 10 s after it ended: %+v", done)
		}
		time.Sleep(20 * time.Millisecond)
		if done, err = hc.Job(ctx, "web-1"); err != nil {
			t.Fatal(err)
		}
	}
	if sigs := rt.Signals("web-1"); !slices.Contains(sigs, syscall.SIGTERM) {
		t.Fatalf("signals %v", sigs)
	}
	key, _ := store.Key(store.JobsPrefix, "h1", "web-1")
	rec, _, err := store.Get[api.Job](ctx, c.Client(), key)
	if err != nil || rec.Desired != api.DesiredRunning {
		t.Fatalf("record after stop %+v %v", rec, err)
	}
	// It is not started again, and cannot be stopped or signalled twice.
	time.Sleep(300 * time.Millisecond)
	if slices.Contains(rt.Running(), "web-1") {
		t.Fatal("stopped job restarted")
	}
	if _, err := hc.Stop(ctx, "web-1"); !isAPIError(err, http.StatusConflict, api.ErrCodeConflict) {
		t.Fatalf("second stop: %v", err)
	}
	if err := hc.Signal(ctx, "web-1", syscall.SIGUSR1); !isAPIError(err, http.StatusConflict, api.ErrCodeConflict) {
		t.Fatalf("signal of an ended job: %v", err)
	}
}

func TestAPILogs(t *testing.T) {
	c := storetest.NewCluster(t, 1)
	cfg, rt := apiHost(t, c, "h1")
	a := startAgent(t, cfg)
	hc := hostClient(t, c, a)
	ctx := ctxT(t)

	putJob(t, c, api.Job{ID: "chatty", HostID: "h1", Args: []string{"x"}})
	waitStatus(t, c, "chatty", inState(api.JobRunning))
	rt.Write("chatty", "one\ntwo\n", "oops\n")

	collect := func(follow bool, lines int) []api.LogLine {
		var got []api.LogLine
		if err := hc.Logs(ctx, "chatty", follow, lines, func(l api.LogLine) error {
			got = append(got, l)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	var all []api.LogLine
	for deadline := time.Now().Add(10 * time.Second); len(all) < 3 && time.Now().Before(deadline); {
		all = collect(false, -1)
		time.Sleep(20 * time.Millisecond)
	}
	if len(all) != 3 || all[2].Seq != 3 || texts(all) != "one two oops" {
		t.Fatalf("all lines %+v", all)
	}
	if all[0].Stream != "stdout" || all[2].Stream != "stderr" || all[0].Time.IsZero() {
		t.Fatalf("lines %+v", all)
	}
	if tail := collect(false, 1); len(tail) != 1 || tail[0].Seq != 3 {
		t.Fatalf("tail %+v", tail)
	}
	if none := collect(false, 0); len(none) != 0 {
		t.Fatalf("no lines asked, got %+v", none)
	}
	var from []api.LogLine
	hc.LogsFrom(ctx, "chatty", 2, false, func(l api.LogLine) error { from = append(from, l); return nil })
	if len(from) != 2 || from[0].Seq != 2 {
		t.Fatalf("from 2: %+v", from)
	}

	// Follow from the last line: new lines stream as they come, and the
	// stream ends once the job has ended and all its output is sent.
	var mu sync.Mutex
	var followed []api.LogLine
	seen := make(chan struct{}, 10)
	followErr := make(chan error, 1)
	go func() {
		followErr <- hc.Logs(ctx, "chatty", true, 1, func(l api.LogLine) error {
			mu.Lock()
			followed = append(followed, l)
			mu.Unlock()
			seen <- struct{}{}
			return nil
		})
	}()
	<-seen // the tail line
	rt.Write("chatty", "three\n", "")
	select {
	case <-seen: // streamed while the job runs
	case <-time.After(10 * time.Second):
		t.Fatal("a new line was not streamed")
	}
	rt.Write("chatty", "four\nfive\n", "")
	rt.Exit("chatty", 0)
	select {
	case err := <-followErr:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("following did not end with the job")
	}
	mu.Lock()
	defer mu.Unlock()
	if texts(followed) != "oops three four five" {
		t.Fatalf("followed %+v", followed)
	}

	// Unknown jobs and bad parameters.
	if err := hc.Logs(ctx, "nosuch", false, -1, func(api.LogLine) error { return nil }); !isAPIError(err, http.StatusNotFound, api.ErrCodeNotFound) {
		t.Fatalf("logs of an unknown job: %v", err)
	}
	for _, q := range []string{"lines=-2", "lines=x", "follow=maybe", "lines=1&from=2"} {
		code, e, _ := rawRequest(t, c.Credentials().ClientConfig(), "GET", "https://"+a.APIAddr()+"/v1/jobs/chatty/logs?"+q, nil)
		if code != http.StatusBadRequest || e.Code != api.ErrCodeBadRequest {
			t.Errorf("logs?%s: %d %+v", q, code, e)
		}
	}
}

// TestAPILogsFollowEndsWhenClientGoes: a follower that hangs up frees its
// handler (the agent's Close would wait for it otherwise).
func TestAPILogsFollowEndsWhenClientGoes(t *testing.T) {
	c := storetest.NewCluster(t, 1)
	cfg, _ := apiHost(t, c, "h1")
	a := startAgent(t, cfg)
	hc := hostClient(t, c, a)
	putJob(t, c, api.Job{ID: "quiet", HostID: "h1", Args: []string{"x"}})
	waitStatus(t, c, "quiet", inState(api.JobRunning))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- hc.Logs(ctx, "quiet", true, -1, func(api.LogLine) error { return nil }) }()
	time.Sleep(300 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("follow ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("follow did not end with its context")
	}
	closed := make(chan struct{})
	go func() { a.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("agent Close hangs on a log handler")
	}
}

func TestAPIRun(t *testing.T) {
	c := storetest.NewCluster(t, 1)
	cfg, rt := apiHost(t, c, "h1")
	a := startAgent(t, cfg)
	hc := hostClient(t, c, a)
	ctx := ctxT(t)

	job, err := hc.Run(ctx, api.RunJobRequest{Args: []string{"sh", "-c", "work"}, Env: map[string]string{"GREETING": "hi"}, MemoryMB: 64, CPUMillis: 250})
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^run-[0-9a-f]{10}$`).MatchString(job.ID) || job.HostID != "h1" || job.Desired != api.DesiredRunning {
		t.Fatalf("job %+v", job)
	}
	key, _ := store.Key(store.JobsPrefix, "h1", job.ID)
	rec, _, err := store.Get[api.Job](ctx, c.Client(), key)
	if err != nil || rec.ID != job.ID || rec.Resources.MemoryMB != 64 || rec.Resources.CPUMillis != 250 {
		t.Fatalf("record %+v %v", rec, err)
	}
	if _, err := rt.WaitStarted(ctx, job.ID); err != nil {
		t.Fatal(err)
	}
	spec, _ := rt.Spec(job.ID)
	if !contains(spec.Env, "GREETING=hi") || spec.Limits.MemoryMB != 64 || spec.Limits.CPUMillis != 250 || !slices.Equal(spec.Args, job.Args) {
		t.Fatalf("spec %+v", spec)
	}

	// Its output and exit come through the API, as `pier host run` reads them.
	var lines []string
	followed := make(chan error, 1)
	go func() {
		followed <- hc.Logs(ctx, job.ID, true, -1, func(l api.LogLine) error {
			lines = append(lines, l.Text)
			return nil
		})
	}()
	rt.Write(job.ID, "hi\n", "")
	rt.Exit(job.ID, 3)
	if err := <-followed; err != nil || strings.Join(lines, ",") != "hi" {
		t.Fatalf("logs %q %v", lines, err)
	}
	hj, err := hc.WaitJob(ctx, job.ID)
	if err != nil || hj.Status.State != api.JobFailed || hj.Status.ExitCode == nil || *hj.Status.ExitCode != 3 {
		t.Fatalf("final %+v %v", hj.Status, err)
	}

	// Bad requests.
	if _, err := hc.Run(ctx, api.RunJobRequest{}); !isAPIError(err, http.StatusBadRequest, api.ErrCodeBadRequest) {
		t.Fatalf("run without a command: %v", err)
	}
	if _, err := hc.Run(ctx, api.RunJobRequest{Args: []string{"x"}, Env: map[string]string{"1BAD": "x"}}); !isAPIError(err, http.StatusBadRequest, api.ErrCodeBadRequest) {
		t.Fatalf("run with a bad env name: %v", err)
	}
	if _, err := hc.Run(ctx, api.RunJobRequest{Args: []string{"x"}, MemoryMB: -1}); !isAPIError(err, http.StatusBadRequest, api.ErrCodeBadRequest) {
		t.Fatalf("run with negative memory: %v", err)
	}
	cc := c.Credentials().ClientConfig()
	url := "https://" + a.APIAddr() + "/v1/jobs"
	for body, want := range map[string]int{
		`{"args":["x"],"nosuchfield":1}`: http.StatusBadRequest,
		`{"args":`:                       http.StatusBadRequest,
		`{"args":["` + strings.Repeat("a", 2<<20) + `"]}`: http.StatusRequestEntityTooLarge,
	} {
		code, e, err := rawRequest(t, cc, "POST", url, bytes.NewReader([]byte(body)))
		if code != want || e.Code == "" || e.Message == "" {
			t.Errorf("run with body %.40q: %d %+v %v", body, code, e, err)
		}
	}
	jobs, _, _ := store.List[api.Job](ctx, c.Client(), store.JobsPrefix)
	if len(jobs) != 1 {
		t.Fatalf("bad requests created jobs: %d", len(jobs))
	}
}

func texts(lines []api.LogLine) string {
	var s []string
	for _, l := range lines {
		s = append(s, l.Text)
	}
	return strings.Join(s, " ")
}
