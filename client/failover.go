package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"
)

// Option configures a Controller.
type Option func(*Controller) error

// WithFallbacks gives the client other servers of the same cluster
// ("https://host:port"), each of which answers the whole API: when the
// server of the base URL cannot be reached, the client connects to the
// first of them that can, and keeps to it while it answers. Only a
// connection is moved, never a request: one that failed after it was
// sent is not sent again elsewhere.
func WithFallbacks(urls ...string) Option {
	return func(c *Controller) error {
		for _, raw := range urls {
			u, err := url.Parse(raw)
			if err != nil || u.Scheme != "https" || u.Host == "" {
				return fmt.Errorf("client: fallback URL %q: want https://HOST:PORT", raw)
			}
			c.failover.addrs = append(c.failover.addrs, hostPort(u))
		}
		return nil
	}
}

// WithProxy sends the client's requests through the HTTP proxy at
// proxyURL ("http://proxy:3128"). Without it the client uses no proxy at
// all, whatever HTTPS_PROXY and the like say: those are for the user's
// way to the internet, which seldom leads to the cluster's own servers,
// and a proxy that inspects TLS could not pass the cluster CA's pinning
// anyway. A connection through a proxy is not moved to other servers
// (WithFallbacks), since the proxy dials the server.
func WithProxy(proxyURL string) Option {
	return func(c *Controller) error {
		u, err := url.Parse(proxyURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "socks5") || u.Host == "" {
			return fmt.Errorf("client: proxy URL %q: want http://HOST:PORT", proxyURL)
		}
		c.proxy = u
		return nil
	}
}

func hostPort(u *url.URL) string {
	if u.Port() == "" {
		return net.JoinHostPort(u.Hostname(), "443")
	}
	return u.Host
}

// failover dials TLS connections for the transport. A connection meant
// for the base URL's server goes to the server that last answered,
// trying the others in turn when it cannot be reached. Each handshake
// verifies the certificate of the server actually dialed, as its own
// URL would.
type failover struct {
	primary string   // host:port of the base URL
	addrs   []string // the fallbacks' host:port
	tls     *tls.Config
	dialer  net.Dialer

	mu      sync.Mutex
	current string // host:port last connected to, for the base URL
	// moved, if set, is told each time the client moves to another
	// server.
	moved func(from, to string, err error)
}

// dialTimeout bounds each try when there are other servers to try: a
// server that is down must not stall every command for long.
const dialTimeout = 3 * time.Second

// dialTLS is the transport's dialer: it offers h2 and HTTP/1.1.
func (f *failover) dialTLS(ctx context.Context, network, addr string) (net.Conn, error) {
	return f.dial(ctx, network, addr, []string{"h2", "http/1.1"})
}

// dial connects to addr, or to another server if addr is the base URL's,
// offering protos by ALPN.
func (f *failover) dial(ctx context.Context, network, addr string, protos []string) (net.Conn, error) {
	if addr != f.primary || len(f.addrs) == 0 {
		return f.handshake(ctx, network, addr, protos)
	}
	f.mu.Lock()
	first := f.current
	f.mu.Unlock()
	order := []string{first}
	for _, a := range append([]string{f.primary}, f.addrs...) {
		if a != first {
			order = append(order, a)
		}
	}
	var errs []error
	for _, a := range order {
		dctx, cancel := context.WithTimeout(ctx, dialTimeout)
		conn, err := f.handshake(dctx, network, a, protos)
		cancel()
		if err == nil {
			f.mu.Lock()
			from := f.current
			f.current = a
			f.mu.Unlock()
			if a != from && f.moved != nil {
				f.moved(from, a, errors.Join(errs...))
			}
			return conn, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// handshake dials addr and verifies its certificate for its own host.
func (f *failover) handshake(ctx context.Context, network, addr string, protos []string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	cfg := f.tls.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	cfg.NextProtos = protos
	d := tls.Dialer{NetDialer: &f.dialer, Config: cfg}
	return d.DialContext(ctx, network, addr)
}
