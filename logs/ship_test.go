package logs

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/host/joblog"
	"github.com/pierpaas/pier/internal/pki"
)

// testPKI is a cluster CA with a server and a client certificate.
type testPKI struct {
	server, client *pki.Credentials
}

func newTestPKI(t testing.TB) testPKI {
	ca, err := pki.NewCA("test")
	if err != nil {
		t.Fatal(err)
	}
	var p testPKI
	for _, c := range []struct {
		name string
		out  **pki.Credentials
		role string
	}{{"server", &p.server, pki.RoleServer}, {"host", &p.client, pki.RoleHost}} {
		dir := filepath.Join(t.TempDir(), c.name)
		if err := ca.Issue(dir, pki.Request{CommonName: c.name, Role: c.role, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}); err != nil {
			t.Fatal(err)
		}
		if *c.out, err = pki.LoadCredentials(dir); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func (p testPKI) httpClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = p.client.ClientConfig()
	tr.ForceAttemptHTTP2 = true
	return &http.Client{Transport: tr}
}

// serve runs an active aggregator's endpoints over mutual TLS.
func serve(t testing.TB, p testPKI, a *Aggregator) *httptest.Server {
	srv := httptest.NewUnstartedServer(a.Handler())
	srv.EnableHTTP2 = true
	srv.TLS = p.server.ServerConfig()
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// leader is a switchable aggregator address, as a Locator gives.
type leader struct {
	mu      sync.Mutex
	addr    string
	changed chan struct{}
}

func newLeader(addr string) *leader { return &leader{addr: addr, changed: make(chan struct{})} }

func (l *leader) get() (string, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.addr, l.changed
}

func (l *leader) set(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.addr = addr
	close(l.changed)
	l.changed = make(chan struct{})
}

// fakeHost is a host's jobs, each with a joblog writer, and its shipper.
type fakeHost struct {
	t    testing.TB
	dir  string
	mu   sync.Mutex
	jobs []ShipJob
	done map[string]bool
	w    map[string]*joblog.Writer
	s    *Shipper
}

func startHost(t testing.TB, id string, p testPKI, l *leader, tune func(*ShipperConfig)) *fakeHost {
	h := &fakeHost{t: t, dir: t.TempDir(), done: map[string]bool{}, w: map[string]*joblog.Writer{}}
	cfg := ShipperConfig{
		Host: id, Leader: l.get, Client: p.httpClient(), Refresh: 50 * time.Millisecond,
		Jobs: func() []ShipJob {
			h.mu.Lock()
			defer h.mu.Unlock()
			return slices.Clone(h.jobs)
		},
		Done: func(id string) bool {
			h.mu.Lock()
			defer h.mu.Unlock()
			return h.done[id]
		},
	}
	if tune != nil {
		tune(&cfg)
	}
	h.s = NewShipper(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.s.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return h
}

// addJob starts a job's log and returns its stdout.
func (h *fakeHost) addJob(id, app, ptype string, opts joblog.Options) io.Writer {
	dir := filepath.Join(h.dir, id)
	w, err := joblog.NewWriter(dir, opts)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { w.Close() })
	h.mu.Lock()
	h.jobs = append(h.jobs, ShipJob{ID: id, App: app, ProcessType: ptype, Release: app + "-v1", Dir: dir})
	h.w[id] = w
	h.mu.Unlock()
	return w.Stream("stdout")
}

func (h *fakeHost) endJob(id string) {
	h.mu.Lock()
	w := h.w[id]
	h.done[id] = true
	h.mu.Unlock()
	w.Close()
}

// follow streams an app's lines from the aggregator at addr.
func follow(t testing.TB, p testPKI, addr, app, query string) <-chan api.AppLogLine {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/v1/logs/apps/"+app+"?"+query, nil)
	resp, err := p.httpClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("follow: %s", resp.Status)
	}
	out := make(chan api.AppLogLine, 100000)
	go func() {
		defer resp.Body.Close()
		defer close(out)
		dec := json.NewDecoder(resp.Body)
		for {
			var l api.AppLogLine
			if dec.Decode(&l) != nil {
				return
			}
			out <- l
		}
	}()
	return out
}

func addrOf(srv *httptest.Server) string { return strings.TrimPrefix(srv.URL, "https://") }

// query returns an app's newest lines.
func query(t testing.TB, p testPKI, addr, app, q string) []api.AppLogLine {
	t.Helper()
	var out []api.AppLogLine
	for l := range follow(t, p, addr, app, q) {
		out = append(out, l)
	}
	return out
}

func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// appLines counts the app-source lines of each job an aggregator holds
// and checks they are in order without repeats.
func appLines(t testing.TB, a *Aggregator, app string) map[string][]uint64 {
	t.Helper()
	v, err := a.tail(app, 1<<30, filter{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]uint64{}
	for _, l := range v.lines {
		if l.Source != api.LogSourceApp {
			continue
		}
		seqs := out[l.Job]
		if n := len(seqs); n > 0 && l.Seq <= seqs[n-1] {
			t.Fatalf("job %s: line %d after %d", l.Job, l.Seq, seqs[n-1])
		}
		out[l.Job] = append(seqs, l.Seq)
	}
	return out
}

func TestShipSeveralHostsOneStream(t *testing.T) {
	p := newTestPKI(t)
	a := NewAggregator(Config{})
	a.Activate()
	srv := serve(t, p, a)
	l := newLeader(addrOf(srv))
	stream := follow(t, p, l.addr, "shop", "follow=true&lines=0")
	h1 := startHost(t, "h1", p, l, nil)
	h2 := startHost(t, "h2", p, l, nil)
	web := h1.addJob("shop-web-1", "shop", "web", joblog.Options{})
	worker := h2.addJob("shop-worker-1", "shop", "worker", joblog.Options{})
	other := h2.addJob("blog-web-1", "blog", "web", joblog.Options{})
	for i := range 200 {
		fmt.Fprintf(web, "web %d\n", i)
		fmt.Fprintf(worker, "worker %d\n", i)
		fmt.Fprintf(other, "blog %d\n", i)
	}
	next := map[string]int{}
	for next["shop-web-1"] < 200 || next["shop-worker-1"] < 200 {
		select {
		case ln := <-stream:
			want := fmt.Sprintf("%s %d", ln.Process, next[ln.Job])
			if ln.Text != want || ln.Seq != uint64(next[ln.Job]+1) || ln.App != "shop" || ln.Source != api.LogSourceApp {
				t.Fatalf("got %+v, want %q", ln, want)
			}
			if (ln.Job == "shop-web-1") != (ln.Host == "h1") {
				t.Fatalf("line from the wrong host: %+v", ln)
			}
			next[ln.Job]++
		case <-time.After(10 * time.Second):
			t.Fatalf("stream stalled at %v", next)
		}
	}
	// Queries by process type and job.
	if got := query(t, p, l.addr, "shop", "lines=5&type=worker"); len(got) != 5 || got[4].Text != "worker 199" {
		t.Fatalf("type query: %+v", got)
	}
	if got := query(t, p, l.addr, "shop", "lines=1000&job=shop-web-1"); len(got) != 200 || got[0].Text != "web 0" {
		t.Fatalf("job query: %d lines", len(got))
	}
	if got := query(t, p, l.addr, "blog", ""); len(got) != DefaultTail || got[DefaultTail-1].Text != "blog 199" {
		t.Fatalf("default query: %d lines", len(got))
	}
	// A job that ended is shipped to its end and then left alone.
	fmt.Fprintf(web, "last words")
	h1.endJob("shop-web-1")
	waitFor(t, "the ended job's last line", 5*time.Second, func() bool {
		return len(appLines(t, a, "shop")["shop-web-1"]) == 201
	})
}

func TestShipFollowLatency(t *testing.T) {
	p := newTestPKI(t)
	a := NewAggregator(Config{})
	a.Activate()
	srv := serve(t, p, a)
	l := newLeader(addrOf(srv))
	stream := follow(t, p, l.addr, "shop", "follow=true&lines=0")
	h := startHost(t, "h1", p, l, nil)
	out := h.addJob("shop-web-1", "shop", "web", joblog.Options{})
	var lat []time.Duration
	for i := range 20 {
		start := time.Now()
		fmt.Fprintf(out, "ping %d\n", i)
		select {
		case ln := <-stream:
			if ln.Text != fmt.Sprintf("ping %d", i) {
				t.Fatalf("got %q", ln.Text)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("line %d did not arrive", i)
		}
		lat = append(lat, time.Since(start))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	t.Logf("follow latency p50 %v, max %v", lat[len(lat)/2], lat[len(lat)-1])
	// The files are polled every 50ms: a line should show well within
	// a second even on a loaded machine.
	if lat[len(lat)/2] > 500*time.Millisecond {
		t.Fatalf("follow latency p50 %v", lat[len(lat)/2])
	}
}

func TestShipAggregatorRestartLosesNothing(t *testing.T) {
	p := newTestPKI(t)
	a1 := NewAggregator(Config{})
	a1.Activate()
	srv1 := serve(t, p, a1)
	l := newLeader(addrOf(srv1))
	h := startHost(t, "h1", p, l, nil)
	out := h.addJob("shop-web-1", "shop", "web", joblog.Options{})
	for i := range 100 {
		fmt.Fprintf(out, "line %d\n", i+1)
	}
	waitFor(t, "the first lines", 5*time.Second, func() bool { return len(appLines(t, a1, "shop")["shop-web-1"]) == 100 })

	// The aggregator dies; lines keep coming while there is none.
	srv1.CloseClientConnections()
	srv1.Close()
	a1.Deactivate()
	for i := 100; i < 200; i++ {
		fmt.Fprintf(out, "line %d\n", i+1)
	}
	time.Sleep(200 * time.Millisecond)

	// A new one starts elsewhere, with nothing: the host gives it all
	// its files hold, in order, once.
	a2 := NewAggregator(Config{})
	a2.Activate()
	srv2 := serve(t, p, a2)
	l.set(addrOf(srv2))
	waitFor(t, "the lines to be recovered", 5*time.Second, func() bool { return len(appLines(t, a2, "shop")["shop-web-1"]) == 200 })
	for i := 200; i < 300; i++ {
		fmt.Fprintf(out, "line %d\n", i+1)
	}
	waitFor(t, "new lines", 5*time.Second, func() bool { return len(appLines(t, a2, "shop")["shop-web-1"]) == 300 })

	// The same aggregator restarting in place (a new term, same address)
	// recovers the same way.
	a2.Deactivate()
	a2.Activate()
	waitFor(t, "the lines to be recovered again", 5*time.Second, func() bool { return len(appLines(t, a2, "shop")["shop-web-1"]) == 300 })
	seqs := appLines(t, a2, "shop")["shop-web-1"]
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("line %d has seq %d", i, s)
		}
	}
	if st := a2.Stats(); st.Lost != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestShipFlood: a job writing as fast as it can for a moment. The ring
// stays within its bounds, the job's lines are each either delivered or
// counted lost, and another app's lines keep flowing promptly.
func TestShipFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("floods for two seconds")
	}
	p := newTestPKI(t)
	const ringBytes = 1 << 20
	a := NewAggregator(Config{MaxLines: 5000, MaxBytes: ringBytes})
	a.Activate()
	srv := serve(t, p, a)
	l := newLeader(addrOf(srv))
	h := startHost(t, "h1", p, l, nil)
	small := joblog.Options{MaxFileBytes: 256 << 10, MaxFiles: 2}
	flood := h.addJob("noisy-web-1", "noisy", "web", small)
	quiet := h.addJob("calm-web-1", "calm", "web", joblog.Options{})
	fmt.Fprintf(flood, "first\n")
	waitFor(t, "the shipper to start", 5*time.Second, func() bool { return len(appLines(t, a, "noisy")["noisy-web-1"]) == 1 })
	calm := follow(t, p, l.addr, "calm", "follow=true&lines=0")

	stop := make(chan struct{})
	var written int
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		payload := strings.Repeat("z", 100)
		for {
			select {
			case <-stop:
				return
			default:
			}
			for range 100 {
				written++
				fmt.Fprintf(flood, "%d %s\n", written, payload)
			}
		}
	}()
	var lat []time.Duration
	deadline := time.Now().Add(2 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		start := time.Now()
		fmt.Fprintf(quiet, "calm %d\n", i)
		select {
		case ln := <-calm:
			if ln.Text != "calm "+strconv.Itoa(i) {
				t.Fatalf("calm line %q, want %d", ln.Text, i)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("calm line %d held up by the flood", i)
		}
		lat = append(lat, time.Since(start))
		if st := a.Stats(); st.Bytes > 2*ringBytes {
			t.Fatalf("rings hold %d bytes", st.Bytes)
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	total := uint64(written + 1)
	waitFor(t, "the flood to be shipped or counted lost", 20*time.Second, func() bool {
		st := h.s.Stats()
		return st.Shipped+st.Lost >= total+uint64(len(lat))
	})
	st, ss := a.Stats(), h.s.Stats()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	t.Logf("flood: %d lines written, %d shipped, %d lost on the host; ring %d lines %d bytes, %d evicted; other app's latency p50 %v max %v",
		total, ss.Shipped, ss.Lost, st.Lines, st.Bytes, st.Evicted, lat[len(lat)/2], lat[len(lat)-1])
	if ss.Shipped+ss.Lost != total+uint64(len(lat)) {
		t.Fatalf("shipped %d + lost %d != written %d", ss.Shipped, ss.Lost, total+uint64(len(lat)))
	}
	if st.Lost != ss.Lost {
		t.Fatalf("aggregator counted %d lost, host %d", st.Lost, ss.Lost)
	}
	v, _ := a.tail("noisy", 1<<30, filter{})
	var bytes int
	for i := range v.lines {
		bytes += lineSize(&v.lines[i])
	}
	if bytes > ringBytes || len(v.lines) > 5000 {
		t.Fatalf("noisy ring holds %d lines, %d bytes", len(v.lines), bytes)
	}
	if lat[len(lat)/2] > 2*time.Second {
		t.Fatalf("the other app's lines took %v (p50) during the flood", lat[len(lat)/2])
	}
}

func TestPlatformLinesEndpoint(t *testing.T) {
	p := newTestPKI(t)
	a := NewAggregator(Config{})
	a.Activate()
	srv := serve(t, p, a)
	body := `[{"app":"shop","process":"router","source":"app","seq":7,"text":"at=info method=GET path=/ status=200"}]`
	resp, err := p.httpClient().Post(srv.URL+"/v1/logs/platform", "application/json", strings.NewReader(body))
	if err != nil || resp.StatusCode != 204 {
		t.Fatalf("post: %v %v", resp, err)
	}
	got := query(t, p, addrOf(srv), "shop", "type=router")
	if len(got) != 1 || got[0].Source != api.LogSourcePier || got[0].Seq != 0 || got[0].Dyno() != "router" {
		t.Fatalf("lines %+v", got)
	}
	// Without a cluster certificate: refused.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: p.server.Pool}
	resp, err = (&http.Client{Transport: tr}).Post(srv.URL+"/v1/logs/platform", "application/json", strings.NewReader(body))
	if err != nil || resp.StatusCode != 401 {
		t.Fatalf("post without a certificate: %v %v", resp, err)
	}
}

// TestShipHostRestartResumes: a restarted shipper (a restarted host agent)
// resumes where the aggregator is, sending nothing twice.
func TestShipHostRestartResumes(t *testing.T) {
	p := newTestPKI(t)
	a := NewAggregator(Config{})
	a.Activate()
	srv := serve(t, p, a)
	l := newLeader(addrOf(srv))
	ctx, cancel := context.WithCancel(context.Background())
	h := &fakeHost{t: t, dir: t.TempDir(), done: map[string]bool{}, w: map[string]*joblog.Writer{}}
	out := h.addJob("shop-web-1", "shop", "web", joblog.Options{})
	newShipper := func() *Shipper {
		return NewShipper(ShipperConfig{Host: "h1", Leader: l.get, Client: p.httpClient(), Refresh: 50 * time.Millisecond,
			Jobs: func() []ShipJob { h.mu.Lock(); defer h.mu.Unlock(); return slices.Clone(h.jobs) }})
	}
	done := make(chan struct{})
	go func() { defer close(done); newShipper().Run(ctx) }()
	for i := range 50 {
		fmt.Fprintf(out, "line %d\n", i)
	}
	waitFor(t, "the first lines", 5*time.Second, func() bool { return len(appLines(t, a, "shop")["shop-web-1"]) == 50 })
	cancel()
	<-done
	for i := 50; i < 100; i++ {
		fmt.Fprintf(out, "line %d\n", i)
	}
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	s2 := newShipper()
	go s2.Run(ctx)
	waitFor(t, "the lines written while the host was down", 5*time.Second, func() bool { return len(appLines(t, a, "shop")["shop-web-1"]) == 100 })
	// The shipper counts a batch once the aggregator has answered, a
	// moment after the aggregator holds its lines.
	waitFor(t, "the new shipper's count", 5*time.Second, func() bool { return s2.Stats().Shipped >= 50 })
	if st := a.Stats(); st.Duplicates != 0 || s2.Stats().Shipped != 50 {
		t.Fatalf("aggregator %+v; the new shipper shipped %d", st, s2.Stats().Shipped)
	}
}
