package router

import (
	"context"
	"errors"
	"io"
	"net"
	nethttp "net/http"
	"strings"
	"time"
)

// The direct path. Most requests are HTTP/1.x GETs and HEADs without a
// body; for them the proxy writes the request to a pooled backend
// connection and reads the answer itself, on the handler's goroutine,
// instead of going through httputil.ReverseProxy and http.Transport.
// That saves, per request, the transport's hand-offs to its read and
// write goroutines, the read with which its read loop watches each idle
// connection, the outgoing request's copies of the URL and headers, and
// the context that carries the request's state (bench/router: the router's
// CPU per request, and its throughput beside nginx's).
//
// Everything else (bodies, upgrades, HTTP/2 clients, Expect and TE,
// methods that are not safe to send again, a FlushInterval) keeps the
// ReverseProxy path, which behaves the same for what both handle:
// headers (see writeRequest), retries of failed dials on another backend,
// sticky cookies, 502 and 503 pages, streaming flushes, and an abort of
// the client's response when the backend fails mid-body.

// direct reports whether r takes the direct path.
func (p *Proxy) direct(r *nethttp.Request) bool {
	if p.cfg.FlushInterval != 0 || r.ProtoMajor != 1 {
		return false
	}
	if r.Method != nethttp.MethodGet && r.Method != nethttp.MethodHead {
		// Only these are sent again on a fresh connection when a pooled
		// one turns out to be closed, as http.Transport does.
		return false
	}
	if (r.Body != nil && r.Body != nethttp.NoBody) || r.ContentLength != 0 {
		return false
	}
	h := r.Header
	return h["Upgrade"] == nil && h["Expect"] == nil && h["Te"] == nil
}

// serveDirect proxies r over the direct path. st.route is set.
func (p *Proxy) serveDirect(w nethttp.ResponseWriter, r *nethttp.Request, st *reqState) {
	route := st.route
	set := p.backends.viewWait(r.Context(), route.Service, p.cfg.BackendWait)
	pinned := p.pinned(r, route)
	b, err := p.choose(st, set, pinned)
	if err != nil {
		p.fail(w, r, st, err)
		return
	}
	resp, pc, err := p.exchange(w, r, st, b)
	if err != nil && !route.LeaderOnly && retryableDial(r, err) {
		// Dial failed: nothing left the router. Another backend, once.
		if next := pick(set.list, b); next != nil {
			resp, pc, err = p.exchange(w, r, st, next)
		}
	}
	if err != nil {
		p.fail(w, r, st, err)
		return
	}
	b = st.backend
	if route.Sticky && !route.LeaderOnly && b.Instance.ID != pinned {
		resp.Header.Add("Set-Cookie", p.stickyCookie(route, b.Instance.ID, st.tls).String())
	}

	h := w.Header()
	removeHopHeaders(resp.Header)
	for k, vv := range resp.Header {
		if len(h[k]) == 0 {
			h[k] = vv
		} else {
			h[k] = append(h[k], vv...)
		}
	}
	announced := len(resp.Trailer)
	if announced > 0 {
		keys := make([]string, 0, announced)
		for k := range resp.Trailer {
			keys = append(keys, k)
		}
		h.Add("Trailer", strings.Join(keys, ", "))
	}
	w.WriteHeader(resp.StatusCode)

	// Bodies of unknown length and event streams go out as they come, as
	// ReverseProxy sends them (its FlushInterval -1).
	var flusher nethttp.Flusher
	if resp.ContentLength == -1 || isEventStream(resp.Header) {
		flusher = findFlusher(w)
	}
	bp := copyBufferPool.Get().(*[]byte)
	complete, readErr := copyBody(w, resp.Body, *bp, flusher)
	copyBufferPool.Put(bp)
	if complete {
		resp.Body.Close() // at EOF: returns at once
		// Not a connection with bytes beyond the response: the next
		// exchange would take them for its answer.
		if pc.release() && !resp.Close && pc.br.Buffered() == 0 {
			b.conns.put(pc, p.cfg.MaxIdleConnsPerHost, p.cfg.IdleConnTimeout)
		} else {
			pc.close()
		}
	} else {
		// Never Close a body that is not at its end: it would read the
		// rest, which for an endless stream never comes.
		pc.release()
		pc.close()
	}
	b.inflight.Add(-1)
	if !complete {
		if p.cfg.ErrorLog != nil && readErr != nil {
			p.cfg.ErrorLog(r, readErr)
		}
		// As ReverseProxy does: the client must not take a cut response
		// for a whole one.
		panic(nethttp.ErrAbortHandler)
	}
	if len(resp.Trailer) > 0 {
		// As ReverseProxy: chunked, so that the trailers can follow;
		// those the backend did not announce go with net/http's
		// TrailerPrefix.
		if f := findFlusher(w); f != nil {
			f.Flush()
		}
		if len(resp.Trailer) == announced {
			for k, vv := range resp.Trailer {
				h[k] = append(h[k], vv...)
			}
			return
		}
		for k, vv := range resp.Trailer {
			h[nethttp.TrailerPrefix+k] = append(h[nethttp.TrailerPrefix+k], vv...)
		}
	}
}

// copyBody copies a response body to the client. complete is whether
// it reached the body's end with every byte written; readErr is the
// backend's error, if reading failed.
func copyBody(w io.Writer, body io.Reader, buf []byte, f nethttp.Flusher) (complete bool, readErr error) {
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return false, nil
			}
			if f != nil {
				f.Flush()
			}
		}
		if err == io.EOF {
			return true, nil
		}
		if err != nil {
			return false, err
		}
	}
}

func isEventStream(h nethttp.Header) bool {
	ct := h["Content-Type"]
	if len(ct) == 0 {
		return false
	}
	v := ct[0]
	if i := strings.IndexByte(v, ';'); i >= 0 {
		v = v[:i]
	}
	return strings.EqualFold(strings.TrimSpace(v), "text/event-stream")
}

// findFlusher unwraps w (the access log's recorder) to a Flusher.
func findFlusher(w nethttp.ResponseWriter) nethttp.Flusher {
	for {
		if f, ok := w.(nethttp.Flusher); ok {
			return f
		}
		u, ok := w.(interface{ Unwrap() nethttp.ResponseWriter })
		if !ok {
			return nil
		}
		w = u.Unwrap()
	}
}

// retryableDial: the backend could not be reached, so nothing was sent.
func retryableDial(r *nethttp.Request, err error) bool {
	if r.Context().Err() != nil {
		return false
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// errBackendProtocol is a backend answer the direct path cannot pass on.
var errBackendProtocol = errors.New("router: backend switched protocols unasked, or sent too many 1xx responses")

// exchange sends r to b and reads the response's head. On success b's
// in-flight count stays up and pc is the connection the body comes on;
// the caller ends both.
func (p *Proxy) exchange(w nethttp.ResponseWriter, r *nethttp.Request, st *reqState, b *Backend) (*nethttp.Response, *backendConn, error) {
	st.backend = b
	b.inflight.Add(1)
	ctx := r.Context()
	for {
		pc := b.conns.get(p.cfg.IdleConnTimeout)
		reused := pc != nil
		if pc == nil {
			c, err := p.dialer.DialContext(ctx, "tcp", b.Instance.Addr)
			if err != nil {
				b.inflight.Add(-1)
				return nil, nil, err
			}
			pc = newBackendConn(c)
		}
		pc.watch(ctx)
		resp, err := p.roundTrip(w, pc, r, st, b)
		if err == nil {
			return resp, pc, nil
		}
		pc.release()
		pc.close()
		if ctx.Err() != nil {
			b.inflight.Add(-1)
			return nil, nil, context.Cause(ctx)
		}
		if reused && pc.nothingRead && !isTimeout(err) {
			// The backend closed the idle connection before it got the
			// request (its keep-alive timeout): safe for a GET or HEAD
			// to go again, on another connection. Not after a
			// ResponseHeaderTimeout: that backend is slow, not gone.
			continue
		}
		b.inflight.Add(-1)
		return nil, nil, err
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// roundTrip writes r on pc and reads the response's head; informational
// responses go to w.
func (p *Proxy) roundTrip(w nethttp.ResponseWriter, pc *backendConn, r *nethttp.Request, st *reqState, b *Backend) (*nethttp.Response, error) {
	pc.nothingRead = true
	p.writeRequest(pc.bw, r, st, b)
	if t := p.cfg.ResponseHeaderTimeout; t > 0 {
		pc.c.SetReadDeadline(time.Now().Add(t))
	}
	if err := pc.send(); err != nil {
		return nil, err
	}
	pc.nothingRead = false
	var resp *nethttp.Response
	for range 6 {
		var err error
		if resp, err = nethttp.ReadResponse(pc.br, r); err != nil {
			return nil, err
		}
		code := resp.StatusCode
		if code >= 200 || code == nethttp.StatusSwitchingProtocols {
			break
		}
		// 1xx: informational, another response follows. Passed on, as
		// ReverseProxy does, but for 100 Continue (this request sent
		// no Expect).
		if code != nethttp.StatusContinue {
			h := w.Header()
			for k, vv := range resp.Header {
				h[k] = append(h[k], vv...)
			}
			w.WriteHeader(code)
			clear(h) // WriteHeader keeps them for the final response
		}
		resp = nil
	}
	if p.cfg.ResponseHeaderTimeout > 0 {
		pc.c.SetReadDeadline(time.Time{})
	}
	if resp == nil || resp.StatusCode == nethttp.StatusSwitchingProtocols {
		return nil, errBackendProtocol
	}
	return resp, nil
}

// hopHeaders are removed from requests and responses when proxied (RFC
// 9110, 7.6.1), as ReverseProxy removes them.
var hopHeaders = [...]string{
	"Connection",
	"Proxy-Connection",
	"Keep-Alive",
	"Proxy-Authenticate",
	"Proxy-Authorization",
	"Te",
	"Trailer",
	"Transfer-Encoding",
	"Upgrade",
}
