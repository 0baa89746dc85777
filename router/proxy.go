package router

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	nethttp "net/http" // "http" is a helper of table_test.go
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pierpaas/pier/api"
)

// Config tunes the proxy. Zero fields take the defaults shown; no
// default cuts a slow but live backend short.
type Config struct {
	// DialTimeout bounds connecting to a backend (default 10s).
	DialTimeout time.Duration
	// KeepAlive is the TCP keep-alive period of backend connections
	// (default 30s).
	KeepAlive time.Duration
	// ResponseHeaderTimeout bounds the wait for a backend's response
	// headers once the request is sent; 0 means no limit.
	ResponseHeaderTimeout time.Duration
	// IdleConnTimeout closes idle backend connections (default 90s).
	IdleConnTimeout time.Duration
	// MaxIdleConns is the idle pool size across backends (default 10000);
	// MaxIdleConnsPerHost per backend (default 1000). The direct path's
	// pools (fastpath.go) are per backend and heed MaxIdleConnsPerHost and
	// IdleConnTimeout; MaxIdleConns bounds the ReverseProxy path's.
	MaxIdleConns        int
	MaxIdleConnsPerHost int
	// BackendWait bounds how long the first request of a service waits
	// for its discovery watch's first listing (default 5s).
	BackendWait time.Duration
	// FlushInterval is passed to httputil.ReverseProxy (0: its default,
	// which streams event streams and bodies of unknown length at once,
	// as the direct path does). Any other value sends every request
	// through ReverseProxy.
	FlushInterval time.Duration
	// ErrorLog receives proxy errors; nil discards them.
	ErrorLog func(r *nethttp.Request, err error)

	// The fields below have ServerConfig twins, which Start copies here.

	// HTTPSPort is the port redirect_https routes send clients to; 0 and
	// 443 leave it out of the URL.
	HTTPSPort int
	// GetCertificate answers TLS handshakes for names the table has no
	// certificate for (ACME routes); nil fails them.
	GetCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// StickyKey signs sticky-session cookies (HMAC-SHA256); random when
	// empty, which is right for one router only: routers that share
	// traffic need one key, or a client that moves between them loses
	// its backend each time. At least 32 random bytes.
	StickyKey []byte
	// DrainTimeout is how long upgraded connections (websockets) of a
	// removed route may stay open, for routes without a DrainTimeout of
	// their own (default 30s).
	DrainTimeout time.Duration
	// AccessLog receives one JSON line per request; nil logs nothing.
	AccessLog io.Writer
	// Registry receives the per-route metrics; nil keeps none.
	Registry prometheus.Registerer
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.DialTimeout, 10*time.Second)
	def(&c.KeepAlive, 30*time.Second)
	def(&c.IdleConnTimeout, 90*time.Second)
	def(&c.BackendWait, 5*time.Second)
	def(&c.DrainTimeout, 30*time.Second)
	if len(c.StickyKey) == 0 {
		c.StickyKey = make([]byte, 32)
		rand.Read(c.StickyKey)
	}
	if c.MaxIdleConns == 0 {
		c.MaxIdleConns = 10000
	}
	if c.MaxIdleConnsPerHost == 0 {
		c.MaxIdleConnsPerHost = 1000
	}
	return c
}

// Proxy is the router's HTTP handler: it finds the route of a request in
// the current Table, picks a backend of the route's service and proxies
// the request to it.
type Proxy struct {
	cfg      Config
	table    atomic.Pointer[Table]
	backends *Backends
	rp       *httputil.ReverseProxy
	tr       *nethttp.Transport
	dialer   *net.Dialer // the direct path's (fastpath.go)
	swap     sync.Mutex  // orders SetTable's side effects

	certs      atomic.Pointer[certSet] // see tls.go
	certParses atomic.Int64            // for tests: parses are per table, not per handshake
	drain      *drainer                // upgraded connections, see drain.go
	metrics    *metrics                // nil without a Registry
	alog       *accessLog              // nil without an AccessLog
}

// NewProxy returns a proxy whose backends come from w. It routes nothing
// until SetTable.
func NewProxy(w Watcher, cfg Config) *Proxy {
	cfg = cfg.withDefaults()
	p := &Proxy{cfg: cfg, backends: NewBackends(w)}
	p.drain = newDrainer(p)
	if cfg.Registry != nil {
		p.metrics = newMetrics(cfg.Registry)
		p.backends.count = p.metrics.setBackends
	}
	if cfg.AccessLog != nil {
		p.alog = &accessLog{w: cfg.AccessLog}
	}
	dialer := &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: cfg.KeepAlive}
	p.dialer = dialer
	p.tr = &nethttp.Transport{
		Proxy:       nil,
		DialContext: dialer.DialContext,
		// The client's Accept-Encoding goes to the backend as it came;
		// otherwise the transport asks for gzip when the client did not,
		// and then spends the router's CPU decompressing the answer.
		DisableCompression:    true,
		MaxIdleConns:          cfg.MaxIdleConns,
		MaxIdleConnsPerHost:   cfg.MaxIdleConnsPerHost,
		IdleConnTimeout:       cfg.IdleConnTimeout,
		ResponseHeaderTimeout: cfg.ResponseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:       p.rewrite,
		Transport:     &balancer{p: p},
		FlushInterval: cfg.FlushInterval,
		ErrorHandler:  p.proxyError,
		ErrorLog:      nil,
		// Without a pool ReverseProxy allocates a 32 KiB copy buffer per
		// response, and the garbage collector then takes about a quarter
		// of the router's CPU (bench/router).
		BufferPool: copyBuffers{},
	}
	return p
}

// copyBuffers recycles ReverseProxy's copy buffers.
type copyBuffers struct{}

var copyBufferPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (copyBuffers) Get() []byte  { return *copyBufferPool.Get().(*[]byte) }
func (copyBuffers) Put(b []byte) { copyBufferPool.Put(&b) }

// SetTable swaps in a new route table; requests already routed finish on
// the backends they got, and upgraded connections of routes it no longer
// has are closed after their drain timeout. Certificates and metrics
// follow the table; watches of services no route names any more stop.
func (p *Proxy) SetTable(t *Table) {
	p.swap.Lock()
	defer p.swap.Unlock()
	// Certificates and metrics first, so that whoever finds a route in
	// the new table finds them too.
	p.updateCerts(t)
	if p.metrics != nil {
		p.metrics.setRoutes(t)
	}
	p.table.Store(t)
	p.drain.tableChanged()
	keep := make(map[string]bool)
	for _, r := range t.Routes() {
		keep[r.Service] = true
	}
	p.backends.Retain(keep)
}

// Table is the current route table.
func (p *Proxy) Table() *Table { return p.table.Load() }

// Backends is the proxy's backend set.
func (p *Proxy) Backends() *Backends { return p.backends }

// Close stops the discovery watches, closes upgraded connections and
// closes idle backend connections.
func (p *Proxy) Close() {
	p.backends.closeIdle()
	p.backends.Close()
	p.drain.closeAll()
	p.tr.CloseIdleConnections()
}

type ctxKey struct{}

// reqState travels with a request from ServeHTTP to the balancer and back
// to the access log and metrics. One goroutine owns it: ReverseProxy
// calls the balancer from ServeHTTP's.
type reqState struct {
	route     *api.Route
	start     time.Time
	requestID string
	tls       bool
	backend   *Backend     // the last one tried
	upgrade   *upgradeConn // set when the backend switched protocols
}

var (
	errNoBackend = errors.New("no healthy backend")
	errNoLeader  = errors.New("no leader")
)

func (p *Proxy) ServeHTTP(w nethttp.ResponseWriter, r *nethttp.Request) {
	st := &reqState{start: time.Now(), requestID: r.Header.Get("X-Request-Id"), tls: r.TLS != nil}
	if st.requestID == "" {
		st.requestID = newRequestID()
	}
	host := r.Host
	if host == "" {
		host = r.URL.Host
	}
	table := p.table.Load()
	route, ok := table.Lookup(host, r.URL.Path)
	if p.alog != nil || p.metrics != nil {
		// Deferred, so a request that ReverseProxy aborts with a panic
		// (a backend dying mid-body) is counted and logged too.
		var rm *routeMetrics
		if ok && p.metrics != nil {
			if rm = p.metrics.route(route.ID); rm != nil {
				rm.inflight.Inc()
			}
		}
		rec := &recorder{ResponseWriter: w}
		w = rec
		defer p.observe(r, st, rec, rm)
	}
	if !ok {
		errorPage(w, nethttp.StatusNotFound, "404 Not Found: no route for "+NormalizeHost(host)+r.URL.Path)
		return
	}
	st.route = route
	if route.RedirectHTTPS && r.TLS == nil {
		p.redirectHTTPS(w, r)
		return
	}
	if hold, app := table.Held(route); hold != 0 {
		holdPage(w, r, hold, app)
		return
	}
	if p.direct(r) {
		p.serveDirect(w, r, st)
		return
	}
	p.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, st)))
}

// redirectHTTPS answers a plain-HTTP request with a permanent redirect
// that keeps its method and body (308) to the same URL over https.
func (p *Proxy) redirectHTTPS(w nethttp.ResponseWriter, r *nethttp.Request) {
	host := r.Host
	if host == "" {
		host = r.URL.Host
	}
	host = NormalizeHost(host)
	if strings.Contains(host, ":") {
		host = "[" + host + "]" // IPv6 literal
	}
	if port := p.cfg.HTTPSPort; port != 0 && port != 443 {
		host += ":" + strconv.Itoa(port)
	}
	w.Header().Set("Location", "https://"+host+r.URL.RequestURI())
	w.Header().Set("Cache-Control", "no-store") // routes change; browsers cache 308s
	w.WriteHeader(nethttp.StatusPermanentRedirect)
}

func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	in, out := pr.In, pr.Out
	st, _ := in.Context().Value(ctxKey{}).(*reqState)
	out.URL.Scheme = "http"
	out.URL.Host = "backend" // the balancer puts the backend's address here
	out.Host = in.Host
	// Append the client to any X-Forwarded-For it came with.
	if prior, ok := in.Header["X-Forwarded-For"]; ok {
		out.Header["X-Forwarded-For"] = prior
	}
	pr.SetXForwarded()
	var num [20]byte
	out.Header.Set("X-Forwarded-Port", string(appendLocalPort(num[:0], in)))
	start := time.Now()
	if st != nil {
		start = st.start
		if in.Header.Get("X-Request-Id") == "" {
			out.Header.Set("X-Request-Id", st.requestID)
		}
	}
	out.Header.Set("X-Request-Start", "t="+strconv.FormatInt(start.UnixMilli(), 10))
}

// localPort is the router port the request came in on.
func localPort(r *nethttp.Request) string {
	if a, ok := r.Context().Value(nethttp.LocalAddrContextKey).(net.Addr); ok {
		if _, port, err := net.SplitHostPort(a.String()); err == nil {
			return port
		}
	}
	if _, port, err := net.SplitHostPort(r.Host); err == nil {
		return port
	}
	if r.TLS != nil {
		return "443"
	}
	return "80"
}

// newRequestID is 128 random bits in hex. They come from the runtime's
// ChaCha8 generator (math/rand/v2), seeded by the system per thread: as
// unpredictable as crypto/rand for this, at a fraction of its cost.
func newRequestID() string {
	var b [32]byte
	newRequestIDTo(&b)
	return string(b[:])
}

// newRequestIDTo writes a new request ID into b.
func newRequestIDTo(b *[32]byte) {
	for i := 0; i < 32; i += 16 {
		v := mrand.Uint64()
		for j := range 16 {
			b[i+j] = hexDigits[v>>60]
			v <<= 4
		}
	}
}

func (p *Proxy) proxyError(w nethttp.ResponseWriter, r *nethttp.Request, err error) {
	st, _ := r.Context().Value(ctxKey{}).(*reqState)
	p.fail(w, r, st, err)
}

// fail answers a request that could not be proxied: 503 for no backend
// or leader, 502 for a backend that failed, 499 (logged, not sent) for a
// client that went away.
func (p *Proxy) fail(w nethttp.ResponseWriter, r *nethttp.Request, st *reqState, err error) {
	if p.cfg.ErrorLog != nil {
		p.cfg.ErrorLog(r, err)
	}
	service := ""
	if st != nil && st.route != nil {
		service = st.route.Service
	}
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		// The client went away: nobody reads the answer.
		w.WriteHeader(499)
		return
	}
	code, msg := failure(err, service)
	errorPage(w, code, msg)
}

// failure is the status and page for a request that could not be
// proxied: 503 for no backend or leader, 502 for a backend that failed.
func failure(err error, service string) (int, string) {
	switch {
	case errors.Is(err, errNoLeader):
		return nethttp.StatusServiceUnavailable, "503 Service Unavailable: service " + strconv.Quote(service) + " has no leader; it may be failing over."
	case errors.Is(err, errNoBackend):
		return nethttp.StatusServiceUnavailable, "503 Service Unavailable: no healthy backend for service " + strconv.Quote(service) + "; the app may be stopped, crashed or still starting."
	}
	return nethttp.StatusBadGateway, "502 Bad Gateway: the backend of service " + strconv.Quote(service) + " failed to answer."
}

func errorPage(w nethttp.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	fmt.Fprintln(w, msg)
}

// balancer is the ReverseProxy's transport: it picks the backend, keeps
// the in-flight counts, and retries a failed dial once on another backend.
type balancer struct{ p *Proxy }

func (bl *balancer) RoundTrip(req *nethttp.Request) (*nethttp.Response, error) {
	st, _ := req.Context().Value(ctxKey{}).(*reqState)
	if st == nil || st.route == nil {
		return nil, errors.New("router: request without route")
	}
	route := st.route
	set := bl.p.backends.viewWait(req.Context(), route.Service, bl.p.cfg.BackendWait)
	var list []*Backend
	if set != nil {
		list = set.list
	}
	pinned := bl.p.pinned(req, route)
	b, err := bl.p.choose(st, set, pinned)
	if err != nil {
		return nil, err
	}
	if route.LeaderOnly {
		// Never a follower, not even as a retry: for a database that
		// would be a write to a replica.
		return bl.try(req, st, b)
	}
	var rb *replayBody
	if req.Body != nil && req.Body != nethttp.NoBody && req.GetBody == nil {
		// A client's body can be sent only once, but a failed dial sent
		// none of it: keep it for a retry (see replayBody).
		rb = &replayBody{rc: req.Body}
		req.Body = rb
	}
	resp, err := bl.try(req, st, b)
	if err != nil && retryable(req, err) {
		// Dial failed: nothing of the request left the router. Another
		// backend, once, with the body again if there is one.
		next := pick(list, b)
		if next == nil {
			return nil, err
		}
		retry := req.Clone(req.Context())
		switch {
		case rb != nil:
			retry.Body = &replayBody{rc: rb.rc}
		case req.Body != nil && req.Body != nethttp.NoBody:
			body, gerr := req.GetBody()
			if gerr != nil {
				return nil, err
			}
			retry.Body = body
		}
		resp, err = bl.try(retry, st, next)
	}
	if err == nil && route.Sticky && st.backend.Instance.ID != pinned {
		resp.Header.Add("Set-Cookie", bl.p.stickyCookie(route, st.backend.Instance.ID, st.tls).String())
	}
	return resp, err
}

// choose picks the backend for a request: the leader for a leader-only
// route, the instance pinned (by a valid sticky cookie, see
// Proxy.pinned) if it is still listed, else one by the power of two
// choices.
func (p *Proxy) choose(st *reqState, set *backendSet, pinned string) (*Backend, error) {
	if st.route.LeaderOnly {
		if b := set.leader(); b != nil {
			return b, nil
		}
		return nil, errNoLeader
	}
	b := set.byID(pinned)
	if b == nil && set != nil {
		b = pick(set.list, nil)
	}
	if b == nil {
		return nil, errNoBackend
	}
	return b, nil
}

// pinned is the instance a request's sticky cookie pins it to on a
// sticky route, or "".
func (p *Proxy) pinned(req *nethttp.Request, route *api.Route) string {
	if !route.Sticky || route.LeaderOnly {
		return ""
	}
	return p.stickyInstance(req, route)
}

func (bl *balancer) try(req *nethttp.Request, st *reqState, b *Backend) (*nethttp.Response, error) {
	st.backend = b
	req.URL.Host = b.Instance.Addr
	b.inflight.Add(1)
	resp, err := bl.p.tr.RoundTrip(req)
	if err != nil {
		b.inflight.Add(-1)
		return nil, err
	}
	if resp.StatusCode == nethttp.StatusSwitchingProtocols {
		// The upgraded connection no longer counts as a request in
		// flight; it is tracked so that it can be drained when its
		// route goes. ReverseProxy needs the body to stay an
		// io.ReadWriteCloser.
		b.inflight.Add(-1)
		if rwc, ok := resp.Body.(io.ReadWriteCloser); ok {
			uc := &upgradeConn{ReadWriteCloser: rwc, route: st.route}
			resp.Body = uc
			st.upgrade = uc
			bl.p.drain.add(uc)
		}
		return resp, nil
	}
	resp.Body = &countedBody{ReadCloser: resp.Body, b: b}
	return resp, nil
}

// retryable: the backend could not be reached, so nothing was written,
// and the request can be sent again.
func retryable(req *nethttp.Request, err error) bool {
	if req.Context().Err() != nil {
		return false
	}
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" {
		return false
	}
	if rb, ok := req.Body.(*replayBody); ok {
		return !rb.read.Load()
	}
	return req.Body == nil || req.Body == nethttp.NoBody || req.GetBody != nil
}

// replayBody carries a request body to the transport without letting it
// be closed: the transport closes a request's body when the dial fails,
// though it read none of it, and the retry on another backend needs it.
// Once anything was read it is no longer retried. Closing the real body
// stays with ReverseProxy and the server, as without the retry.
type replayBody struct {
	rc   io.ReadCloser
	read atomic.Bool
}

func (b *replayBody) Read(p []byte) (int, error) {
	b.read.Store(true)
	return b.rc.Read(p)
}

func (b *replayBody) Close() error { return nil }

// countedBody ends a request's in-flight count when the response body is
// closed.
type countedBody struct {
	io.ReadCloser
	b    *Backend
	once sync.Once
}

func (c *countedBody) Close() error {
	c.once.Do(func() { c.b.inflight.Add(-1) })
	return c.ReadCloser.Close()
}
