package router

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	nethttp "net/http"
	"sync"
	"sync/atomic"
	"time"
)

// The plain port's own HTTP/1.1 server. net/http's server costs the
// router about half its CPU per request (bench/router): a request
// struct, URL and header map per request, a context, and a background
// read on the connection while the handler runs. Nearly all of an app's
// plain-HTTP traffic is GETs and HEADs without a body, which this server
// reads in place from the connection's buffer and proxies over the
// direct path's pooled backend connections, one goroutine per
// connection.
//
// Whatever it does not take whole (h1request.go: other methods, bodies,
// upgrades, h2c, HTTP/1.0, sticky and redirect routes, ACME challenges,
// odd or oversized heads) it hands off, before reading or answering any
// of it, with the connection and the bytes already read, to net/http's
// server, which then serves that connection as it served every one
// before. So behaviour at the edges stays net/http's, and this server
// only has to be right about the common case.
//
//
// A client that closes its connection while a backend is slow to answer
// is noticed (h1watch.go), and the backend connection is cut at once, as
// the direct path does.

// h1Config are the client-side timeouts, ServerConfig's.
type h1Config struct {
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
}

func (c *h1Config) headerTimeout() time.Duration {
	if c.ReadTimeout > 0 && c.ReadTimeout < c.ReadHeaderTimeout {
		return c.ReadTimeout
	}
	return c.ReadHeaderTimeout
}

type h1Server struct {
	p    *Proxy
	cfg  h1Config
	acme bool // ACME's HTTP-01 challenges go to net/http's handler
	ln   net.Listener
	next *handoffListener // net/http's server serves it
	log  *slog.Logger

	closing  atomic.Bool
	handoffs atomic.Int64 // connections given to net/http's server (tests)
	mu       sync.Mutex
	conns    map[*h1Conn]struct{}
}

func newH1Server(p *Proxy, ln net.Listener, cfg h1Config, acme bool, log *slog.Logger) *h1Server {
	return &h1Server{
		p: p, cfg: cfg, acme: acme, ln: ln, log: log,
		next:  &handoffListener{addr: ln.Addr(), conns: make(chan net.Conn), done: make(chan struct{})},
		conns: make(map[*h1Conn]struct{}),
	}
}

// serve accepts connections until shutdown; it returns
// http.ErrServerClosed then, as http.Server.Serve does.
func (s *h1Server) serve() error {
	stop := make(chan struct{})
	defer close(stop)
	go s.sweep(stop)
	var backoff time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return nethttp.ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of file descriptors and the like: wait, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("router: accept failed; retrying", "err", err, "in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		hc := newH1Conn(s, c)
		s.mu.Lock()
		if s.closing.Load() {
			s.mu.Unlock()
			c.Close()
			continue
		}
		s.conns[hc] = struct{}{}
		s.mu.Unlock()
		go hc.serve()
	}
}

func (s *h1Server) forget(hc *h1Conn) {
	s.mu.Lock()
	delete(s.conns, hc)
	s.mu.Unlock()
}

// shutdown stops accepting, closes idle connections as they become idle,
// and returns once none is left, or cuts the rest when ctx ends.
// Connections already handed off are net/http's server's to shut down.
func (s *h1Server) shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.ln.Close()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if s.closeConns(false) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			s.closeConns(true)
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// close stops serving at once.
func (s *h1Server) close() {
	s.closing.Store(true)
	s.ln.Close()
	s.closeConns(true)
}

// closeConns closes the idle connections, or all; it returns how many
// connections there were.
func (s *h1Server) closeConns(all bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for hc := range s.conns {
		if all || hc.idle.Load() {
			hc.c.Close()
		}
	}
	return len(s.conns)
}

// handoffListener is how connections reach net/http's server: Accept
// returns what handoff sends.
type handoffListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *handoffListener) Addr() net.Addr { return l.addr }

func (l *handoffListener) handoff(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close()
	}
}

// bufferedConn is a connection whose first bytes were read into r.
type bufferedConn struct {
	net.Conn
	r io.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// clientReader reads a client connection, first giving back the byte
// the client watch read, if it read one.
type clientReader struct {
	c       net.Conn
	pending [1]byte
	has     bool
}

func (r *clientReader) Read(p []byte) (int, error) {
	if r.has && len(p) > 0 {
		r.has = false
		p[0] = r.pending[0]
		return 1, nil
	}
	return r.c.Read(p)
}
