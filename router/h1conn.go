package router

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	nethttp "net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// h1Conn is one client connection of the plain port's server: a loop
// that reads a request head, proxies it, and waits for the next, on one
// goroutine, with no per-request context, header map or background read.
type h1Conn struct {
	s  *h1Server
	c  net.Conn
	in clientReader // under br: hands back a byte the client watch read
	br *bufio.Reader
	bw *bufio.Writer

	req  h1Request
	resp h1Response
	st   reqState
	id   [32]byte // a generated X-Request-Id

	clientIP  string
	remote    string
	localPort []byte
	idle      atomic.Bool // waiting for a request: shutdown may close it
	served    bool        // a request was answered

	// The client watch (h1watch.go).
	waitState atomic.Int32 // watchNone, watchWaiting, watchReading
	waitSince atomic.Int64 // when the backend got the request (UnixNano)
	watched   net.Conn     // the backend connection to cut if the client leaves
	watchMu   sync.Mutex
	watchOff  bool
	watchDone chan struct{}
	gone      atomic.Bool

	idleDeadline time.Time // the read deadline readHead set, if still set
}

// What becomes of a connection after a request.
const (
	h1Keep    = iota // read the next request
	h1Close          // close it
	h1Handoff        // net/http's server takes it, this request included
)

func newH1Conn(s *h1Server, c net.Conn) *h1Conn {
	hc := &h1Conn{s: s, c: c, in: clientReader{c: c}, watchDone: make(chan struct{}, 1)}
	hc.br = connReaders.Get().(*bufio.Reader)
	hc.br.Reset(&hc.in)
	hc.bw = connWriters.Get().(*bufio.Writer)
	hc.bw.Reset(c)
	hc.remote = c.RemoteAddr().String()
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		hc.clientIP = a.IP.String()
	} else {
		hc.clientIP, _, _ = net.SplitHostPort(hc.remote)
	}
	if a, ok := c.LocalAddr().(*net.TCPAddr); ok {
		hc.localPort = strconv.AppendInt(nil, int64(a.Port), 10)
	}
	return hc
}

func (hc *h1Conn) serve() {
	next := h1Close
	defer func() {
		hc.s.forget(hc)
		hc.bw.Reset(nil)
		connWriters.Put(hc.bw)
		if next == h1Handoff {
			// The reader holds what the client sent: it goes along.
			hc.s.handoffs.Add(1)
			hc.s.next.handoff(&bufferedConn{Conn: hc.c, r: hc.br})
			return
		}
		hc.c.Close()
		hc.br.Reset(nil)
		connReaders.Put(hc.br)
	}()
	for {
		n, err := hc.readHead()
		if err != nil {
			return
		}
		if n == 0 {
			next = h1Handoff
			return
		}
		if next = hc.serveRequest(n); next != h1Keep {
			return
		}
	}
}

// readHead waits for a request head and returns its length, CRLFCRLF
// included; 0 for a head this server leaves to net/http's (larger than
// the buffer, or with bare LF line ends).
func (hc *h1Conn) readHead() (int, error) {
	cfg := &hc.s.cfg
	if hc.br.Buffered() == 0 {
		hc.idle.Store(true)
		if hc.s.closing.Load() {
			return 0, net.ErrClosed
		}
		hc.setIdleDeadline()
		if _, err := hc.br.Peek(1); err != nil {
			return 0, err
		}
		hc.idle.Store(false)
	}
	for headerDeadline := false; ; {
		buf, _ := hc.br.Peek(hc.br.Buffered())
		if n, ok := headEnd(buf); ok {
			return n, nil
		}
		if len(buf) == hc.br.Size() {
			return 0, nil
		}
		if !headerDeadline {
			// The head did not come in one piece: the rest must come in
			// time.
			headerDeadline = true
			hc.idleDeadline = time.Time{}
			hc.c.SetReadDeadline(time.Now().Add(cfg.headerTimeout()))
		}
		if _, err := hc.br.Peek(len(buf) + 1); err != nil {
			return 0, err
		}
	}
}

// setIdleDeadline bounds the wait for the next request: IdleTimeout, or
// the header timeout for a connection's first request. A deadline set
// less than a second ago stays, which saves the call on nearly every
// request of a busy connection; idle connections close up to a second
// early.
func (hc *h1Conn) setIdleDeadline() {
	cfg := &hc.s.cfg
	wait := cfg.IdleTimeout
	if !hc.served {
		wait = cfg.headerTimeout() // a new connection owes a request
	}
	d := time.Now().Add(wait)
	if !hc.idleDeadline.IsZero() && d.Sub(hc.idleDeadline) < time.Second {
		return
	}
	hc.idleDeadline = d
	hc.c.SetReadDeadline(d)
}

// headEnd finds the empty line that ends a head: (n, true) for a head of
// n bytes, (0, true) for one with a bare LF line end, (0, false) while
// it has not come whole.
func headEnd(buf []byte) (int, bool) {
	for i := 0; ; {
		j := bytes.IndexByte(buf[i:], '\n')
		if j < 0 {
			return 0, false
		}
		i += j + 1
		switch {
		case i < len(buf) && buf[i] == '\n':
			return 0, true
		case i+1 < len(buf) && buf[i] == '\r' && buf[i+1] == '\n':
			return i + 2, true
		}
	}
}

// serveRequest answers the request whose head is the buffer's first n
// bytes, or hands the connection to net/http's server before it reads or
// sends anything of it.
func (hc *h1Conn) serveRequest(n int) int {
	p := hc.s.p
	head, _ := hc.br.Peek(n)
	req := &hc.req
	if !req.parse(head) {
		return h1Handoff
	}
	if hc.s.acme && strings.HasPrefix(req.path, challengePathPrefix) {
		return h1Handoff
	}
	table := p.table.Load()
	route, ok := table.Lookup(string(req.host), req.path)
	if ok && ((route.Sticky && !route.LeaderOnly) || route.RedirectHTTPS) {
		return h1Handoff // cookies and redirects: rarer, and net/http's
	}
	if ok {
		if hold, _ := table.Held(route); hold != 0 {
			return h1Handoff // maintenance pages too
		}
	}

	st := &hc.st
	*st = reqState{start: time.Now()}
	if wt := hc.s.cfg.WriteTimeout; wt > 0 {
		hc.c.SetWriteDeadline(st.start.Add(wt))
	}
	var rm *routeMetrics
	if ok {
		st.route = route
		if p.metrics != nil {
			if rm = p.metrics.route(route.ID); rm != nil {
				rm.inflight.Inc()
			}
		}
	}
	if !req.keepID {
		newRequestIDTo(&hc.id)
	}
	keep := !req.close && !hc.s.closing.Load()
	status, sent, keep := hc.answer(st, keep)
	elapsed := time.Since(st.start)
	p.count(st, rm, status, elapsed)
	if p.alog != nil {
		st.requestID = string(hc.id[:])
		if req.keepID {
			st.requestID = string(req.clientID)
		}
		p.alog.write(logRequest{req.method, string(req.host), req.path, hc.remote}, st, status, sent, elapsed)
	}
	hc.br.Discard(n) // the head's slices are not used after this
	hc.served = true
	if !keep {
		return h1Close
	}
	return h1Keep
}

// answer proxies the request or answers it with an error page; it
// returns the status sent (499 for none: the client left), the body bytes
// sent, and whether the connection stays open.
func (hc *h1Conn) answer(st *reqState, keep bool) (int, int64, bool) {
	req := &hc.req
	if st.route == nil {
		return hc.errorPage(nethttp.StatusNotFound, "404 Not Found: no route for "+NormalizeHost(string(req.host))+req.path, keep)
	}
	p := hc.s.p
	route := st.route
	set := p.backends.viewWait(context.Background(), route.Service, p.cfg.BackendWait)
	b, err := p.choose(st, set, "")
	if err == nil {
		var pc *backendConn
		pc, err = hc.exchange(st, b)
		if err != nil && !route.LeaderOnly && isDialError(err) {
			// Nothing left the router. Another backend, once.
			if next := pick(set.list, b); next != nil {
				pc, err = hc.exchange(st, next)
			}
		}
		if err == nil {
			return hc.respond(st, pc, keep)
		}
	}
	hc.logError(err)
	if hc.gone.Load() {
		return 499, 0, false
	}
	code, msg := failure(err, route.Service)
	return hc.errorPage(code, msg, keep)
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

var errClientGone = errors.New("router: the client closed the connection")

// exchange sends the request to b and reads the response's head into
// hc.resp. On success b's in-flight count stays up and pc is the
// connection the body comes on; respond ends both.
func (hc *h1Conn) exchange(st *reqState, b *Backend) (*backendConn, error) {
	p := hc.s.p
	st.backend = b
	b.inflight.Add(1)
	for {
		pc := b.conns.get(p.cfg.IdleConnTimeout)
		reused := pc != nil
		if pc == nil {
			c, err := p.dialer.Dial("tcp", b.Instance.Addr)
			if err != nil {
				b.inflight.Add(-1)
				return nil, err
			}
			pc = newBackendConn(c)
		}
		err := hc.roundTrip(pc, st)
		if err == nil {
			return pc, nil
		}
		pc.close()
		if hc.gone.Load() {
			b.inflight.Add(-1)
			return nil, errClientGone
		}
		if reused && pc.nothingRead && !isTimeout(err) {
			// The backend closed the idle connection before it got the
			// request: a GET or HEAD goes again, on a new connection.
			continue
		}
		b.inflight.Add(-1)
		return nil, err
	}
}

// roundTrip writes the request on pc and reads the response head;
// informational responses but 100 Continue are passed on at once.
func (hc *h1Conn) roundTrip(pc *backendConn, st *reqState) error {
	timeout := hc.s.p.cfg.ResponseHeaderTimeout
	pc.nothingRead = true
	id := hc.id[:]
	hc.req.write(pc.bw, hc.clientIP, hc.localPort, id, st.start.UnixMilli())
	if timeout > 0 {
		pc.c.SetReadDeadline(time.Now().Add(timeout))
	}
	hc.watchClient(pc.c, st.start)
	defer hc.unwatchClient()
	if err := pc.send(); err != nil {
		return err
	}
	pc.nothingRead = false
	for range 6 {
		if err := hc.resp.read(pc.br, hc.req.method); err != nil {
			return err
		}
		switch code := hc.resp.status; {
		case code >= 200:
			if timeout > 0 {
				pc.c.SetReadDeadline(time.Time{})
			}
			return nil
		case code == nethttp.StatusSwitchingProtocols:
			return errBackendProtocol
		case code != nethttp.StatusContinue:
			hc.resp.writeHead(hc.bw, false)
			if err := hc.bw.Flush(); err != nil {
				return err
			}
		}
	}
	return errBackendProtocol
}

// respond sends the response whose head roundTrip read, and returns the
// backend connection to its pool if it can take another request.
func (hc *h1Conn) respond(st *reqState, pc *backendConn, keep bool) (int, int64, bool) {
	p, b, resp := hc.s.p, st.backend, &hc.resp
	keep = keep && !hc.s.closing.Load() // shutting down meanwhile
	resp.writeHead(hc.bw, !keep)
	sent, err := resp.relay(hc.bw, pc.br)
	b.inflight.Add(-1)
	if err == nil && resp.keepAlive && pc.br.Buffered() == 0 {
		b.conns.put(pc, p.cfg.MaxIdleConnsPerHost, p.cfg.IdleConnTimeout)
	} else {
		pc.close()
	}
	if err != nil {
		// The client must not take a cut response for a whole one: the
		// connection ends without the rest (as ReverseProxy aborts).
		var re *relayError
		if errors.As(err, &re) && !re.client {
			hc.logError(err)
		}
		return resp.status, sent, false
	}
	if err := hc.bw.Flush(); err != nil {
		return resp.status, sent, false
	}
	return resp.status, sent, keep
}

// errorPage answers with a short text page, as errorPage does.
func (hc *h1Conn) errorPage(code int, msg string, keep bool) (int, int64, bool) {
	bw := hc.bw
	keep = keep && !hc.s.closing.Load()
	bw.WriteString("HTTP/1.1 ")
	bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(code), 10))
	bw.WriteByte(' ')
	bw.WriteString(nethttp.StatusText(code))
	bw.WriteString("\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\nDate: ")
	bw.Write(time.Now().UTC().AppendFormat(bw.AvailableBuffer(), nethttp.TimeFormat))
	bw.WriteString("\r\nContent-Length: ")
	bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(len(msg)+1), 10))
	if !keep {
		bw.WriteString("\r\nConnection: close")
	}
	bw.WriteString("\r\n\r\n")
	sent := int64(0)
	if hc.req.method != nethttp.MethodHead {
		bw.WriteString(msg)
		bw.WriteByte('\n')
		sent = int64(len(msg) + 1)
	}
	if err := bw.Flush(); err != nil {
		return code, 0, false
	}
	return code, sent, keep
}

// logError reports a proxy error to Config.ErrorLog, as the net/http
// paths do, with a request made up for it.
func (hc *h1Conn) logError(err error) {
	log := hc.s.p.cfg.ErrorLog
	if log == nil {
		return
	}
	if hc.gone.Load() {
		err = context.Canceled // as net/http's paths see it
	}
	req := &hc.req
	log(&nethttp.Request{
		Method: req.method, Host: string(req.host), URL: &url.URL{Path: req.path},
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, RemoteAddr: hc.remote,
	}, err)
}
