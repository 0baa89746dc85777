package dashboard_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/client"
	"github.com/pierpaas/pier/controller"
	"github.com/pierpaas/pier/controller/deployer"
	"github.com/pierpaas/pier/dashboard"
	"github.com/pierpaas/pier/internal/pki"
	"github.com/pierpaas/pier/internal/testcluster"
)

// BenchmarkAppPage measures, in headless Chromium, how long the app page
// takes from navigation to its last section drawn (every answer in), and
// how many bytes it moved compressed, against a real controller whose
// cluster has 50 apps with 10 running jobs each (on the fake runtime).
//
//	go test -run '^$' -bench AppPage ./dashboard/
func BenchmarkAppPage(b *testing.B) {
	const apps, jobsPerApp = 50, 10
	srv, key := benchCluster(b, apps, jobsPerApp)
	ctx := newBrowser(b)
	navigate(b, ctx, srv.URL+"/")
	run(b, ctx, "sign in", chromedp.WaitVisible(chromedp.CSS("#key")),
		chromedp.SendKeys(chromedp.CSS("#key"), key), chromedp.Click(chromedp.CSS("#signin-form button")))
	waitJS(b, ctx, "the apps list", 30*time.Second, fmt.Sprintf(`document.querySelectorAll('#apps tr[data-app]').length === %d`, apps))

	var renderMS, bytes float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// A new document each time (the query string changes), so each
		// run loads the page, its script and every answer anew; assets
		// may be revalidated from the cache, as a returning user's are.
		navigate(b, ctx, fmt.Sprintf("%s/?run=%d#/apps/app-%02d", srv.URL, i, i%apps))
		waitJS(b, ctx, "the app page drawn", 30*time.Second, fmt.Sprintf(
			`!!document.body.dataset.rendered && document.querySelectorAll('#jobs tr[data-state="running"]').length === %d`, jobsPerApp))
		renderMS += evalJS[float64](b, ctx, `parseFloat(document.body.dataset.rendered)`)
		// Transfer sizes (compressed bodies and headers) of the page and
		// every request it made that has ended (the events stream has not).
		bytes += evalJS[float64](b, ctx, `performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource')).reduce((n, e) => n + e.transferSize, 0)`)
	}
	b.StopTimer()
	b.ReportMetric(renderMS/float64(b.N), "ms/first-render")
	b.ReportMetric(bytes/float64(b.N), "bytes/page")
	// And the weight of a first visit, with nothing cached: the assets
	// gzipped as the server sends them.
	b.ReportMetric(float64(dashboard.AssetsGzipSize()), "bytes-assets-gz")
}

// benchCluster starts etcd, five fake-runtime hosts, a scheduler and a
// controller behind the dashboard over HTTPS, and deploys apps apps of
// perApp running jobs each. It returns the server and the API key.
func benchCluster(b *testing.B, apps, perApp int) (*httptest.Server, string) {
	b.Helper()
	tc := testcluster.New(b)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	key, err := controller.BootstrapKey(ctx, tc.Client, b.TempDir()+"/admin.key")
	if err != nil {
		b.Fatal(err)
	}
	mux := http.NewServeMux()
	srv := httptest.NewUnstartedServer(nil)
	srv.EnableHTTP2 = true
	certDir := b.TempDir()
	if err := tc.Etcd.CA.Issue(certDir, pki.Request{CommonName: "controller", Role: pki.RoleServer, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}); err != nil {
		b.Fatal(err)
	}
	creds, err := pki.LoadCredentials(certDir)
	if err != nil {
		b.Fatal(err)
	}
	ctl := controller.New(controller.Config{Client: tc.Client, BlobURL: "https://127.0.0.1", Log: tc.Log, HostTLS: tc.Etcd.Credentials().ClientConfig()})
	ctl.Register(mux)
	go ctl.Run(ctx)
	<-ctl.Ready()
	srv.Config.Handler = dashboard.New(dashboard.Config{Client: tc.Client, Keys: ctl, Log: tc.Log}).Wrap(mux)
	srv.TLS = creds.ServerConfig()
	srv.StartTLS()
	// The page's event stream never ends by itself: Close would wait
	// for it forever.
	b.Cleanup(func() { srv.CloseClientConnections(); srv.Close() })
	for i := range 5 {
		tc.AddHost(fmt.Sprintf("h%d", i+1), testcluster.HostOptions{CPUMillis: 64000, MemoryMB: 64000})
	}
	tc.StartScheduler("s1")
	dep := &deployer.Loop{Client: tc.Client, Name: "d1", Log: tc.Log, LeaseTTL: time.Second}
	go dep.Run(ctx)

	cli, err := client.NewController(srv.URL, key, creds.ClientConfig())
	if err != nil {
		b.Fatal(err)
	}
	procs := map[string]api.ProcessType{"worker": {Args: []string{"run"}, Resources: api.Resources{CPUMillis: 50, MemoryMB: 64}}}
	for i := range apps {
		name := fmt.Sprintf("app-%02d", i)
		if _, err := cli.CreateApp(ctx, api.CreateAppRequest{Name: name}); err != nil {
			b.Fatal(err)
		}
		if _, err := cli.CreateRelease(ctx, name, api.CreateReleaseRequest{Processes: procs, Env: map[string]string{"APP": name}}); err != nil {
			b.Fatal(err)
		}
	}
	// An app can be scaled once its first release is deployed.
	for i := range apps {
		name := fmt.Sprintf("app-%02d", i)
		waitFor(b, name+"'s first deploy", time.Minute, func() bool {
			a, err := cli.App(ctx, name)
			return err == nil && a.Release != ""
		})
		if _, err := cli.Scale(ctx, name, map[string]int{"worker": perApp}); err != nil {
			b.Fatal(err)
		}
	}
	waitFor(b, fmt.Sprintf("%d running jobs", apps*perApp), 3*time.Minute, func() bool {
		n := 0
		for i := range apps {
			jl, err := cli.Jobs(ctx, fmt.Sprintf("app-%02d", i))
			if err != nil {
				return false
			}
			for _, j := range jl.Jobs {
				if j.State == api.JobRunning {
					n++
				}
			}
		}
		return n == apps*perApp
	})
	return srv, key
}
