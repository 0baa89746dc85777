package router

import (
	"bufio"
	"io"
	"net"
	nethttp "net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/discovery"
)

// BenchmarkProxy measures the proxy's HTTP/1.1 path in process: keep-alive
// clients → Proxy → 4 Go backends answering a fixed 37-byte body, as
// bench/router does across processes, behind the plain port's own server
// (h1, as the router serves plain HTTP) and behind net/http's (as it
// serves HTTPS, without the TLS). allocs/op counts the whole process
// (client, router and backends); the client reuses its buffers, so the
// difference between two runs is the router's.
//
//	go test -run '^$' -bench Proxy -benchmem ./router/
func BenchmarkProxy(b *testing.B) {
	for _, ps := range plainServers {
		b.Run(ps.name+"/plain", func(b *testing.B) { benchProxy(b, ps, Config{}) })
		b.Run(ps.name+"/observed", func(b *testing.B) {
			// The access log and metrics on, as in production.
			benchProxy(b, ps, Config{AccessLog: io.Discard, Registry: prometheus.NewRegistry()})
		})
	}
}

var benchBody = []byte("Hello from a pier benchmark backend.\n")

func benchProxy(b *testing.B, ps plainServer, cfg Config) {
	fw := newFakeWatcher()
	cl := []string{strconv.Itoa(len(benchBody))}
	ct := []string{"text/plain; charset=utf-8"}
	for i := range 4 {
		s := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
			h := w.Header()
			h["Content-Length"] = cl
			h["Content-Type"] = ct
			w.Write(benchBody)
		}))
		b.Cleanup(s.Close)
		fw.add("svc", discovery.Instance{ID: "b" + strconv.Itoa(i), Addr: s.Listener.Addr().String(), Proto: "http"})
	}
	cfg.BackendWait = 2 * time.Second
	p := NewProxy(fw, cfg)
	tb, errs := NewTable([]api.Route{route("r1", "bench.test", "", "svc")})
	if len(errs) > 0 {
		b.Fatal(errs)
	}
	p.SetTable(tb)
	b.Cleanup(p.Close)
	s := ps.serve(b, p)
	addr := s.Listener.Addr().String()
	req := []byte("GET /some/path?q=1 HTTP/1.1\r\nHost: bench.test\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")

	b.ReportAllocs()
	b.SetParallelism(8) // 8 × GOMAXPROCS keep-alive connections
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer conn.Close()
		br := bufio.NewReader(conn)
		for pb.Next() {
			if _, err := conn.Write(req); err != nil {
				b.Error(err)
				return
			}
			if err := readBenchResponse(br); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// readBenchResponse reads one response with a Content-Length without
// allocating: status line, headers, then the body.
func readBenchResponse(br *bufio.Reader) error {
	n := -1
	status := true
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if status {
			if len(line) < 12 || string(line[9:12]) != "200" {
				return &benchError{string(line)}
			}
			status = false
			continue
		}
		if len(line) <= 2 {
			break
		}
		const k = "Content-Length: "
		if len(line) > len(k) && string(line[:len(k)]) == k {
			n, _ = strconv.Atoi(string(line[len(k) : len(line)-2]))
		}
	}
	if n < 0 {
		return &benchError{"no Content-Length"}
	}
	_, err := br.Discard(n)
	return err
}

type benchError struct{ s string }

func (e *benchError) Error() string { return "bench: unexpected response: " + e.s }
