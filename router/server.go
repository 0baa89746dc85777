package router

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	nethttp "net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/discovery"
)

// ServerConfig configures a router. Zero durations take the defaults
// shown; none cuts a slow but live client short.
type ServerConfig struct {
	// Client reads routes, apps and releases from the store. Required.
	Client *clientv3.Client
	// Discovery feeds the backends of each route's service;
	// discovery.New(Client) when nil.
	Discovery Watcher
	// HTTPAddr is where plain HTTP/1.1 and h2c are served (":8080",
	// "127.0.0.1:0"). Required.
	HTTPAddr string
	// HTTPSAddr, when set, is where HTTPS (HTTP/2 and HTTP/1.1 by ALPN)
	// is served, with each route's certificate picked by SNI. Its port
	// is the one redirect_https routes send clients to, unless
	// Proxy.HTTPSPort names another (a port mapped in front of it).
	HTTPSAddr string
	// GetCertificate answers handshakes for names without a certificate
	// in the route table, and ACME's TLS-ALPN-01 challenges (hellos
	// offering ALPNACME, which it sees first). It returns (nil, nil) for
	// a name it has nothing for: the handshake then fails with
	// "unrecognized_name". Nil fails them all.
	GetCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// StickyKey signs sticky-session cookies; random when empty. Every
	// router that serves the same domains needs the same key, and it
	// must outlive restarts for clients to keep their backend.
	StickyKey []byte
	// DrainTimeout is how long upgraded connections (websockets) of a
	// removed route may stay open when the route sets none (default 30s).
	DrainTimeout time.Duration
	// AccessLog, when set, receives one JSON line per request (see
	// accesslog.go for the fields).
	AccessLog io.Writer
	// Registry, when set, receives per-route Prometheus metrics.
	Registry prometheus.Registerer
	// Domain is the cluster domain: every app with a web process answers
	// on "<app>.<Domain>" without a stored route. Empty turns that off.
	Domain string
	// Log receives the router's logs; slog.Default() when nil.
	Log *slog.Logger

	// ReadHeaderTimeout bounds reading a request's headers (default 30s),
	// against clients that hold connections open by trickling them.
	ReadHeaderTimeout time.Duration
	// ReadTimeout and WriteTimeout bound a whole request and response;
	// 0 (the default) means no limit, since uploads, event streams and
	// websockets may legitimately last long.
	ReadTimeout, WriteTimeout time.Duration
	// IdleTimeout closes client keep-alive connections idle that long
	// (default 2m).
	IdleTimeout time.Duration
	// ShutdownTimeout bounds how long Close waits for requests in flight
	// (default 30s); those still running then are cut.
	ShutdownTimeout time.Duration
	// Proxy tunes the connections to backends.
	Proxy Config
	// TCP configures TCP routes; PortHigh 0 turns them off.
	TCP TCPConfig
	// ACME, when set, obtains certificates for routes that ask for them:
	// it answers handshakes the table has no certificate for (unless
	// GetCertificate is set) and HTTP-01 challenges on the plain port.
	// The caller closes it after the Server.
	ACME *ACME
}

func (c *ServerConfig) setDefaults() error {
	if c.Client == nil {
		return errors.New("router: no store client")
	}
	if c.HTTPAddr == "" {
		return errors.New("router: no HTTP address")
	}
	if c.Domain != "" {
		if err := api.ValidDomain(c.Domain); err != nil {
			return fmt.Errorf("router: cluster domain: %w", err)
		}
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	c.Log = c.Log.With("component", "router")
	if c.Discovery == nil {
		c.Discovery = discovery.New(c.Client, discovery.WithLogger(c.Log))
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.ReadHeaderTimeout, 30*time.Second)
	def(&c.IdleTimeout, 2*time.Minute)
	def(&c.ShutdownTimeout, 30*time.Second)
	if c.ACME != nil && c.GetCertificate == nil {
		c.GetCertificate = c.ACME.GetCertificate
	}
	if c.TCP.Log == nil {
		c.TCP.Log = c.Log
	}
	if c.TCP.DrainTimeout == 0 {
		c.TCP.DrainTimeout = c.DrainTimeout
	}
	// The proxy's own copies; the ServerConfig fields win when set.
	if c.GetCertificate != nil {
		c.Proxy.GetCertificate = c.GetCertificate
	}
	if len(c.StickyKey) > 0 {
		c.Proxy.StickyKey = c.StickyKey
	}
	if c.DrainTimeout != 0 {
		c.Proxy.DrainTimeout = c.DrainTimeout
	}
	if c.AccessLog != nil {
		c.Proxy.AccessLog = c.AccessLog
	}
	if c.Registry != nil {
		c.Proxy.Registry = c.Registry
	}
	if c.Proxy.ErrorLog == nil {
		log := c.Log
		c.Proxy.ErrorLog = func(r *nethttp.Request, err error) {
			level := slog.LevelWarn
			if errors.Is(err, context.Canceled) {
				level = slog.LevelDebug // the client went away
			}
			log.Log(r.Context(), level, "router: proxy error", "host", r.Host, "path", r.URL.Path, "err", err)
		}
	}
	return nil
}

// Server is a running router: the proxy, the listeners that feed it, and
// the sync that keeps its table current.
type Server struct {
	cfg     ServerConfig
	proxy   *Proxy
	tcp     *TCPProxy
	http    *nethttp.Server // serves both listeners, the plain one through h1
	h1      *h1Server       // the plain port's server; nil with a FlushInterval
	ln      net.Listener
	tlsLn   net.Listener // nil without HTTPSAddr
	serveWG sync.WaitGroup
	errOnce sync.Once

	stop      context.CancelFunc
	syncDone  chan struct{}
	served    chan struct{}
	serveErr  error
	closeOnce sync.Once
	closeErr  error
}

// Start builds the first route table from the store, then listens. It
// returns once the router serves with complete routes, so it never
// answers 404 for an app merely because the store was not read yet; ctx
// bounds that wait (an unreachable store fails Start when ctx ends). The
// router then runs until Close.
func Start(ctx context.Context, cfg ServerConfig) (_ *Server, err error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	runCtx, stop := context.WithCancel(context.Background())
	s := &Server{
		cfg:      cfg,
		proxy:    NewProxy(cfg.Discovery, cfg.Proxy),
		stop:     stop,
		syncDone: make(chan struct{}),
		served:   make(chan struct{}),
	}
	defer func() {
		if err != nil {
			s.stop()
			<-s.syncDone
			s.proxy.Close()
		}
	}()
	s.tcp = NewTCPProxy(s.proxy.Backends(), cfg.TCP)
	defer func() {
		if err != nil {
			s.tcp.Close()
		}
	}()
	// ACME learns a new ACME route before a handshake can ask for it;
	// the proxy keeps the services' watches before the TCP proxy uses
	// them.
	set := func(t *Table) {
		if cfg.ACME != nil {
			cfg.ACME.SetTable(t)
		}
		s.proxy.SetTable(t)
		s.tcp.SetTable(t)
	}
	ready := make(chan struct{})
	sy := newSyncer(cfg.Client, cfg.Domain, cfg.Log, set)
	go func() {
		defer close(s.syncDone)
		sy.run(runCtx, ready)
	}()
	select {
	case <-ready:
	case <-s.syncDone:
		return nil, errors.New("router: route sync stopped before the first table")
	case <-ctx.Done():
		return nil, fmt.Errorf("router: reading routes: %w", context.Cause(ctx))
	}

	if s.ln, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	if cfg.HTTPSAddr != "" {
		if s.tlsLn, err = net.Listen("tcp", cfg.HTTPSAddr); err != nil {
			s.ln.Close()
			return nil, fmt.Errorf("router: %w", err)
		}
		if s.proxy.cfg.HTTPSPort == 0 {
			// Before any request: ServeHTTP reads it unguarded.
			s.proxy.cfg.HTTPSPort = s.tlsLn.Addr().(*net.TCPAddr).Port
		}
	}
	var protocols nethttp.Protocols
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(true)            // over TLS, by ALPN
	protocols.SetUnencryptedHTTP2(true) // h2c with prior knowledge
	var handler nethttp.Handler = s.proxy
	if cfg.ACME != nil {
		// HTTP-01 challenges come over plain HTTP, before any
		// redirect_https could send them away.
		challenges := cfg.ACME.HTTPHandler(s.proxy)
		handler = nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
			if r.TLS == nil {
				challenges.ServeHTTP(w, r)
			} else {
				s.proxy.ServeHTTP(w, r)
			}
		})
	}
	s.http = &nethttp.Server{
		Handler:           handler,
		Protocols:         &protocols,
		TLSConfig:         s.proxy.TLSConfig(),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(&quietHandshakes{cfg.Log.Handler()}, slog.LevelWarn),
	}
	if s.proxy.cfg.FlushInterval == 0 {
		s.h1 = newH1Server(s.proxy, s.ln, h1Config{
			ReadHeaderTimeout: cfg.ReadHeaderTimeout, ReadTimeout: cfg.ReadTimeout,
			WriteTimeout: cfg.WriteTimeout, IdleTimeout: cfg.IdleTimeout,
		}, cfg.ACME != nil, cfg.Log)
		s.serve("HTTP", s.ln, func(net.Listener) error { return s.h1.serve() })
		s.serve("HTTP (net/http)", s.h1.next, s.http.Serve)
	} else {
		// Its flushes are ReverseProxy's: everything goes through it.
		s.serve("HTTP", s.ln, s.http.Serve)
	}
	attrs := []any{"http", s.ln.Addr().String()}
	if s.tlsLn != nil {
		s.serve("HTTPS", s.tlsLn, func(ln net.Listener) error { return s.http.ServeTLS(ln, "", "") })
		attrs = append(attrs, "https", s.tlsLn.Addr().String())
	}
	go func() {
		s.serveWG.Wait()
		close(s.served)
	}()
	cfg.Log.Info("router ready", append(attrs, "domain", cfg.Domain, "routes", s.proxy.Table().Len())...)
	return s, nil
}

// serve runs one listener. One that fails on its own takes the others
// down with it, so Done reports a router that no longer serves all it
// should rather than half of one.
func (s *Server) serve(name string, ln net.Listener, serve func(net.Listener) error) {
	s.serveWG.Go(func() {
		if err := serve(ln); !errors.Is(err, nethttp.ErrServerClosed) {
			s.errOnce.Do(func() {
				s.serveErr = fmt.Errorf("router: %s listener %s: %w", name, ln.Addr(), err)
				s.cfg.Log.Error("router: listener failed", "listener", name, "addr", ln.Addr().String(), "err", err)
				go s.http.Close()
				if s.h1 != nil {
					go s.h1.close()
				}
			})
		}
	})
}

// quietHandshakes logs failed TLS handshakes at debug level: scanners and
// clients asking for names the router has no certificate for make them
// routine, and at warn level they would drown the log.
type quietHandshakes struct{ slog.Handler }

func (h *quietHandshakes) Handle(ctx context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, "http: TLS handshake error") {
		if !h.Handler.Enabled(ctx, slog.LevelDebug) {
			return nil
		}
		r.Level = slog.LevelDebug
	}
	return h.Handler.Handle(ctx, r)
}

// Addr is the address the HTTP listener is bound to, with the port it
// got for ":0".
func (s *Server) Addr() string { return s.ln.Addr().String() }

// HTTPSAddr is the address the HTTPS listener is bound to; "" without
// one.
func (s *Server) HTTPSAddr() string {
	if s.tlsLn == nil {
		return ""
	}
	return s.tlsLn.Addr().String()
}

// TCPPorts are the ports TCP routes listen on.
func (s *Server) TCPPorts() []int { return s.tcp.Ports() }

// Proxy is the router's handler, with its current table and backends.
func (s *Server) Proxy() *Proxy { return s.proxy }

// Done is closed when the listeners stop serving: after Close, or when
// one failed (Err says why; the others are closed with it).
func (s *Server) Done() <-chan struct{} { return s.served }

// Err is why the listener stopped on its own; nil before Done and after a
// Close.
func (s *Server) Err() error {
	select {
	case <-s.served:
		return s.serveErr
	default:
		return nil
	}
}

// Close stops listening at once, lets requests in flight finish for up to
// ShutdownTimeout (then cuts them), and stops the route sync and the
// discovery watches. Upgraded connections (websockets) are not waited
// for: they are closed last.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
		defer cancel()
		var h1Err error
		var h1Done sync.WaitGroup
		if s.h1 != nil {
			h1Done.Go(func() { h1Err = s.h1.shutdown(ctx) })
		}
		err := s.http.Shutdown(ctx)
		h1Done.Wait()
		if err = errors.Join(err, h1Err); err != nil {
			s.closeErr = fmt.Errorf("router: shutdown: %w", err)
			s.http.Close()
		}
		<-s.served
		if err := s.tcp.Shutdown(ctx); err != nil && s.closeErr == nil {
			s.closeErr = fmt.Errorf("router: TCP shutdown: %w", err)
		}
		// The table stays current while requests drain; stop it after.
		s.stop()
		<-s.syncDone
		s.proxy.Close()
	})
	return s.closeErr
}
