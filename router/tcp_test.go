package router

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/discovery"
	"github.com/pierpaas/pier/store/storetest"
)

// tcpEnv is a TCPProxy whose backends come from a real discovery registry
// over an in-process etcd, as in production.
type tcpEnv struct {
	t   *testing.T
	reg *discovery.Registry
	bs  *Backends
	tp  *TCPProxy
	log *tcpLogBuffer
}

func newTCPEnv(t *testing.T, cfg TCPConfig) *tcpEnv {
	t.Helper()
	c := storetest.NewCluster(t, 1)
	e := &tcpEnv{t: t, reg: discovery.New(c.Client()), log: &tcpLogBuffer{}}
	e.bs = NewBackends(e.reg)
	cfg.ListenHost = "127.0.0.1"
	if cfg.PortLow == 0 && cfg.PortHigh == 0 {
		cfg.PortLow, cfg.PortHigh = 1024, 65535
	}
	cfg.Log = slog.New(slog.NewTextHandler(e.log, nil))
	e.tp = NewTCPProxy(e.bs, cfg)
	t.Cleanup(func() { e.tp.Close(); e.bs.Close() })
	return e
}

func (e *tcpEnv) setRoutes(routes ...api.Route) {
	e.t.Helper()
	tb, errs := NewTable(routes)
	if len(errs) > 0 {
		e.t.Fatal(errs)
	}
	e.tp.SetTable(tb)
}

func (e *tcpEnv) register(service, addr string) *discovery.Registration {
	e.t.Helper()
	g, err := e.reg.Register(e.t.Context(), service, discovery.Instance{Addr: addr, Proto: "tcp"})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { g.Close() })
	return g
}

func tcpRoute(id string, port int, service string) api.Route {
	return api.Route{ID: id, Type: api.RouteTCP, Port: port, Service: service, CreatedAt: t0}
}

// tcpEchoBackend greets each connection with "<name>\n", then echoes, and
// half-closes its side when the client has: a client that sees EOF after
// its own half-close proves the proxy passes half-closes both ways.
func tcpEchoBackend(t *testing.T, name string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	// Cleanups run before the proxy's: close what it may still hold open.
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				io.WriteString(c, name+"\n")
				io.Copy(c, c)
				c.(*net.TCPConn).CloseWrite()
				// Hold the connection until the proxy closes it.
				io.Copy(io.Discard, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// tcpDeadAddr is an address nothing listens on: dialling it is refused.
func tcpDeadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func tcpFreePort(t *testing.T) int {
	t.Helper()
	_, p, _ := net.SplitHostPort(tcpDeadAddr(t))
	n, _ := strconv.Atoi(p)
	return n
}

// tcpClient is a connection through the proxy and the backend that
// greeted it.
type tcpClient struct {
	net.Conn
	r    *bufio.Reader
	name string
}

func tcpDial(t *testing.T, port int) *tcpClient {
	t.Helper()
	c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	name, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("port %d: no greeting from a backend: %v", port, err)
	}
	return &tcpClient{Conn: c, r: r, name: strings.TrimSuffix(name, "\n")}
}

func (c *tcpClient) echo(t *testing.T, msg string) {
	t.Helper()
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		t.Fatalf("write through %s: %v", c.name, err)
	}
	got, err := c.r.ReadString('\n')
	if err != nil || got != msg+"\n" {
		t.Fatalf("echo through %s: %q, %v", c.name, got, err)
	}
}

// waitClosed waits for the proxy to close c and says how long it took.
func (c *tcpClient) waitClosed(t *testing.T) time.Duration {
	t.Helper()
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, c.r)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection to %s still open after 10s", c.name)
	}
	return time.Since(start)
}

func tcpRefused(port int) bool {
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 2*time.Second)
	if err != nil {
		return true
	}
	c.Close()
	return false
}

func tcpEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *tcpEnv) inflight(service string) map[string]int64 {
	m := make(map[string]int64)
	for _, b := range e.bs.List(e.t.Context(), service) {
		m[b.Instance.Addr] = b.InFlight()
	}
	return m
}

type tcpLogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *tcpLogBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *tcpLogBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestTCPProxyEchoAndHalfClose(t *testing.T) {
	e := newTCPEnv(t, TCPConfig{})
	a := tcpEchoBackend(t, "a")
	e.register("echo", a)
	port := tcpFreePort(t)
	e.setRoutes(tcpRoute("r1", port, "echo"))
	if got := e.tp.Ports(); len(got) != 1 || got[0] != port {
		t.Fatalf("Ports() = %v, want [%d]", got, port)
	}

	c := tcpDial(t, port)
	c.echo(t, "hello")
	if n := e.inflight("echo")[a]; n != 1 {
		t.Errorf("in flight on the backend while connected: %d, want 1", n)
	}
	// Half-close: the backend must see EOF, echo what came before it and
	// half-close back, while our read side stays open.
	io.WriteString(c, "last words")
	c.Conn.(*net.TCPConn).CloseWrite()
	rest, err := io.ReadAll(c.r)
	if err != nil || string(rest) != "last words" {
		t.Fatalf("after half-close: %q, %v", rest, err)
	}
	tcpEventually(t, "in-flight count not released", func() bool { return e.inflight("echo")[a] == 0 })
}

func TestTCPProxySpreadsConnections(t *testing.T) {
	e := newTCPEnv(t, TCPConfig{})
	e.register("echo", tcpEchoBackend(t, "a"))
	e.register("echo", tcpEchoBackend(t, "b"))
	port := tcpFreePort(t)
	e.setRoutes(tcpRoute("r1", port, "echo"))

	// Connections held open: with two backends the power of two choices
	// always compares both, so the counts can differ by at most one.
	count := map[string]int{}
	var conns []*tcpClient
	for range 20 {
		c := tcpDial(t, port)
		count[c.name]++
		conns = append(conns, c)
	}
	if count["a"] < 9 || count["b"] < 9 {
		t.Fatalf("connections per backend: %v, want about 10 each", count)
	}
	var total int64
	for _, n := range e.inflight("echo") {
		total += n
	}
	if total != 20 {
		t.Errorf("in flight: %v, want 20 in all", e.inflight("echo"))
	}
	for _, c := range conns {
		c.echo(t, "ping")
		c.Close()
	}
	tcpEventually(t, "in-flight counts not released", func() bool {
		for _, n := range e.inflight("echo") {
			if n != 0 {
				return false
			}
		}
		return true
	})
}

func TestTCPProxyRemovedRouteDrains(t *testing.T) {
	e := newTCPEnv(t, TCPConfig{DrainTimeout: time.Minute})
	e.register("echo", tcpEchoBackend(t, "a"))
	port := tcpFreePort(t)
	r := tcpRoute("r1", port, "echo")
	const drain = 500 * time.Millisecond
	r.DrainTimeout = api.Duration(drain) // the route's own, not the default minute
	e.setRoutes(r)
	c := tcpDial(t, port)

	removed := time.Now()
	e.setRoutes()
	if got := e.tp.Ports(); len(got) != 0 {
		t.Fatalf("Ports() after removal = %v", got)
	}
	if !tcpRefused(port) {
		t.Fatal("removed route still accepts connections")
	}
	c.echo(t, "still here") // draining, not cut
	c.waitClosed(t)
	if d := time.Since(removed); d < drain-50*time.Millisecond {
		t.Fatalf("connection closed %v after removal, before the %v drain", d, drain)
	}
}

func TestTCPProxySwitchesServiceInPlace(t *testing.T) {
	e := newTCPEnv(t, TCPConfig{DrainTimeout: time.Minute})
	e.register("svc-a", tcpEchoBackend(t, "a"))
	e.register("svc-b", tcpEchoBackend(t, "b"))
	port := tcpFreePort(t)
	r1 := tcpRoute("r1", port, "svc-a")
	r1.DrainTimeout = api.Duration(300 * time.Millisecond)
	e.setRoutes(r1)
	old := tcpDial(t, port)

	// Same route, another service: new connections go there, the
	// listener and the old connection stay.
	r1.Service = "svc-b"
	e.setRoutes(r1)
	if c := tcpDial(t, port); c.name != "b" {
		t.Fatalf("after the switch: reached %s, want b", c.name)
	}
	old.echo(t, "kept")
	time.Sleep(500 * time.Millisecond) // past r1's drain timeout
	old.echo(t, "still kept")

	// Another route takes the port: r1's connections drain, the port
	// keeps listening for r2.
	e.setRoutes(tcpRoute("r2", port, "svc-a"))
	if c := tcpDial(t, port); c.name != "a" {
		t.Fatalf("after r2 took the port: reached %s, want a", c.name)
	}
	if d := old.waitClosed(t); d > 5*time.Second {
		t.Fatalf("r1's connection closed after %v", d)
	}
}

func TestTCPProxyIgnoresPortOutsideRange(t *testing.T) {
	in, out := tcpFreePort(t), tcpFreePort(t)
	e := newTCPEnv(t, TCPConfig{PortLow: in, PortHigh: in})
	e.register("echo", tcpEchoBackend(t, "a"))
	e.setRoutes(tcpRoute("r-in", in, "echo"), tcpRoute("r-out", out, "echo"))
	if got := e.tp.Ports(); len(got) != 1 || got[0] != in {
		t.Fatalf("Ports() = %v, want only %d", got, in)
	}
	if in != out && !tcpRefused(out) {
		t.Fatalf("port %d outside the range accepts connections", out)
	}
	if log := e.log.String(); !strings.Contains(log, "outside the port range") || !strings.Contains(log, "r-out") {
		t.Fatalf("no error logged for the route outside the range:\n%s", log)
	}
	tcpDial(t, in).echo(t, "in range")
}

func TestTCPProxyRetriesDialOnAnotherBackend(t *testing.T) {
	e := newTCPEnv(t, TCPConfig{})
	e.register("echo", tcpDeadAddr(t))
	live := tcpEchoBackend(t, "live")
	e.register("echo", live)
	port := tcpFreePort(t)
	e.setRoutes(tcpRoute("r1", port, "echo"))

	// Connections held open load the live backend, so from the second on
	// the dead one (nothing in flight) is always picked first: every
	// connection after that reaches "live" only by the retry.
	for range 6 {
		if c := tcpDial(t, port); c.name != "live" {
			t.Fatalf("reached %q", c.name)
		}
	}
	if n := e.inflight("echo")[live]; n != 6 {
		t.Fatalf("in flight on the live backend: %d, want 6", n)
	}
}

func TestTCPProxyLeaderOnly(t *testing.T) {
	e := newTCPEnv(t, TCPConfig{})
	first := e.register("db", tcpEchoBackend(t, "first"))
	e.register("db", tcpEchoBackend(t, "second"))
	port := tcpFreePort(t)
	r := tcpRoute("r1", port, "db")
	r.LeaderOnly = true
	e.setRoutes(r)
	// The leader takes every connection, however loaded.
	for range 4 {
		if c := tcpDial(t, port); c.name != "first" {
			t.Fatalf("leader-only route reached %q, want the oldest instance", c.name)
		}
	}
	// The leader leaves: the next oldest takes over.
	first.Close()
	tcpEventually(t, "no new leader", func() bool {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		name, _ := bufio.NewReader(c).ReadString('\n')
		return name == "second\n"
	})
}

func TestTCPProxyNoBackendClosesClient(t *testing.T) {
	e := newTCPEnv(t, TCPConfig{})
	port := tcpFreePort(t)
	e.setRoutes(tcpRoute("r1", port, "nobody"))
	c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := c.Read(make([]byte, 1))
	var ne net.Error
	if n != 0 || err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("client of a service without backends: read %d, %v; want it closed", n, err)
	}
	if !strings.Contains(e.log.String(), "no healthy backend") {
		t.Fatalf("no warning logged:\n%s", e.log.String())
	}
}

func TestTCPProxyBindFailureRetried(t *testing.T) {
	e := newTCPEnv(t, TCPConfig{BindRetry: 50 * time.Millisecond})
	e.register("echo", tcpEchoBackend(t, "a"))
	squatter, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := squatter.Addr().(*net.TCPAddr).Port
	other := tcpFreePort(t)
	e.setRoutes(tcpRoute("r1", port, "echo"), tcpRoute("r2", other, "echo"))
	// The busy port is not fatal: the other route works meanwhile.
	if got := e.tp.Ports(); len(got) != 1 || got[0] != other {
		t.Fatalf("Ports() with %d taken = %v, want [%d]", port, got, other)
	}
	if !strings.Contains(e.log.String(), "cannot listen") {
		t.Fatalf("bind failure not logged:\n%s", e.log.String())
	}
	tcpDial(t, other).echo(t, "meanwhile")
	squatter.Close()
	tcpEventually(t, "freed port never bound", func() bool { return len(e.tp.Ports()) == 2 })
	tcpDial(t, port).echo(t, "bound at last")
}

func TestTCPProxyClose(t *testing.T) {
	e := newTCPEnv(t, TCPConfig{DrainTimeout: time.Minute})
	e.register("echo", tcpEchoBackend(t, "a"))
	port := tcpFreePort(t)
	e.setRoutes(tcpRoute("r1", port, "echo"))
	c := tcpDial(t, port)
	start := time.Now()
	e.tp.Close() // at once, no drain
	if d := c.waitClosed(t); d > 5*time.Second || time.Since(start) > 5*time.Second {
		t.Fatalf("Close took %v", time.Since(start))
	}
	if !tcpRefused(port) || len(e.tp.Ports()) != 0 {
		t.Fatal("still listening after Close")
	}
	e.setRoutes(tcpRoute("r1", port, "echo")) // a no-op once closed
	if !tcpRefused(port) {
		t.Fatal("SetTable after Close listened again")
	}
}

// tcpSilentBackend reads each connection to its end and then holds it,
// never answering nor closing, as a stuck server would.
func tcpSilentBackend(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() { close(stop); ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				io.Copy(io.Discard, c)
				<-stop
			}()
		}
	}()
	return ln.Addr().String()
}

// A client that half-closed towards a silent backend leaves the proxy
// blocked on the backend side only: drain and Close must close that side
// too, or the connection (and Close) would hang for ever.
func TestTCPProxyClosesHalfClosedConnections(t *testing.T) {
	e := newTCPEnv(t, TCPConfig{})
	quiet := tcpSilentBackend(t)
	e.register("quiet", quiet)
	port := tcpFreePort(t)
	r := tcpRoute("r1", port, "quiet")
	r.DrainTimeout = api.Duration(200 * time.Millisecond)
	e.setRoutes(r)
	halfClosed := func() *net.TCPConn {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.(*net.TCPConn).CloseWrite()
		return c.(*net.TCPConn)
	}

	c := halfClosed()
	tcpEventually(t, "connection never reached the backend", func() bool { return e.inflight("quiet")[quiet] == 1 })
	e.setRoutes()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Fatalf("half-closed connection not closed by the drain: %v", err)
	}
	tcpEventually(t, "backend side still held after the drain", func() bool { return e.inflight("quiet")[quiet] == 0 })

	e.setRoutes(r)
	halfClosed()
	tcpEventually(t, "connection never reached the backend", func() bool { return e.inflight("quiet")[quiet] == 1 })
	closed := make(chan struct{})
	go func() { e.tp.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs on a half-closed connection")
	}
}
