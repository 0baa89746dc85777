package router

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	nethttp "net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pierpaas/pier/discovery"
)

// killableBackend is an HTTP backend that can die as under kill -9: its
// listener and every connection close at once, without a response or a
// graceful shutdown.
type killableBackend struct {
	active atomic.Int64 // requests in its handler
	ln     net.Listener
	srv    *nethttp.Server
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	dead   bool
}

func newKillableBackend(t *testing.T, name string) *killableBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	k := &killableBackend{ln: ln, conns: map[net.Conn]struct{}{}}
	k.srv = &nethttp.Server{
		Handler: nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
			k.active.Add(1)
			defer k.active.Add(-1)
			io.Copy(io.Discard, r.Body)
			time.Sleep(time.Millisecond) // requests are in flight when it dies
			io.WriteString(w, name)
		}),
		ConnState: func(c net.Conn, s nethttp.ConnState) {
			k.mu.Lock()
			defer k.mu.Unlock()
			switch s {
			case nethttp.StateNew:
				if k.dead {
					c.Close()
					return
				}
				k.conns[c] = struct{}{}
			case nethttp.StateClosed, nethttp.StateHijacked:
				delete(k.conns, c)
			}
		},
	}
	go k.srv.Serve(ln)
	t.Cleanup(func() { k.srv.Close() })
	return k
}

func (k *killableBackend) addr() string { return k.ln.Addr().String() }

func (k *killableBackend) kill() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.dead = true
	k.ln.Close()
	for c := range k.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0) // a reset, as the kernel sends for a killed process with unread data
		}
		c.Close()
	}
}

// TestServerBackendKilledUnderLoad is the failure case: a backend
// of a loaded service dies abruptly, and discovery drops its instance
// ~100ms later (in production: when its host agent's health check or
// lease says so). Requests may fail only before the removal reaches the
// router, and only those the dying backend had in flight; none after.
func TestServerBackendKilledUnderLoad(t *testing.T) {
	e := newRouterEnv(t)
	victim := newKillableBackend(t, "victim")
	survivor := newKillableBackend(t, "survivor")
	var regs []*discovery.Registration
	for _, k := range []*killableBackend{victim, survivor} {
		g, err := e.reg.Register(e.ctx, "web.load", discovery.Instance{Addr: k.addr(), Proto: "http"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { g.Close() })
		regs = append(regs, g)
	}
	e.deployApp("load", 1, "web")
	srv := e.start()

	type result struct {
		start time.Time
		err   error
	}
	var (
		mu      sync.Mutex
		results []result
		stop    atomic.Bool
		wg      sync.WaitGroup
	)
	const clients = 8
	url := "http://" + srv.Addr() + "/"
	for i := range clients {
		// Half GET, half POST with a body: a POST whose body reached the
		// dying backend cannot be sent again.
		method := "GET"
		if i%2 == 1 {
			method = "POST"
		}
		wg.Go(func() {
			tr := &nethttp.Transport{}
			defer tr.CloseIdleConnections()
			c := &nethttp.Client{Transport: tr, Timeout: 10 * time.Second}
			for !stop.Load() {
				start := time.Now()
				var body io.Reader
				if method == "POST" {
					body = strings.NewReader("some form data")
				}
				req, _ := nethttp.NewRequest(method, url, body)
				req.Host = "load.localhost"
				var err error
				resp, derr := c.Do(req)
				if derr != nil {
					err = derr
				} else {
					b, rerr := io.ReadAll(resp.Body)
					resp.Body.Close()
					switch {
					case rerr != nil:
						err = rerr
					case resp.StatusCode != 200:
						err = fmt.Errorf("status %d: %q", resp.StatusCode, b)
					}
				}
				if err != nil {
					err = fmt.Errorf("%s: %w", method, err)
				}
				mu.Lock()
				results = append(results, result{start, err})
				mu.Unlock()
			}
		})
	}

	time.Sleep(300 * time.Millisecond) // both serve under load
	if victim.connCount() == 0 {
		t.Fatal("the victim served nothing before it died")
	}
	killed := time.Now()
	inFlight := victim.active.Load()
	victim.kill()
	time.Sleep(100 * time.Millisecond)
	regs[0].Close() // discovery drops the instance
	ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
	defer cancel()
	for len(srv.Proxy().Backends().List(ctx, "web.load")) != 1 {
		if ctx.Err() != nil {
			t.Fatal("the router never applied the removal")
		}
		time.Sleep(100 * time.Microsecond)
	}
	applied := time.Now()
	time.Sleep(500 * time.Millisecond) // load on the survivor alone
	stop.Store(true)
	wg.Wait()

	var total, before, failedBefore, failedAfter int
	var firstErrs []error
	for _, r := range results {
		total++
		if r.start.Before(applied) {
			before++
			if r.err != nil {
				failedBefore++
				firstErrs = append(firstErrs, r.err)
			}
		} else if r.err != nil {
			failedAfter++
			firstErrs = append(firstErrs, r.err)
		}
	}
	t.Logf("%d requests by %d clients; the victim had %d in its handler when killed; removal applied %v later; %d requests before it, %d failed; %d failed after it",
		total, clients, inFlight, applied.Sub(killed).Round(time.Millisecond), before, failedBefore, failedAfter)
	if len(firstErrs) > 0 {
		t.Logf("failures: %v", errors.Join(firstErrs[:min(len(firstErrs), 8)]...))
	}
	if failedAfter > 0 {
		t.Errorf("%d requests failed after the removal was applied", failedAfter)
	}
	// At most those in flight to the victim when it died: one per client.
	if failedBefore > clients {
		t.Errorf("%d requests failed before the removal, more than the %d that can have been in flight", failedBefore, clients)
	}
}

func (k *killableBackend) connCount() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.conns)
}
