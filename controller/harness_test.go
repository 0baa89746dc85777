package controller_test

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/pierpaas/pier/blobstore"
	"github.com/pierpaas/pier/client"
	"github.com/pierpaas/pier/controller"
	"github.com/pierpaas/pier/controller/deployer"
	"github.com/pierpaas/pier/internal/pki"
	"github.com/pierpaas/pier/internal/testcluster"
)

// env is a controller in front of an in-process cluster: etcd, host
// agents on the fake runtime and a scheduler.
type env struct {
	t     *testing.T
	tc    *testcluster.Cluster
	ctl   *controller.Controller
	srv   *httptest.Server
	cli   *client.Controller
	key   string
	blobs *blobstore.Store
	host  *testcluster.Host // h1, on the fake runtime
	// stopCtl stops the controller's loops and caches (its API with
	// them).
	stopCtl context.CancelFunc
}

func newEnv(t *testing.T, blobOpts ...blobstore.Option) *env {
	t.Helper()
	return newEnvWith(t, nil, blobOpts...)
}

// newEnvWith is newEnv with the controller's config changed by edit.
func newEnvWith(t *testing.T, edit func(*testcluster.Cluster, *controller.Config), blobOpts ...blobstore.Option) *env {
	t.Helper()
	tc := testcluster.New(t)
	blobs, err := blobstore.New(t.TempDir(), blobOpts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	key, err := controller.BootstrapKey(ctx, tc.Client, t.TempDir()+"/admin.key")
	if err != nil || key == "" {
		t.Fatalf("bootstrap key: %q, %v", key, err)
	}
	e := &env{t: t, tc: tc, key: key, blobs: blobs}
	mux := http.NewServeMux()
	e.srv = httptest.NewUnstartedServer(mux)
	e.srv.EnableHTTP2 = true
	// The cluster's own certificate, which hosts fetching artifacts trust.
	certDir := t.TempDir()
	if err := tc.Etcd.CA.Issue(certDir, pki.Request{CommonName: "controller", Role: pki.RoleServer, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}); err != nil {
		t.Fatal(err)
	}
	serverCreds, err := pki.LoadCredentials(certDir)
	if err != nil {
		t.Fatal(err)
	}
	e.srv.TLS = serverCreds.ServerConfig()
	e.srv.StartTLS()
	t.Cleanup(e.srv.Close)
	cfg := controller.Config{
		Client: tc.Client, Blobs: blobs, BlobURL: e.srv.URL,
		HostTLS: tc.Etcd.Credentials().ClientConfig(), Log: tc.Log, AttachWait: 10 * time.Second,
		RegistryUploadDir: t.TempDir(),
	}
	if edit != nil {
		edit(tc, &cfg)
	}
	e.ctl = controller.New(cfg)
	e.ctl.Register(mux)
	ctlCtx, stopCtl := context.WithCancel(ctx)
	e.stopCtl = stopCtl
	go e.ctl.Run(ctlCtx)
	select {
	case <-e.ctl.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("controller not ready")
	}
	e.cli = e.client(key)
	e.host = tc.AddHost("h1", testcluster.HostOptions{})
	tc.StartScheduler("s1")
	dep := &deployer.Loop{Client: tc.Client, Name: "d1", Log: tc.Log, LeaseTTL: time.Second}
	go dep.Run(ctx)
	return e
}

// client returns an API client with key.
func (e *env) client(key string) *client.Controller {
	e.t.Helper()
	c, err := client.NewController(e.srv.URL, key, &tls.Config{RootCAs: e.tc.Etcd.Credentials().Pool})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(c.Close)
	return c
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
