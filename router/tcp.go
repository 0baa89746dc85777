package router

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/pierpaas/pier/api"
)

// TCPConfig configures a TCPProxy. Zero durations take the defaults shown.
type TCPConfig struct {
	// ListenHost is the address TCP routes' ports are bound on: "" (or
	// "0.0.0.0") for every interface, "127.0.0.1" for tests.
	ListenHost string
	// PortLow and PortHigh bound the ports TCP routes may use, both
	// included. A route outside them is ignored (and logged), so that a
	// route can never take the router's own HTTP ports, or those of the
	// store or the host agent on the same machine. Zero ports allow none.
	PortLow, PortHigh int
	// DialTimeout bounds connecting to a backend (default 10s).
	DialTimeout time.Duration
	// DrainTimeout is how long connections of a removed route may go on
	// when the route sets no DrainTimeout of its own (default 30s).
	DrainTimeout time.Duration
	// BackendWait bounds how long the first connection of a service waits
	// for its discovery watch's first listing (default 5s).
	BackendWait time.Duration
	// BindRetry is how soon a port that could not be bound is tried again
	// without waiting for the next SetTable (default 5s).
	BindRetry time.Duration
	// Log receives the proxy's logs; slog.Default() when nil.
	Log *slog.Logger
}

// TCPProxy serves the TCP routes of a Table: one listener per route port,
// each connection spliced to a backend of the route's service. SetTable
// changes its listeners in place; nothing restarts.
type TCPProxy struct {
	bs  *Backends
	cfg TCPConfig

	ctx    context.Context // ends at the hard close: aborts waits and dials
	cancel context.CancelFunc

	mu        sync.Mutex
	closed    bool
	table     *Table
	listeners map[int]*tcpListener
	conns     map[*tcpConn]*tcpGen // connections alive, by route generation
	ignored   map[string]bool      // "<route>:<port>" out of range, logged once
	bindErrs  map[int]string       // last bind error per port, logged when it changes
	retry     *time.Timer

	acceptWG sync.WaitGroup // accept loops
	connWG   sync.WaitGroup // connection handlers
}

// tcpListener is one bound route port. route and gen are guarded by
// TCPProxy.mu; the accept loop reads both in the same critical section in
// which it registers a connection, so a connection always belongs to the
// route it was routed by.
type tcpListener struct {
	port  int
	ln    net.Listener
	route *api.Route
	gen   *tcpGen
}

// tcpGen groups the connections accepted for one route ID on one port, so
// that a route replaced by another on the same port drains its own
// connections while the listener stays open.
type tcpGen struct {
	drained bool // the drain timeout passed: connections are closed
}

// tcpConn is one proxied connection. Closing it closes both sides: a
// client that half-closed while its backend stays silent leaves one copy
// blocked on the backend alone, which closing the client would not end.
type tcpConn struct {
	client net.Conn
	mu     sync.Mutex
	up     net.Conn // nil until dialled
	closed bool
}

// setUp records the backend side; false if c was closed meanwhile.
func (c *tcpConn) setUp(up net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.up = up
	return true
}

func (c *tcpConn) Close() {
	c.mu.Lock()
	c.closed = true
	up := c.up
	c.mu.Unlock()
	c.client.Close()
	if up != nil {
		up.Close()
	}
}

// NewTCPProxy returns a proxy whose backends come from bs. It does not
// call bs.Retain: the owner of bs (the HTTP Proxy, whose SetTable keeps
// every service the whole table names, TCP routes included) does. It
// listens on nothing until SetTable.
func NewTCPProxy(bs *Backends, cfg TCPConfig) *TCPProxy {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.DialTimeout, 10*time.Second)
	def(&cfg.DrainTimeout, 30*time.Second)
	def(&cfg.BackendWait, 5*time.Second)
	def(&cfg.BindRetry, 5*time.Second)
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &TCPProxy{
		bs: bs, cfg: cfg, ctx: ctx, cancel: cancel,
		listeners: make(map[int]*tcpListener),
		conns:     make(map[*tcpConn]*tcpGen),
		ignored:   make(map[string]bool),
		bindErrs:  make(map[int]string),
	}
}

// SetTable makes the listeners match t's TCP routes: it binds the ports
// of new routes, closes those of vanished routes (their connections get
// the route's drain timeout, then are closed) and points kept ports at
// their route's current service, for new connections. A port that cannot
// be bound is logged and tried again after BindRetry and on every
// SetTable; it never fails the router.
func (p *TCPProxy) SetTable(t *Table) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.setTableLocked(t)
}

// reapply binds again the ports that failed. It applies the latest table
// under the same lock it reads it with, so it never reverts a newer one.
func (p *TCPProxy) reapply() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.retry = nil
	p.setTableLocked(p.table)
}

func (p *TCPProxy) setTableLocked(t *Table) {
	if p.closed {
		return
	}
	p.table = t
	want := make(map[int]*api.Route)
	ignored := make(map[string]bool)
	for _, r := range t.Routes() {
		if r.Type != api.RouteTCP {
			continue
		}
		if r.Port < p.cfg.PortLow || r.Port > p.cfg.PortHigh {
			key := r.ID + ":" + strconv.Itoa(r.Port)
			if !p.ignored[key] {
				p.cfg.Log.Error("router: tcp route outside the port range, ignored",
					"route", r.ID, "port", r.Port, "range", strconv.Itoa(p.cfg.PortLow)+"-"+strconv.Itoa(p.cfg.PortHigh))
			}
			ignored[key] = true
			continue
		}
		want[r.Port] = r
	}
	p.ignored = ignored

	for port, l := range p.listeners {
		if want[port] == nil {
			l.ln.Close()
			p.drainLocked(l.gen, l.route)
			delete(p.listeners, port)
			p.cfg.Log.Info("router: tcp route removed", "route", l.route.ID, "port", port)
		}
	}
	failed := false
	for port, r := range want {
		if l := p.listeners[port]; l != nil {
			if l.route.ID != r.ID {
				// Another route took the port: the old one's
				// connections drain, the listener stays.
				p.drainLocked(l.gen, l.route)
				l.gen = &tcpGen{}
			}
			l.route = r
			continue
		}
		addr := net.JoinHostPort(p.cfg.ListenHost, strconv.Itoa(port))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			failed = true
			if msg := err.Error(); p.bindErrs[port] != msg {
				p.bindErrs[port] = msg
				p.cfg.Log.Error("router: cannot listen for tcp route; will retry", "route", r.ID, "addr", addr, "err", err)
			}
			continue
		}
		delete(p.bindErrs, port)
		l := &tcpListener{port: port, ln: ln, route: r, gen: &tcpGen{}}
		p.listeners[port] = l
		p.acceptWG.Add(1)
		go p.accept(l)
		p.cfg.Log.Info("router: tcp route listening", "route", r.ID, "addr", ln.Addr().String(), "service", r.Service)
	}
	for port := range p.bindErrs {
		if want[port] == nil {
			delete(p.bindErrs, port)
		}
	}
	if failed && p.retry == nil {
		p.retry = time.AfterFunc(p.cfg.BindRetry, p.reapply)
	}
}

// drainLocked closes g's connections once r's drain timeout has passed;
// those that end earlier are simply gone from p.conns by then.
func (p *TCPProxy) drainLocked(g *tcpGen, r *api.Route) {
	d := time.Duration(r.DrainTimeout)
	if d <= 0 {
		d = p.cfg.DrainTimeout
	}
	time.AfterFunc(d, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		g.drained = true
		for c, cg := range p.conns {
			if cg == g {
				c.Close()
			}
		}
	})
}

// Ports lists the ports bound for TCP routes, sorted.
func (p *TCPProxy) Ports() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	ports := make([]int, 0, len(p.listeners))
	for port := range p.listeners {
		ports = append(ports, port)
	}
	slices.Sort(ports)
	return ports
}

// Close stops listening and closes every connection at once, without a
// drain: it runs at process shutdown, when a TCP client (typically of a
// database) would rather reconnect to another router now than be held
// for a drain timeout. Shutdown drains instead.
func (p *TCPProxy) Close() {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p.Shutdown(ctx)
}

// Shutdown stops listening at once, waits until ctx ends for connections
// to finish on their own, then closes the rest and returns ctx's error
// (nil if none was left).
func (p *TCPProxy) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		for port, l := range p.listeners {
			l.ln.Close()
			delete(p.listeners, port)
		}
		if p.retry != nil {
			p.retry.Stop()
		}
	}
	p.mu.Unlock()
	// Once the accept loops are gone no connection can be added, so the
	// wait below cannot race with connWG.Add.
	p.acceptWG.Wait()
	done := make(chan struct{})
	go func() { p.connWG.Wait(); close(done) }()
	select {
	case <-done:
		p.cancel()
		return nil
	case <-ctx.Done():
	}
	p.cancel()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	<-done
	return ctx.Err()
}

func (p *TCPProxy) accept(l *tcpListener) {
	defer p.acceptWG.Done()
	var backoff time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait, as
			// net/http does, rather than spin or give up the port.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			p.cfg.Log.Warn("router: tcp accept failed", "port", l.port, "err", err)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		p.mu.Lock()
		r, g := l.route, l.gen
		tc := &tcpConn{client: c}
		ok := !p.closed && !g.drained
		if ok {
			p.conns[tc] = g
			p.connWG.Add(1)
		}
		p.mu.Unlock()
		if !ok {
			c.Close()
			continue
		}
		go p.serve(tc, r)
	}
}

// serve routes one client connection by r and splices it to a backend.
func (p *TCPProxy) serve(tc *tcpConn, r *api.Route) {
	defer p.connWG.Done()
	defer func() {
		p.mu.Lock()
		delete(p.conns, tc)
		p.mu.Unlock()
		tc.Close()
	}()
	// Built only when something goes wrong: the happy path logs nothing.
	warn := func(msg string, args ...any) {
		args = append(args, "route", r.ID, "port", r.Port, "service", r.Service, "client", tc.client.RemoteAddr().String())
		p.cfg.Log.Warn(msg, args...)
	}

	b := p.pick(r, nil)
	if b == nil {
		warn("router: no healthy backend for tcp connection")
		return
	}
	// The connection counts as in flight from the dial on, so that
	// concurrent picks already see the load it is about to add.
	b.inflight.Add(1)
	up, err := p.dial(b)
	if err != nil && !r.LeaderOnly {
		// Nothing was sent yet: another backend, once. A leader-only
		// route has no other backend to try.
		warn("router: tcp backend dial failed; retrying on another", "backend", b.Instance.Addr, "err", err)
		b.inflight.Add(-1)
		if b = p.pick(r, b); b == nil {
			return
		}
		b.inflight.Add(1)
		up, err = p.dial(b)
	}
	defer b.inflight.Add(-1)
	if err != nil {
		warn("router: tcp backend dial failed", "backend", b.Instance.Addr, "err", err)
		return
	}
	if !tc.setUp(up) { // drained or closed while dialling
		up.Close()
		return
	}
	tcpSplice(tc.client, up)
}

// pick chooses the backend of a new connection: the discovery leader
// for a leader-only route, else by the power of two choices.
func (p *TCPProxy) pick(r *api.Route, exclude *Backend) *Backend {
	ctx, cancel := context.WithTimeout(p.ctx, p.cfg.BackendWait)
	defer cancel()
	if r.LeaderOnly {
		// Never a follower: while discovery names no leader (the old
		// one just left) the connection is refused, not misrouted.
		return p.bs.Leader(ctx, r.Service)
	}
	return p.bs.Pick(ctx, r.Service, exclude)
}

func (p *TCPProxy) dial(b *Backend) (net.Conn, error) {
	d := net.Dialer{Timeout: p.cfg.DialTimeout}
	return d.DialContext(p.ctx, "tcp", b.Instance.Addr)
}

// tcpSplice copies both ways until both directions ended, then closes both
// connections. An end of file in one direction is passed on as a
// half-close, so protocols where one side finishes sending and then
// waits for the answer keep working; an error in either direction closes
// both at once, which also unblocks the other copy.
func tcpSplice(client, up net.Conn) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		tcpPipe(up, client)
	}()
	tcpPipe(client, up)
	<-done
	client.Close()
	up.Close()
}

func tcpPipe(dst, src net.Conn) {
	_, err := io.Copy(dst, src) // *net.TCPConn to *net.TCPConn: splice(2) on Linux
	if err == nil {
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			err = cw.CloseWrite()
		} else {
			err = dst.Close()
		}
	}
	if err != nil {
		dst.Close()
		src.Close()
	}
}
