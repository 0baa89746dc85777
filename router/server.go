package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	nethttp "net/http"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/discovery"
)

// ServerConfig configures a router. Zero durations take the defaults
// shown; none cuts a slow but live client short. HTTPS (SNI certificates,
// ACME) and TCP routes will come as further listeners (HTTPSAddr, a TCP
// port range) beside HTTPAddr, sharing the same table.
type ServerConfig struct {
	// Client reads routes, apps and releases from the store. Required.
	Client *clientv3.Client
	// Discovery feeds the backends of each route's service;
	// discovery.New(Client) when nil.
	Discovery Watcher
	// HTTPAddr is where plain HTTP/1.1 and h2c are served (":8080",
	// "127.0.0.1:0"). Required.
	HTTPAddr string
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
	cfg   ServerConfig
	proxy *Proxy
	http  *nethttp.Server
	ln    net.Listener

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
	ready := make(chan struct{})
	sy := newSyncer(cfg.Client, cfg.Domain, cfg.Log, s.proxy.SetTable)
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
	var protocols nethttp.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true) // h2c with prior knowledge
	s.http = &nethttp.Server{
		Handler:           s.proxy,
		Protocols:         &protocols,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(cfg.Log.Handler(), slog.LevelWarn),
	}
	go func() {
		defer close(s.served)
		if err := s.http.Serve(s.ln); !errors.Is(err, nethttp.ErrServerClosed) {
			s.serveErr = err
			cfg.Log.Error("router: HTTP listener failed", "addr", s.ln.Addr().String(), "err", err)
		}
	}()
	cfg.Log.Info("router ready", "http", s.ln.Addr().String(), "domain", cfg.Domain,
		"routes", s.proxy.Table().Len())
	return s, nil
}

// Addr is the address the HTTP listener is bound to, with the port it
// got for ":0".
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Proxy is the router's handler, with its current table and backends.
func (s *Server) Proxy() *Proxy { return s.proxy }

// Done is closed when the HTTP listener stops serving: after Close, or
// when it failed (Err says why).
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
// for; they end with the process.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
		defer cancel()
		if err := s.http.Shutdown(ctx); err != nil {
			s.closeErr = fmt.Errorf("router: shutdown: %w", err)
			s.http.Close()
		}
		<-s.served
		// The table stays current while requests drain; stop it after.
		s.stop()
		<-s.syncDone
		s.proxy.Close()
	})
	return s.closeErr
}
