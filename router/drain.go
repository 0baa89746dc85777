package router

import (
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pierpaas/pier/api"
)

// Draining. A request on a route that leaves the table finishes on the
// backend it got: nothing cuts it. An upgraded connection (a websocket)
// has no end of its own, though, and would keep a removed route's
// traffic flowing for days; so once its route is gone it gets the
// route's DrainTimeout (Config.DrainTimeout when 0) to finish, and is
// then closed. A route that comes back, unchanged, before then keeps its
// connections.

// upgradeConn is the backend side of an upgraded connection, as
// ReverseProxy copies it to and from the client. Closing it ends the
// copy, and ReverseProxy then closes the client side too.
type upgradeConn struct {
	io.ReadWriteCloser
	route *api.Route // of the table that routed it
	read  atomic.Int64
	d     *drainer
	once  sync.Once
}

// Read counts the bytes sent to the client, for the access log.
func (c *upgradeConn) Read(b []byte) (int, error) {
	n, err := c.ReadWriteCloser.Read(b)
	c.read.Add(int64(n))
	return n, err
}

func (c *upgradeConn) Close() error {
	c.once.Do(func() {
		if c.d != nil {
			c.d.remove(c)
		}
	})
	return c.ReadWriteCloser.Close()
}

// drainer tracks upgraded connections by the route (of the table) that
// routed them, so a table change costs one check per route with open
// connections, not one per connection.
type drainer struct {
	p       *Proxy
	mu      sync.Mutex
	byRoute map[*api.Route]*routeConns
	closed  bool
}

type routeConns struct {
	conns    map[*upgradeConn]struct{}
	draining bool // a timer is armed
}

func newDrainer(p *Proxy) *drainer {
	return &drainer{p: p, byRoute: make(map[*api.Route]*routeConns)}
}

func (d *drainer) add(c *upgradeConn) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		c.Close()
		return
	}
	c.d = d
	rc := d.byRoute[c.route]
	if rc == nil {
		rc = &routeConns{conns: make(map[*upgradeConn]struct{})}
		d.byRoute[c.route] = rc
	}
	rc.conns[c] = struct{}{}
	// The route may have gone between routing the request and the
	// backend's answer; SetTable stores the table before it checks, so
	// one of the two sees the other.
	if !rc.draining && !d.p.isCurrent(c.route) {
		d.arm(c.route, rc)
	}
	d.mu.Unlock()
}

func (d *drainer) remove(c *upgradeConn) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if rc := d.byRoute[c.route]; rc != nil {
		delete(rc.conns, c)
		if len(rc.conns) == 0 && !rc.draining {
			delete(d.byRoute, c.route)
		}
	}
}

// tableChanged arms the drain of the connections whose route the new
// table no longer has.
func (d *drainer) tableChanged() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for r, rc := range d.byRoute {
		if !rc.draining && !d.p.isCurrent(r) {
			d.arm(r, rc)
		}
	}
}

// arm closes rc's connections after the route's drain timeout. Called
// with d.mu held.
func (d *drainer) arm(r *api.Route, rc *routeConns) {
	rc.draining = true
	time.AfterFunc(r.DrainTimeout.Or(d.p.cfg.DrainTimeout), func() { d.expire(r, rc) })
}

func (d *drainer) expire(r *api.Route, rc *routeConns) {
	d.mu.Lock()
	rc.draining = false
	var doomed []*upgradeConn
	if !d.p.isCurrent(r) {
		for c := range rc.conns {
			doomed = append(doomed, c)
		}
	}
	if len(rc.conns) == 0 && d.byRoute[r] == rc {
		delete(d.byRoute, r)
	}
	d.mu.Unlock()
	// Close outside the lock: Close calls remove.
	for _, c := range doomed {
		c.Close()
	}
}

// closeAll closes every upgraded connection, for Proxy.Close.
func (d *drainer) closeAll() {
	d.mu.Lock()
	d.closed = true
	var all []*upgradeConn
	for _, rc := range d.byRoute {
		for c := range rc.conns {
			all = append(all, c)
		}
	}
	d.mu.Unlock()
	for _, c := range all {
		c.Close()
	}
}

// Upgraded is the number of upgraded connections (websockets) open
// through the proxy.
func (p *Proxy) Upgraded() int {
	d := p.drain
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, rc := range d.byRoute {
		n += len(rc.conns)
	}
	return n
}

// isCurrent reports whether the current table still sends r's traffic
// where r did: a route of the same ID, type, domain, path and service.
// Other changes (stickiness, certificates) leave connections alone.
func (p *Proxy) isCurrent(r *api.Route) bool {
	cur, ok := p.table.Load().Route(r.ID)
	return ok && cur.Type == r.Type && cur.Domain == r.Domain &&
		api.CanonicalPath(cur.Path) == api.CanonicalPath(r.Path) && cur.Service == r.Service
}
