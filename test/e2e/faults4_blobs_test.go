package e2e

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/blobstore/replica"
	"github.com/pierpaas/pier/client"
	"github.com/pierpaas/pier/internal/cliconfig"
)

// Scenario 8: the server a slug was uploaded to is lost. Every server
// keeps a copy of each blob a kept release needs, so after a kill -9 of
// the server that took the upload (the one the release's artifact URL
// names), a scale onto hosts that never fetched the slug starts from the
// other servers' copies; and a client that knew only the killed server
// and the list of servers moves to another, through which a release of
// the same slug is made without uploading it again.
func TestUploadServerKill(t *testing.T) {
	c := getCluster(t)
	r := report(t, "8-upload-server-kill")
	const app = "uploadkill"
	ctx, cancel := ctxT(10 * time.Second)
	leader, err := c.etcdLeader(ctx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	// A follower: its loss costs no etcd election, which is another
	// scenario's subject.
	var target *node
	for _, s := range c.servers {
		if s != leader && s.running() {
			target = s
			break
		}
	}
	ctl, err := c.controllerOn(target)
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	ctx, cancel = ctxT(20 * time.Second)
	_, err = ctl.CreateApp(ctx, api.CreateAppRequest{Name: app})
	cancel()
	if err != nil {
		t.Fatalf("create %s: %v", app, err)
	}
	t.Cleanup(func() { c.destroy(t, app) })
	body, digest := ownSlug(t, app)
	res := c.releaseSlug(t, ctl, app, body, digest, nil)
	// How soon every server holds a copy.
	c0 := time.Now()
	waitFor(t, "a copy of the slug on every server", 30*time.Second, func() bool {
		for _, s := range c.servers {
			if !c.holdsBlob(s, digest) {
				return false
			}
		}
		return true
	})
	r.Extra["copied_everywhere_ms"] = ms(time.Since(c0))
	waitDeployment(t, ctl, res.Deployment, 60*time.Second)
	first := c.waitRunning(t, app, 1, 30*time.Second)[0]
	ctx, cancel = ctxT(10 * time.Second)
	servers, err := ctl.Servers(ctx)
	cancel()
	if err != nil || len(servers) != len(c.servers) {
		t.Fatalf("servers: %v %v", servers, err)
	}
	var others []string
	for _, s := range servers {
		if s.Name != target.name {
			others = append(others, s.URL)
		}
	}

	t0 := time.Now()
	target.kill()
	r.Extra["killed"] = target.name
	t.Cleanup(func() {
		// The cluster is shared with the next scenarios.
		if err := target.start(); err != nil {
			t.Error(err)
			return
		}
		if err := target.waitReady(60 * time.Second); err != nil {
			t.Error(err)
		}
	})
	jobs := c.scaleAndWait(t, app, 3)
	recovery := time.Since(t0)
	fresh := 0
	for _, j := range jobs {
		if j.HostID != first.HostID {
			fresh++
		}
	}
	if fresh == 0 {
		t.Fatalf("every job runs on %s, which had the slug: the scenario proves nothing", first.HostID)
	}
	r.Extra["jobs_on_hosts_without_the_slug"] = fresh
	r.setRecovery(recovery, "kill -9 of the server holding the upload to 3 jobs running, from the other servers' copies")

	// A client that knows the killed server, and the others from
	// GET /v1/servers, moves to one of them: what the CLI does.
	other, err := c.controllerOn(target, client.WithFallbacks(others...))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	var moved atomic.Value
	moved.Store("")
	other.OnMove(func(_, to string, _ error) { moved.Store(to) })
	ctx, cancel = ctxT(20 * time.Second)
	defer cancel()
	again, err := other.CreateRelease(ctx, app, api.CreateReleaseRequest{
		Artifact:  &api.Artifact{Type: "slug", SHA256: digest, Size: int64(len(body))},
		Processes: res.Release.Processes,
		Env:       map[string]string{"RELEASE": "2"},
	})
	if err != nil {
		t.Fatalf("release through another server without an upload: %v", err)
	}
	if moved.Load() == "" {
		t.Fatal("the client answered without moving off the killed server")
	}
	waitDeployment(t, other, again.Deployment, 60*time.Second)
	t.Logf("slug on every server %vms after its release; killed %s; 3 jobs (%d on hosts without the slug) after %s; v%d deployed through %s",
		r.Extra["copied_everywhere_ms"], target.name, fresh, recovery.Round(time.Millisecond), again.Release.Version, moved.Load())
}

// holdsBlob says whether server s's own blobstore has the blob (asked as
// a peer asks, so that s does not copy it from another to answer).
func (c *cluster) holdsBlob(s *node, digest string) bool {
	cl := cliconfig.Cluster{Name: "e2e", CAPEM: c.caPEM}
	tlsCfg, err := cl.TLSConfig()
	if err != nil {
		return false
	}
	req, err := http.NewRequest(http.MethodHead, "https://"+s.ip+":7300"+replica.Path+digest, nil)
	if err != nil {
		return false
	}
	req.Header.Set("Authorization", "Bearer "+c.adminKey)
	req.Header.Set(replica.LocalOnlyHeader, "1")
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}, Timeout: 2 * time.Second}
	defer hc.CloseIdleConnections()
	resp, err := hc.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
