package controller_test

import (
	"context"
	"net"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/client"
	"github.com/pierpaas/pier/discovery"
	"github.com/pierpaas/pier/internal/pki"
	"github.com/pierpaas/pier/logs"
)

func TestDrainsAPI(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	if _, err := e.cli.CreateApp(c, api.CreateAppRequest{Name: "shop"}); err != nil {
		t.Fatal(err)
	}
	d, err := e.cli.AddDrain(c, "shop", "syslog+tls://logs.example.com:6514")
	if err != nil || d.ID == "" || d.App != "shop" {
		t.Fatalf("add: %+v, %v", d, err)
	}
	_, err = e.cli.AddDrain(c, "shop", "syslog+tls://logs.example.com:6514")
	wantCode(t, err, api.ErrCodeConflict, 409)
	for _, bad := range []string{"http://x:1", "syslog://x", "nonsense"} {
		_, err = e.cli.AddDrain(c, "shop", bad)
		wantCode(t, err, api.ErrCodeInvalid, 422)
	}
	_, err = e.cli.AddDrain(c, "nope", "syslog://x:1")
	wantCode(t, err, api.ErrCodeNotFound, 404)
	d2, err := e.cli.AddDrain(c, "shop", "syslog://10.0.0.1:514")
	if err != nil {
		t.Fatal(err)
	}
	ds, err := e.cli.Drains(c, "shop")
	if err != nil || len(ds) != 2 || ds[0].ID != d.ID || ds[1].ID != d2.ID {
		t.Fatalf("drains: %+v, %v", ds, err)
	}
	if err := e.cli.RemoveDrain(c, "shop", d.ID); err != nil {
		t.Fatal(err)
	}
	wantCode(t, e.cli.RemoveDrain(c, "shop", d.ID), api.ErrCodeNotFound, 404)
	if ds, _ := e.cli.Drains(c, "shop"); len(ds) != 1 {
		t.Fatalf("after removal: %+v", ds)
	}
	// A deleted app takes its drains along; a new app of the name has none.
	if err := e.cli.DeleteApp(c, "shop"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cli.CreateApp(c, api.CreateAppRequest{Name: "shop"}); err != nil {
		t.Fatal(err)
	}
	if ds, err := e.cli.Drains(c, "shop"); err != nil || len(ds) != 0 {
		t.Fatalf("drains of the new app: %+v, %v", ds, err)
	}
}

func TestLogsThroughTheController(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	if _, err := e.cli.CreateApp(c, api.CreateAppRequest{Name: "shop"}); err != nil {
		t.Fatal(err)
	}
	// No aggregator yet.
	err := e.cli.Logs(c, "shop", client.LogsQuery{Lines: -1}, func(api.AppLogLine) error { return nil })
	wantCode(t, err, api.ErrCodeUnavailable, 503)

	// An aggregator, as a server runs it.
	dir := filepath.Join(t.TempDir(), "agg")
	if err := e.tc.Etcd.CA.Issue(dir, pki.Request{CommonName: "agg", Role: pki.RoleServer, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}); err != nil {
		t.Fatal(err)
	}
	creds, err := pki.LoadCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	agg := logs.NewAggregator(logs.Config{})
	srv := httptest.NewUnstartedServer(agg.Handler())
	srv.TLS = creds.ServerConfig()
	srv.StartTLS()
	t.Cleanup(srv.Close)
	lctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go agg.Lead(lctx, discovery.New(e.tc.Client), "agg", strings.TrimPrefix(srv.URL, "https://"), nil)
	waitFor(t, "the aggregator", agg.Active)
	for i, text := range []string{"one", "two", "three"} {
		agg.Emit(api.AppLogLine{App: "shop", Source: api.LogSourceApp, Process: "web", Job: "shop-web-1", Seq: uint64(i + 1), Text: text})
	}
	agg.Emit(api.AppLogLine{App: "shop", Process: "api", Text: "Deploy v2 finished"})
	agg.Emit(api.AppLogLine{App: "other", Process: "web", Text: "not shop's"})

	collect := func(q client.LogsQuery) string {
		var got []string
		if err := e.cli.Logs(c, "shop", q, func(l api.AppLogLine) error {
			got = append(got, l.Text)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return strings.Join(got, ",")
	}
	if got := collect(client.LogsQuery{Lines: -1}); got != "one,two,three,Deploy v2 finished" {
		t.Fatalf("logs: %s", got)
	}
	if got := collect(client.LogsQuery{Lines: 2, Type: "web"}); got != "two,three" {
		t.Fatalf("logs -n 2 -t web: %s", got)
	}
	// A job the app never had is an error, not an empty stream.
	err = e.cli.Logs(c, "shop", client.LogsQuery{Lines: -1, Job: "nope"}, func(api.AppLogLine) error { return nil })
	wantCode(t, err, api.ErrCodeNotFound, 404)
	_, err = e.cli.Drains(c, "nope")
	wantCode(t, err, api.ErrCodeNotFound, 404)

	// Follow: a new line comes through promptly.
	fctx, stop := context.WithTimeout(c, 10*time.Second)
	defer stop()
	got := make(chan string, 10)
	go e.cli.Logs(fctx, "shop", client.LogsQuery{Lines: 0, Follow: true}, func(l api.AppLogLine) error {
		got <- l.Text
		return nil
	})
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	agg.Emit(api.AppLogLine{App: "shop", Process: "web", Text: "four"})
	select {
	case s := <-got:
		if s != "four" {
			t.Fatalf("followed %q", s)
		}
		t.Logf("followed through the controller in %v", time.Since(start))
	case <-fctx.Done():
		t.Fatal("the followed line did not come")
	}
}
