package router

import (
	"bytes"
	"encoding/json"
	"io"
	nethttp "net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/discovery"
)

// accessLogBuffer is an io.Writer the test can read while the proxy writes.
type accessLogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *accessLogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines waits for n lines and decodes them.
func (b *accessLogBuffer) lines(t *testing.T, n int) []map[string]any {
	t.Helper()
	var text string
	waitFor(t, func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		text = b.buf.String()
		return strings.Count(text, "\n") >= n
	})
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

func newObservedProxy(t *testing.T, w Watcher, cfg Config, routes ...api.Route) (*Proxy, *httptest.Server) {
	t.Helper()
	cfg.BackendWait = 2 * time.Second
	p := NewProxy(w, cfg)
	p.SetTable(mustTable(t, routes...))
	s := httptest.NewServer(p)
	t.Cleanup(func() { s.Close(); p.Close() })
	return p, s
}

func TestProxyAccessLog(t *testing.T) {
	fw := newFakeWatcher()
	_, b := backend(t, "b", func(w nethttp.ResponseWriter, r *nethttp.Request) {
		w.WriteHeader(201)
		io.WriteString(w, "created!")
	})
	fw.add("svc", b)
	var log accessLogBuffer
	_, s := newObservedProxy(t, fw, Config{AccessLog: &log},
		route("r1", "a.test", "", "svc"), route("r2", "empty.test", "", "nobody"))

	before := time.Now()
	req, _ := nethttp.NewRequest("POST", s.URL+`/a%22b%FF/c?secret=1`, strings.NewReader("x"))
	req.Host = "A.test:80"
	req.Header.Set("X-Request-Id", "req-1")
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	get(t, s, "nowhere.test", "/x")
	get(t, s, "empty.test", "/")

	lines := log.lines(t, 3)
	l := lines[0]
	ts, err := time.Parse(time.RFC3339Nano, l["time"].(string))
	if err != nil || ts.Before(before.Add(-time.Second)) || ts.After(time.Now()) {
		t.Errorf("time %v (%v)", l["time"], err)
	}
	want := map[string]any{
		"request_id": "req-1", "method": "POST", "host": "A.test:80",
		"path": "/a\"b\ufffd/c", "status": 201.0, "bytes": 8.0,
		"route": "r1", "backend": b.Addr, "client_ip": "127.0.0.1",
	}
	for k, v := range want {
		if l[k] != v {
			t.Errorf("%s = %#v, want %#v", k, l[k], v)
		}
	}
	if d, ok := l["duration_ms"].(float64); !ok || d <= 0 || d > 10000 {
		t.Errorf("duration_ms %v", l["duration_ms"])
	}
	if len(l) != 11 {
		t.Errorf("%d fields: %v", len(l), l)
	}

	// Unrouted: no route, no backend, a generated request ID.
	l = lines[1]
	if l["status"] != 404.0 || l["route"] != "" || l["backend"] != "" || len(l["request_id"].(string)) != 32 {
		t.Errorf("unrouted line %v", l)
	}
	// No backend: the route, and a 503.
	l = lines[2]
	if l["status"] != 503.0 || l["route"] != "r2" || l["backend"] != "" {
		t.Errorf("no-backend line %v", l)
	}
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"", "plain", "quote\" back\\slash", "ctl\x00\x01\x1f\x7f\n\r\t", "bad\xff\xfeutf8", "ünï©ødé ✓"} {
		b := appendJSONString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%q → %s: %v", s, b, err)
		}
		if want := strings.ToValidUTF8(s, "\ufffd"); got != want && !strings.Contains(s, "\xff") {
			t.Errorf("%q round-trips as %q", s, got)
		}
	}
}

func TestProxyMetrics(t *testing.T) {
	fw := newFakeWatcher()
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	_, a := backend(t, "a", func(w nethttp.ResponseWriter, r *nethttp.Request) {
		if r.URL.Path == "/slow" {
			entered <- struct{}{}
			<-release
		}
		if r.URL.Path == "/missing" {
			w.WriteHeader(404)
		}
	})
	_, b := backend(t, "b", nil)
	fw.add("svc", a)
	reg := prometheus.NewRegistry()
	p, s := newObservedProxy(t, fw, Config{Registry: reg},
		route("r1", "a.test", "", "svc"), route("r2", "empty.test", "", "nobody"))
	m := p.metrics

	for range 3 {
		get(t, s, "a.test", "/")
	}
	get(t, s, "a.test", "/missing")
	get(t, s, "empty.test", "/")
	get(t, s, "nowhere.test", "/")
	check := func(c interface {
		prometheus.Metric
		prometheus.Collector
	}, want float64) {
		t.Helper()
		if got := testutil.ToFloat64(c); got != want {
			t.Errorf("%s = %v, want %v", c.Desc(), got, want)
		}
	}
	waitFor(t, func() bool { return testutil.ToFloat64(m.unrouted) == 1 })
	check(m.requests.WithLabelValues("r1", "2xx"), 3)
	check(m.requests.WithLabelValues("r1", "4xx"), 1)
	check(m.requests.WithLabelValues("r1", "5xx"), 0)
	check(m.requests.WithLabelValues("r2", "5xx"), 1)
	check(m.backends.WithLabelValues("svc"), 1)
	check(m.backends.WithLabelValues("nobody"), 0)

	// The latency histogram saw r1's four requests.
	err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP pier_router_requests_in_flight Requests the router is answering, by route.
# TYPE pier_router_requests_in_flight gauge
pier_router_requests_in_flight{route="r1"} 0
pier_router_requests_in_flight{route="r2"} 0
`), "pier_router_requests_in_flight")
	if err != nil {
		t.Error(err)
	}
	if n := histogramCount(t, reg, "r1"); n != 4 {
		t.Errorf("r1's histogram counted %d requests, want 4", n)
	}

	// In flight while the backend holds a request.
	done := make(chan struct{})
	go func() { get(t, s, "a.test", "/slow"); close(done) }()
	<-entered
	check(m.inflight.WithLabelValues("r1"), 1)
	close(release)
	<-done
	waitFor(t, func() bool { return testutil.ToFloat64(m.inflight.WithLabelValues("r1")) == 0 })

	// Backends follow discovery.
	fw.send(t, discovery.Event{Type: discovery.EventUp, Service: "svc", Instance: &b})
	waitFor(t, func() bool { return testutil.ToFloat64(m.backends.WithLabelValues("svc")) == 2 })

	// A removed route's series go, and its service's backends gauge.
	p.SetTable(mustTable(t, route("r2", "empty.test", "", "nobody")))
	waitFor(t, func() bool { return testutil.CollectAndCount(m.backends) == 1 })
	if n := testutil.CollectAndCount(m.requests); n != len(statusClasses) {
		t.Errorf("%d request series after r1 left, want r2's %d", n, len(statusClasses))
	}
	if n := testutil.CollectAndCount(m.duration); n != 1 {
		t.Errorf("%d histograms after r1 left, want 1", n)
	}

	// A second proxy on the same registry shares the series.
	p2 := NewProxy(fw, Config{Registry: reg})
	p2.Close()
}

func histogramCount(t *testing.T, reg *prometheus.Registry, route string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "pier_router_request_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == route {
				return m.GetHistogram().GetSampleCount()
			}
		}
	}
	return 0
}
