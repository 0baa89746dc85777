package router

import (
	"io"
	"net"
	nethttp "net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// The access log is one JSON object per line and request:
//
//	{"time":"2026-01-01T10:00:00.123456789Z","request_id":"…","method":"GET",
//	 "host":"hello.example.com","path":"/x","status":200,"bytes":1234,
//	 "duration_ms":1.234,"route":"r1","backend":"10.0.0.5:41000",
//	 "client_ip":"203.0.113.7"}
//
// "time" is when the request arrived, "bytes" the response body sent to
// the client (for an upgraded connection, everything the backend sent),
// "route" and "backend" are "" when there was none (404, redirect, no
// healthy backend). The query string is left out: it often carries
// tokens. Lines are encoded by hand into pooled buffers, since the log
// is written on every request of the router's hot path.

// recorder captures what the proxy sends a client. It unwraps for
// http.ResponseController, so flushes and hijacks reach the server's
// own ResponseWriter.
type recorder struct {
	nethttp.ResponseWriter
	status int
	bytes  int64
}

func (r *recorder) WriteHeader(code int) {
	// 1xx are interim (100 Continue, 103 Early Hints), except 101,
	// which ReverseProxy writes on the hijacked connection anyway.
	if r.status == 0 && code >= 200 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = nethttp.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) Unwrap() nethttp.ResponseWriter { return r.ResponseWriter }

// observe counts and logs a finished request.
func (p *Proxy) observe(r *nethttp.Request, st *reqState, rec *recorder, rm *routeMetrics) {
	elapsed := time.Since(st.start)
	status, bytes := rec.status, rec.bytes
	if st.upgrade != nil {
		status, bytes = nethttp.StatusSwitchingProtocols, st.upgrade.read.Load()
	}
	if status == 0 {
		status = nethttp.StatusOK // what net/http sends for a silent handler
	}
	p.count(st, rm, status, elapsed)
	if p.alog != nil {
		host := r.Host
		if host == "" {
			host = r.URL.Host
		}
		p.alog.write(logRequest{r.Method, host, r.URL.Path, r.RemoteAddr}, st, status, bytes, elapsed)
	}
}

// count adds a finished request to its route's metrics.
func (p *Proxy) count(st *reqState, rm *routeMetrics, status int, elapsed time.Duration) {
	if p.metrics == nil {
		return
	}
	switch {
	case st.route == nil:
		p.metrics.unrouted.Inc()
	case rm != nil:
		rm.inflight.Dec()
		rm.codes[statusClass(status)].Inc()
		if st.upgrade == nil {
			rm.duration.Observe(elapsed.Seconds())
		}
	}
}

// logRequest is what an access log line says of the request.
type logRequest struct{ method, host, path, remoteAddr string }

// accessLog writes lines to w, one Write per line, so that concurrent
// requests never interleave within a line.
type accessLog struct {
	mu sync.Mutex
	w  io.Writer
}

var logBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func (l *accessLog) write(r logRequest, st *reqState, status int, bytes int64, elapsed time.Duration) {
	bp := logBufs.Get().(*[]byte)
	b := (*bp)[:0]
	b = append(b, `{"time":"`...)
	b = st.start.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","request_id":`...)
	b = appendJSONString(b, st.requestID)
	b = append(b, `,"method":`...)
	b = appendJSONString(b, r.method)
	b = append(b, `,"host":`...)
	b = appendJSONString(b, r.host)
	b = append(b, `,"path":`...)
	b = appendJSONString(b, r.path)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, bytes, 10)
	b = append(b, `,"duration_ms":`...)
	b = strconv.AppendFloat(b, float64(elapsed.Microseconds())/1000, 'f', 3, 64)
	route, backend := "", ""
	if st.route != nil {
		route = st.route.ID
	}
	if st.backend != nil {
		backend = st.backend.Instance.Addr
	}
	b = append(b, `,"route":`...)
	b = appendJSONString(b, route)
	b = append(b, `,"backend":`...)
	b = appendJSONString(b, backend)
	b = append(b, `,"client_ip":`...)
	ip, _, err := net.SplitHostPort(r.remoteAddr)
	if err != nil {
		ip = r.remoteAddr
	}
	b = appendJSONString(b, ip)
	b = append(b, "}\n"...)

	l.mu.Lock()
	l.w.Write(b) // nowhere to report a failing log
	l.mu.Unlock()
	*bp = b
	if cap(b) <= 64<<10 { // let an odd huge line go
		logBufs.Put(bp)
	}
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. Bytes that are not UTF-8
// become U+FFFD: paths and hosts come from clients, and one bad byte must
// not make the line unreadable.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
