package router

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	nethttp "net/http" // "http" is a helper of table_test.go
	"net/http/httputil"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
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
	// MaxIdleConnsPerHost per backend (default 1000).
	MaxIdleConns        int
	MaxIdleConnsPerHost int
	// BackendWait bounds how long the first request of a service waits
	// for its discovery watch's first listing (default 5s).
	BackendWait time.Duration
	// FlushInterval is passed to httputil.ReverseProxy (0: its default,
	// which streams event streams and bodies of unknown length at once).
	FlushInterval time.Duration
	// ErrorLog receives proxy errors; nil discards them.
	ErrorLog func(r *nethttp.Request, err error)
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
	swap     sync.Mutex // orders SetTable's Retain calls
}

// NewProxy returns a proxy whose backends come from w. It routes nothing
// until SetTable.
func NewProxy(w Watcher, cfg Config) *Proxy {
	cfg = cfg.withDefaults()
	p := &Proxy{cfg: cfg, backends: NewBackends(w)}
	dialer := &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: cfg.KeepAlive}
	p.tr = &nethttp.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
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
	}
	return p
}

// SetTable swaps in a new route table; requests already routed finish on
// the backends they got. Watches of services no route names any more stop.
func (p *Proxy) SetTable(t *Table) {
	p.swap.Lock()
	defer p.swap.Unlock()
	p.table.Store(t)
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

// Close stops the discovery watches and closes idle backend connections.
func (p *Proxy) Close() {
	p.backends.Close()
	p.tr.CloseIdleConnections()
}

type ctxKey struct{}

// reqState travels with a request from ServeHTTP to the balancer.
type reqState struct {
	service string
	start   time.Time
}

var (
	errNoBackend = errors.New("no healthy backend")
)

func (p *Proxy) ServeHTTP(w nethttp.ResponseWriter, r *nethttp.Request) {
	start := time.Now()
	host := r.Host
	if host == "" {
		host = r.URL.Host
	}
	route, ok := p.table.Load().Lookup(host, r.URL.Path)
	if !ok {
		errorPage(w, nethttp.StatusNotFound, "404 Not Found: no route for "+NormalizeHost(host)+r.URL.Path)
		return
	}
	st := &reqState{service: route.Service, start: start}
	p.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, st)))
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
	out.Header.Set("X-Forwarded-Port", localPort(in))
	if in.Header.Get("X-Request-Id") == "" {
		out.Header.Set("X-Request-Id", newRequestID())
	}
	start := time.Now()
	if st != nil {
		start = st.start
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

func newRequestID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (p *Proxy) proxyError(w nethttp.ResponseWriter, r *nethttp.Request, err error) {
	if p.cfg.ErrorLog != nil {
		p.cfg.ErrorLog(r, err)
	}
	st, _ := r.Context().Value(ctxKey{}).(*reqState)
	service := ""
	if st != nil {
		service = st.service
	}
	switch {
	case errors.Is(err, errNoBackend):
		errorPage(w, nethttp.StatusServiceUnavailable, "503 Service Unavailable: no healthy backend for service "+strconv.Quote(service)+"; the app may be stopped, crashed or still starting.")
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away: nobody reads the answer.
		w.WriteHeader(499)
	default:
		errorPage(w, nethttp.StatusBadGateway, "502 Bad Gateway: the backend of service "+strconv.Quote(service)+" failed to answer.")
	}
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
	if st == nil {
		return nil, errors.New("router: request without route")
	}
	wctx, cancel := context.WithTimeout(req.Context(), bl.p.cfg.BackendWait)
	list := bl.p.backends.List(wctx, st.service)
	cancel()
	b := pick(list, nil)
	if b == nil {
		return nil, errNoBackend
	}
	resp, err := bl.try(req, b)
	if err == nil || !retryable(req, err) {
		return resp, err
	}
	// Dial failed: nothing of the request left the router. Another
	// backend, once, with a fresh body if there is one.
	next := pick(list, b)
	if next == nil {
		return nil, err
	}
	retry := req.Clone(req.Context())
	if req.Body != nil && req.Body != nethttp.NoBody {
		body, gerr := req.GetBody()
		if gerr != nil {
			return nil, err
		}
		retry.Body = body
	}
	return bl.try(retry, next)
}

func (bl *balancer) try(req *nethttp.Request, b *Backend) (*nethttp.Response, error) {
	req.URL.Host = b.Instance.Addr
	b.inflight.Add(1)
	resp, err := bl.p.tr.RoundTrip(req)
	if err != nil {
		b.inflight.Add(-1)
		return nil, err
	}
	if resp.StatusCode == nethttp.StatusSwitchingProtocols {
		// The upgraded connection's body must stay an io.ReadWriteCloser
		// for ReverseProxy; it no longer counts as a request in flight.
		b.inflight.Add(-1)
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
	return req.Body == nil || req.Body == nethttp.NoBody || req.GetBody != nil
}

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
