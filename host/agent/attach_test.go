package agent

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/client"
	"github.com/pierpaas/pier/internal/pki"
	"github.com/pierpaas/pier/runtime"
	"github.com/pierpaas/pier/store"
	"github.com/pierpaas/pier/store/storetest"
)

// processHost is an API host whose in-process shims run real processes
// (the process driver), so stdin and terminals are real.
func processHost(t *testing.T, c *storetest.Cluster, id string) Config {
	t.Helper()
	cfg := testHost(t, c, id)
	err := c.CA.Issue(filepath.Join(cfg.DataDir, "pki"), pki.Request{CommonName: id, Role: pki.RoleHost, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	rt := runtime.NewProcess(cfg.Log)
	cfg.Runtime, cfg.RuntimeImpl = "process", rt
	// In-process shims outlive the agent, as real ones do: end their jobs.
	t.Cleanup(func() {
		ids, _ := rt.List()
		for _, id := range ids {
			rt.Delete(id)
		}
	})
	return cfg
}

func TestAPIAttachStdin(t *testing.T) {
	c := storetest.NewCluster(t, 1)
	a := startAgent(t, processHost(t, c, "h1"))
	hc := hostClient(t, c, a)
	ctx := ctxT(t)

	job, err := hc.Run(ctx, api.RunJobRequest{Args: []string{"sh", "-c", "cat; echo done >&2; exit 5"}, Stdin: true})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := store.Key(store.JobsPrefix, "h1", job.ID)
	if rec, _, err := store.Get[api.Job](ctx, c.Client(), key); err != nil || !rec.Stdin || rec.TTY {
		t.Fatalf("record %+v %v", rec, err)
	}
	// Attached at once, before the agent has even launched the job.
	ac, err := hc.Attach(ctx, job.ID, client.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()

	// One client at a time.
	if _, err := hc.Attach(ctx, job.ID, client.AttachOptions{}); !isAPIError(err, http.StatusConflict, api.ErrCodeConflict) {
		t.Fatalf("second attach: %v", err)
	}

	if _, err := io.WriteString(ac, "hello\nworld\n"); err != nil {
		t.Fatal(err)
	}
	if err := ac.CloseStdin(); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	ex, err := ac.Copy(&stdout, &stderr)
	if err != nil || ex.ExitCode != 5 || stdout.String() != "hello\nworld\n" || stderr.String() != "done\n" {
		t.Fatalf("copy: %+v %v, stdout %q stderr %q", ex, err, stdout.String(), stderr.String())
	}
	hj, err := hc.WaitJob(ctx, job.ID)
	if err != nil || hj.Status.State != api.JobFailed || *hj.Status.ExitCode != 5 {
		t.Fatalf("final %+v %v", hj.Status, err)
	}
	// What went through the attachment is in the log as well.
	var lines []string
	hc.Logs(ctx, job.ID, false, -1, func(l api.LogLine) error { lines = append(lines, l.Text); return nil })
	if got := strings.Join(lines, ","); !strings.Contains(got, "hello,world") || !strings.Contains(got, "done") {
		t.Fatalf("log %q", got)
	}

	// The job has ended: nothing to attach to.
	if _, err := hc.Attach(ctx, job.ID, client.AttachOptions{}); !isAPIError(err, http.StatusConflict, api.ErrCodeConflict) {
		t.Fatalf("attach to an ended job: %v", err)
	}
	if _, err := hc.Attach(ctx, "nosuch", client.AttachOptions{}); !isAPIError(err, http.StatusNotFound, api.ErrCodeNotFound) {
		t.Fatalf("attach to an unknown job: %v", err)
	}
}

func TestAPIAttachTTY(t *testing.T) {
	c := storetest.NewCluster(t, 1)
	a := startAgent(t, processHost(t, c, "h1"))
	hc := hostClient(t, c, a)
	ctx := ctxT(t)

	job, err := hc.Run(ctx, api.RunJobRequest{TTY: true, Args: []string{"sh", "-c", `stty size; read x; echo "got $x"; stty size; exit 2`}})
	if err != nil {
		t.Fatal(err)
	}
	ac, err := hc.Attach(ctx, job.ID, client.AttachOptions{Rows: 30, Cols: 90})
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	out := &syncBuf{}
	type result struct {
		ex  api.AttachExit
		err error
	}
	done := make(chan result, 1)
	go func() {
		ex, err := ac.Copy(out, nil)
		done <- result{ex, err}
	}()
	waitUntil(t, "the terminal's size", func() bool { return strings.Contains(out.String(), "30 90") })
	if err := ac.Resize(45, 132); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	io.WriteString(ac, "yes\r")
	var res result
	select {
	case res = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the job did not end")
	}
	if res.err != nil || res.ex.ExitCode != 2 || !strings.Contains(out.String(), "got yes\r\n45 132\r\n") {
		t.Fatalf("copy: %+v %v, output %q", res.ex, res.err, out.String())
	}
}

// TestAPIAttachRefusals: attach is authenticated like every endpoint and
// wants an upgrade.
func TestAPIAttachRefusals(t *testing.T) {
	c := storetest.NewCluster(t, 1)
	a := startAgent(t, processHost(t, c, "h1"))
	hc := hostClient(t, c, a)
	ctx := ctxT(t)
	job, err := hc.Run(ctx, api.RunJobRequest{Args: []string{"sleep", "30"}})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, c, job.ID, inState(api.JobRunning))

	upgrade := func(cfg *tls.Config, path string) int {
		cfg = cfg.Clone()
		cfg.NextProtos = []string{"http/1.1"}
		conn, err := tls.Dial("tcp", a.APIAddr(), cfg)
		if err != nil {
			return 0 // refused in the handshake
		}
		defer conn.Close()
		io.WriteString(conn, "GET "+path+" HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: pier-attach\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			return 0
		}
		return resp.StatusCode
	}
	creds := c.Credentials()
	if code := upgrade(&tls.Config{RootCAs: creds.Pool}, "/v1/jobs/"+job.ID+"/attach"); code != http.StatusUnauthorized {
		t.Fatalf("attach without a certificate: %d", code)
	}
	if code := upgrade(creds.ClientConfig(), "/v1/jobs/"+job.ID+"/attach?rows=x"); code != http.StatusBadRequest {
		t.Fatalf("attach with a bad size: %d", code)
	}
	// Not an upgrade: refused, over HTTP/1.1 and over HTTP/2, which has no
	// upgrades.
	code, e, err := rawRequest(t, creds.ClientConfig(), "GET", "https://"+a.APIAddr()+"/v1/jobs/"+job.ID+"/attach", nil)
	if err != nil || code != http.StatusBadRequest || e.Code != api.ErrCodeBadRequest {
		t.Fatalf("attach without an upgrade: %d %+v %v", code, e, err)
	}
	h2 := &http.Client{Transport: &http.Transport{TLSClientConfig: creds.ClientConfig(), ForceAttemptHTTP2: true}}
	defer h2.CloseIdleConnections()
	resp, err := h2.Get("https://" + a.APIAddr() + "/v1/jobs/" + job.ID + "/attach")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("attach over HTTP/2: %s %d", resp.Proto, resp.StatusCode)
	}

	// An attachment ends with the agent; the job does not.
	ac, err := hc.Attach(ctx, job.ID, client.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	copied := make(chan error, 1)
	go func() { _, err := ac.Copy(nil, nil); copied <- err }()
	closed := make(chan struct{})
	go func() { a.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("agent Close hangs on an attachment")
	}
	select {
	case err := <-copied:
		if !errors.Is(err, client.ErrAttachBroken) {
			t.Fatalf("copy after the agent stopped: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the attachment outlived the agent")
	}
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
