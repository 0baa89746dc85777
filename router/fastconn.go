package router

import (
	"bufio"
	"context"
	"io"
	"net"
	nethttp "net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The direct path's wire format and connections: the request as
// http.Transport would write it, and the per-backend pools of kept-alive
// connections it reuses.

func isHopHeader(k string) bool {
	for _, h := range hopHeaders {
		if k == h {
			return true
		}
	}
	return false
}

// removeHopHeaders removes hop-by-hop headers from h, and the headers
// its Connection header names.
func removeHopHeaders(h nethttp.Header) {
	for _, v := range h["Connection"] {
		for sf := range strings.SplitSeq(v, ",") {
			if sf = strings.TrimSpace(sf); sf != "" {
				h.Del(sf)
			}
		}
	}
	for _, k := range hopHeaders {
		delete(h, k)
	}
}

// inConnection reports whether the Connection header values vv name k.
func inConnection(vv []string, k string) bool {
	for _, v := range vv {
		for sf := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(sf), k) {
				return true
			}
		}
	}
	return false
}

// writeRequest writes the head of the request to send to b, with the
// same headers the ReverseProxy path sends (rewrite): the client's,
// without hop-by-hop headers, Forwarded and X-Forwarded-Host, -Proto
// and -Port, plus the router's X-Forwarded-*, X-Request-Id and
// X-Request-Start. The URL is written as http.Transport writes it.
func (p *Proxy) writeRequest(bw *bufio.Writer, r *nethttp.Request, st *reqState, b *Backend) {
	bw.WriteString(r.Method)
	bw.WriteByte(' ')
	u := r.URL
	if u.Opaque != "" || (u.Path == "" && u.RawPath == "") {
		bw.WriteString(u.RequestURI())
	} else {
		bw.WriteString(u.EscapedPath())
		if u.ForceQuery || u.RawQuery != "" {
			bw.WriteByte('?')
			bw.WriteString(u.RawQuery)
		}
	}
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	host := r.Host
	if host == "" {
		host = b.Instance.Addr
	}
	bw.WriteString(host)
	bw.WriteString("\r\n")

	conn := r.Header["Connection"]
	keepID := false
	for k, vv := range r.Header {
		switch k {
		case "Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Port", "X-Request-Start":
			continue
		case "X-Request-Id":
			if len(vv) == 0 || vv[0] == "" {
				continue
			}
			keepID = true
		}
		if isHopHeader(k) || (conn != nil && inConnection(conn, k)) {
			continue
		}
		for _, v := range vv {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	// X-Forwarded-For: the client appended to what it came with (which
	// the Connection header cannot remove: ReverseProxy keeps it too).
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		bw.WriteString("X-Forwarded-For: ")
		for _, v := range r.Header["X-Forwarded-For"] {
			bw.WriteString(v)
			bw.WriteString(", ")
		}
		bw.WriteString(ip)
		bw.WriteString("\r\n")
	} // else none, as ReverseProxy's SetXForwarded does
	bw.WriteString("X-Forwarded-Host: ")
	bw.WriteString(r.Host)
	bw.WriteString("\r\n")
	if r.TLS != nil {
		bw.WriteString("X-Forwarded-Proto: https\r\n")
	} else {
		bw.WriteString("X-Forwarded-Proto: http\r\n")
	}
	bw.WriteString("X-Forwarded-Port: ")
	bw.Write(appendLocalPort(bw.AvailableBuffer(), r))
	bw.WriteString("\r\n")
	if !keepID {
		bw.WriteString("X-Request-Id: ")
		bw.WriteString(st.requestID)
		bw.WriteString("\r\n")
	}
	bw.WriteString("X-Request-Start: t=")
	bw.Write(strconv.AppendInt(bw.AvailableBuffer(), st.start.UnixMilli(), 10))
	bw.WriteString("\r\n\r\n")
}

// appendLocalPort appends localPort(r), without its allocations for a
// TCP listener.
func appendLocalPort(b []byte, r *nethttp.Request) []byte {
	if a, ok := r.Context().Value(nethttp.LocalAddrContextKey).(*net.TCPAddr); ok {
		return strconv.AppendInt(b, int64(a.Port), 10)
	}
	return append(b, localPort(r)...)
}

// backendConn is a keep-alive connection of the direct path.
type backendConn struct {
	c      net.Conn
	raw    syscall.RawConn // nil unless c is a TCP connection
	br     *bufio.Reader   // reads through the backendConn (Read)
	bw     *bufio.Writer
	idleAt time.Time

	// for one exchange:
	stop        func() bool // ends the watch of the request's context
	nothingRead bool        // no byte of a response came yet
	sendOnRead  bool        // bw holds a request: the next Read sends it
	rd          rawRead
	readFn      func(fd uintptr) bool // pc.sendThenRead
}

var (
	connReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}
	connWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}
)

func newBackendConn(c net.Conn) *backendConn {
	pc := &backendConn{c: c}
	if tc, ok := c.(*net.TCPConn); ok {
		pc.raw, _ = tc.SyscallConn()
		pc.readFn = pc.sendThenRead
	}
	pc.br = connReaders.Get().(*bufio.Reader)
	pc.br.Reset(pc)
	pc.bw = connWriters.Get().(*bufio.Writer)
	pc.bw.Reset(c)
	return pc
}

// send sends the request bw holds and waits for the first bytes of the
// answer (the caller then reads it from br).
//
// Go reads a socket before it waits on it, and a read right after a
// request nearly always finds nothing yet: a system call for EAGAIN
// (bench/router counts them). On a TCP connection the request is instead
// written from inside the read's wait (Read): the poller's readiness is
// reset when a read starts, so an answer arriving after the write wakes
// the wait, and one read takes it.
func (pc *backendConn) send() error {
	if pc.raw == nil {
		if err := pc.bw.Flush(); err != nil {
			return err
		}
	} else {
		pc.sendOnRead = true
	}
	_, err := pc.br.Peek(1)
	return err
}

// Read reads from the connection for br; the first Read after send
// writes the request first (see send).
func (pc *backendConn) Read(p []byte) (int, error) {
	if !pc.sendOnRead {
		return pc.c.Read(p)
	}
	pc.sendOnRead = false
	rd := &pc.rd
	*rd = rawRead{p: p}
	err := pc.raw.Read(pc.readFn)
	switch {
	case rd.werr != nil:
		return 0, rd.werr
	case err != nil:
		return 0, err
	case rd.rerr != nil:
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: pc.c.LocalAddr(), Addr: pc.c.RemoteAddr(), Err: os.NewSyscallError("read", rd.rerr)}
	case rd.n == 0 && len(p) > 0:
		return 0, io.EOF
	}
	return rd.n, nil
}

// rawRead is the state of one Read after send, kept in the backendConn
// so that its callback (readFn, made once) allocates nothing.
type rawRead struct {
	p          []byte
	n          int
	sent       bool
	rerr, werr error
}

// sendThenRead is the callback of a Read after send: first the request,
// then, once the poller reports the answer, the read.
func (pc *backendConn) sendThenRead(fd uintptr) bool {
	rd := &pc.rd
	if !rd.sent {
		// Nothing to read before the request: wait unless the write
		// failed.
		rd.sent = true
		rd.werr = pc.bw.Flush()
		return rd.werr != nil
	}
	for {
		rd.n, rd.rerr = syscall.Read(int(fd), rd.p)
		if rd.rerr != syscall.EINTR {
			break
		}
	}
	if rd.n < 0 {
		rd.n = 0
	}
	return rd.rerr != syscall.EAGAIN
}

// aLongTimeAgo is a deadline in the past: it makes blocked reads and
// writes on a connection return at once.
var aLongTimeAgo = time.Unix(1, 0)

// watch cuts pc's reads and writes short when ctx ends (the client went
// away, the server shuts down), until release.
func (pc *backendConn) watch(ctx context.Context) {
	if ctx.Done() == nil {
		return
	}
	c := pc.c
	pc.stop = context.AfterFunc(ctx, func() { c.SetDeadline(aLongTimeAgo) })
}

// release ends the watch of the request's context; false if it fired,
// and the connection can no longer be used.
func (pc *backendConn) release() bool {
	if pc.stop == nil {
		return true
	}
	ok := pc.stop()
	pc.stop = nil
	return ok
}

func (pc *backendConn) close() {
	pc.c.Close()
	if pc.br != nil {
		pc.br.Reset(nil)
		connReaders.Put(pc.br)
		pc.bw.Reset(nil)
		connWriters.Put(pc.bw)
		pc.br, pc.bw = nil, nil
	}
}

// connPool holds a backend's idle connections, the most recently used
// first out, so that in a quiet spell the others age and are closed.
type connPool struct {
	mu     sync.Mutex
	idle   []*backendConn
	closed bool        // the backend is down: no more pooling
	sweep  *time.Timer // closes connections idle too long; nil while idle is empty
}

// get takes the most recently used idle connection not older than
// maxIdle; nil if there is none.
func (cp *connPool) get(maxIdle time.Duration) *backendConn {
	cp.mu.Lock()
	n := len(cp.idle)
	if n == 0 {
		cp.mu.Unlock()
		return nil
	}
	pc := cp.idle[n-1]
	cp.idle[n-1] = nil
	cp.idle = cp.idle[:n-1]
	cp.mu.Unlock()
	if time.Since(pc.idleAt) > maxIdle {
		// The most recent one is stale: so are the others.
		pc.close()
		cp.closeIdle()
		return nil
	}
	return pc
}

// put returns pc to the pool, or closes it when the pool is full or the
// backend down.
func (cp *connPool) put(pc *backendConn, max int, maxIdle time.Duration) {
	pc.idleAt = time.Now()
	cp.mu.Lock()
	if cp.closed || len(cp.idle) >= max {
		cp.mu.Unlock()
		pc.close()
		return
	}
	cp.idle = append(cp.idle, pc)
	if cp.sweep == nil {
		cp.sweep = time.AfterFunc(maxIdle, func() { cp.expire(maxIdle) })
	}
	cp.mu.Unlock()
}

// expire closes the connections idle longer than maxIdle, and runs
// again while any is left.
func (cp *connPool) expire(maxIdle time.Duration) {
	cp.mu.Lock()
	cut := time.Now().Add(-maxIdle)
	var stale []*backendConn
	keep := cp.idle[:0]
	for _, pc := range cp.idle {
		if pc.idleAt.Before(cut) {
			stale = append(stale, pc)
		} else {
			keep = append(keep, pc)
		}
	}
	clear(cp.idle[len(keep):])
	cp.idle = keep
	cp.sweep = nil
	if len(keep) > 0 {
		cp.sweep = time.AfterFunc(maxIdle, func() { cp.expire(maxIdle) })
	}
	cp.mu.Unlock()
	for _, pc := range stale {
		pc.close()
	}
}

// closeIdle closes every idle connection.
func (cp *connPool) closeIdle() {
	if cp == nil {
		return
	}
	cp.mu.Lock()
	idle := cp.idle
	cp.idle = nil
	if cp.sweep != nil {
		cp.sweep.Stop()
		cp.sweep = nil
	}
	cp.mu.Unlock()
	for _, pc := range idle {
		pc.close()
	}
}

// close closes the idle connections and pools none from now on.
func (cp *connPool) close() {
	if cp == nil {
		return
	}
	cp.mu.Lock()
	cp.closed = true
	cp.mu.Unlock()
	cp.closeIdle()
}

// closeIdle closes the idle connections of every backend the proxy
// knows, for Proxy.Close.
func (bs *Backends) closeIdle() {
	m := bs.snap.Load()
	if m == nil {
		return
	}
	for _, s := range *m {
		if v := s.state.Load(); v != nil {
			for _, b := range v.list {
				b.conns.closeIdle()
			}
		}
	}
}
