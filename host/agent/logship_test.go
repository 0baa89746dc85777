package agent

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/discovery"
	"github.com/pierpaas/pier/internal/pki"
	"github.com/pierpaas/pier/logs"
	"github.com/pierpaas/pier/store/storetest"
)

// logServer is a server's log aggregator: its endpoints over mutual TLS
// and its campaign to be the active one.
type logServer struct {
	agg  *logs.Aggregator
	srv  *httptest.Server
	stop context.CancelFunc
	done chan struct{}
}

func startLogServer(t *testing.T, c *storetest.Cluster, name string) *logServer {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := c.CA.Issue(dir, pki.Request{CommonName: name, Role: pki.RoleServer, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}); err != nil {
		t.Fatal(err)
	}
	creds, err := pki.LoadCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	ls := &logServer{agg: logs.NewAggregator(logs.Config{}), done: make(chan struct{})}
	ls.srv = httptest.NewUnstartedServer(ls.agg.Handler())
	ls.srv.EnableHTTP2 = true
	ls.srv.TLS = creds.ServerConfig()
	ls.srv.StartTLS()
	ctx, cancel := context.WithCancel(context.Background())
	ls.stop = cancel
	platform := &logs.Platform{Client: c.Client(), Emit: ls.agg.Emit}
	go func() {
		defer close(ls.done)
		ls.agg.Lead(ctx, discovery.New(c.Client()), name, strings.TrimPrefix(ls.srv.URL, "https://"), platform.Run)
	}()
	t.Cleanup(ls.close)
	return ls
}

func (ls *logServer) close() {
	ls.stop()
	<-ls.done
	ls.srv.Close()
}

// appLog reads an app's lines from an aggregator.
func appLog(t *testing.T, c *storetest.Cluster, ls *logServer, app string) []api.AppLogLine {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: c.Credentials().ClientConfig()}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get(ls.srv.URL + "/v1/logs/apps/" + app + "?lines=1000")
	if err != nil || resp.StatusCode != 200 {
		return nil // not (yet) the active one
	}
	defer resp.Body.Close()
	var out []api.AppLogLine
	dec := json.NewDecoder(resp.Body)
	for {
		var l api.AppLogLine
		if dec.Decode(&l) != nil {
			return out
		}
		out = append(out, l)
	}
}

func lineTexts(lines []api.AppLogLine) string {
	var s []string
	for _, l := range lines {
		s = append(s, l.Source+"["+l.Dyno()+"]: "+l.Text)
	}
	return strings.Join(s, "\n")
}

// TestLogShipping: a job's output reaches the active aggregator, found
// through discovery, with the platform's lines about the job; when that
// aggregator goes, the next one gets everything the host still holds.
func TestLogShipping(t *testing.T) {
	c := storetest.NewCluster(t, 1)
	s1 := startLogServer(t, c, "s1")
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor("s1 to be active", s1.agg.Active)
	s2 := startLogServer(t, c, "s2")
	cfg, rt := apiHost(t, c, "h1")
	startAgent(t, cfg)

	putJob(t, c, api.Job{ID: "shop-web-1", HostID: "h1", App: "shop", Release: "shop-v1", ProcessType: "web", Args: []string{"x"}})
	putJob(t, c, api.Job{ID: "adhoc", HostID: "h1", Args: []string{"x"}}) // no app: not shipped
	// A build's output is the push's and the build's, not the app's log.
	putJob(t, c, api.Job{ID: "shop-build-1", HostID: "h1", App: "shop", Args: []string{api.PierBinary, "slugbuild"}})
	waitStatus(t, c, "shop-build-1", inState(api.JobRunning))
	rt.Write("shop-build-1", "-----> compiling\n", "")
	waitStatus(t, c, "shop-web-1", inState(api.JobRunning))
	rt.Write("shop-web-1", "one\ntwo\n", "oops\n")
	waitFor("the lines at s1", func() bool {
		return strings.Contains(lineTexts(appLog(t, c, s1, "shop")), "app[web.shop-web-1]: oops")
	})
	if s2.agg.Active() {
		t.Fatal("two active aggregators")
	}
	got := appLog(t, c, s1, "shop")
	if !strings.Contains(lineTexts(got), "pier[web.shop-web-1]: State changed to up") {
		t.Errorf("no platform line about the job:\n%s", lineTexts(got))
	}

	// s1 goes away; s2 takes over and gets the lines again from the
	// host's files, and the new ones.
	s1.close()
	waitFor("s2 to be active", s2.agg.Active)
	rt.Write("shop-web-1", "three\n", "")
	waitFor("the lines at s2", func() bool {
		var app []string
		for _, l := range appLog(t, c, s2, "shop") {
			if l.Source == api.LogSourceApp && l.Job == "shop-web-1" {
				app = append(app, l.Text)
			}
		}
		return strings.Join(app, ",") == "one,two,oops,three"
	})
	if got := lineTexts(appLog(t, c, s2, "shop")); strings.Contains(got, "compiling") {
		t.Errorf("a build's output in the app's log:\n%s", got)
	}

	// The job crashes: the platform says how.
	rt.Exit("shop-web-1", 3)
	waitFor("the crash line", func() bool {
		return strings.Contains(lineTexts(appLog(t, c, s2, "shop")), "pier[web.shop-web-1]: Process exited with status 3")
	})
}
