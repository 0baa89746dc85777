package router

import (
	"bufio"
	"bytes"
	"net/url"
	"strconv"
)

// The plain port's request heads (h1server.go): parsed in place from the
// client's read buffer, and accepted only when every byte of them is
// understood. Anything else (another method or protocol version, a body,
// an upgrade, a Connection header naming other headers, obs-folded or
// malformed lines, an absolute-form target, a head larger than the
// buffer) goes to net/http's server, which answers it as before, errors
// included. So this parser never has to be as forgiving as net/http's,
// only as strict: it passes on nothing net/http would refuse.

// h1Field is one header line the router forwards as it came.
type h1Field struct {
	name, value []byte
	requestID   bool // an X-Request-Id line
}

// h1Request is a GET or HEAD request head. Its byte slices point into
// the connection's read buffer and are valid until the head is
// discarded, after the response.
type h1Request struct {
	method    string // "GET" or "HEAD"
	target    []byte // origin-form, as sent: the path and query
	path      string // the target's path, percent-decoded, for the table
	host      []byte
	close     bool // Connection: close
	fields    []h1Field
	forwarded [][]byte // X-Forwarded-For values, in order
	clientID  []byte   // the first X-Request-Id value
	keepID    bool     // clientID is kept: it is not empty
	idSeen    bool
}

// parse reads head, which ends with an empty line, into r. false: the
// plain port's server does not take this request (see above).
func (r *h1Request) parse(head []byte) bool {
	r.fields, r.forwarded = r.fields[:0], r.forwarded[:0]
	r.host, r.close, r.clientID, r.keepID, r.idSeen = nil, false, nil, false, false

	line, rest := cutLine(head)
	if line == nil {
		return false
	}
	switch {
	case bytes.HasPrefix(line, []byte("GET ")):
		r.method, line = "GET", line[4:]
	case bytes.HasPrefix(line, []byte("HEAD ")):
		r.method, line = "HEAD", line[5:]
	default:
		return false
	}
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 || string(line[sp+1:]) != "HTTP/1.1" {
		return false
	}
	r.target = line[:sp]
	if !r.parseTarget() {
		return false
	}
	for {
		line, rest = cutLine(rest)
		if line == nil {
			return false
		}
		if len(line) == 0 {
			break
		}
		if !r.parseField(line) {
			return false
		}
	}
	return r.host != nil && len(rest) == 0
}

// parseTarget checks the request target (origin-form only, visible ASCII,
// no fragment) and sets the decoded path the table is searched with, as
// net/http's URL.Path would be.
func (r *h1Request) parseTarget() bool {
	t := r.target
	if t[0] != '/' {
		return false
	}
	escaped := false
	for _, c := range t {
		if c <= ' ' || c >= 0x7f || c == '#' {
			return false
		}
		escaped = escaped || c == '%'
	}
	p := t
	if i := bytes.IndexByte(t, '?'); i >= 0 {
		p = t[:i]
	}
	if !escaped {
		r.path = string(p)
		return true
	}
	path, err := url.PathUnescape(string(p))
	if err != nil {
		return false
	}
	r.path = path
	return true
}

// parseField takes one header line.
func (r *h1Request) parseField(line []byte) bool {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 || !validToken(line[:colon]) {
		return false // also obs-fold, which starts with a space
	}
	name, value := line[:colon], trimOWS(line[colon+1:])
	if !validValue(value) {
		return false
	}
	switch {
	case foldEq(name, "host"):
		if r.host != nil || !validHost(value) {
			return false
		}
		r.host = value
		return true
	case foldEq(name, "content-length"), foldEq(name, "transfer-encoding"),
		foldEq(name, "upgrade"), foldEq(name, "expect"), foldEq(name, "te"):
		return false // a body, an upgrade, or what the direct path leaves to ReverseProxy
	case foldEq(name, "connection"):
		return r.parseConnection(value)
	case foldEq(name, "x-forwarded-for"):
		r.forwarded = append(r.forwarded, value)
		return true
	case foldEq(name, "x-request-id"):
		if !r.idSeen {
			r.idSeen, r.keepID, r.clientID = true, len(value) > 0, value
		}
		r.fields = append(r.fields, h1Field{name: name, value: value, requestID: true})
		return true
	case foldEq(name, "forwarded"), foldEq(name, "x-forwarded-host"),
		foldEq(name, "x-forwarded-proto"), foldEq(name, "x-forwarded-port"),
		foldEq(name, "x-request-start"),
		foldEq(name, "keep-alive"), foldEq(name, "proxy-connection"),
		foldEq(name, "proxy-authenticate"), foldEq(name, "proxy-authorization"),
		foldEq(name, "trailer"):
		return true // the router's own, or hop-by-hop: dropped
	}
	r.fields = append(r.fields, h1Field{name: name, value: value})
	return true
}

// parseConnection takes "keep-alive" and "close"; a Connection header
// naming other headers goes to net/http, which removes them.
func (r *h1Request) parseConnection(v []byte) bool {
	for len(v) > 0 {
		tok := v
		if i := bytes.IndexByte(v, ','); i >= 0 {
			tok, v = v[:i], v[i+1:]
		} else {
			v = nil
		}
		switch tok = trimOWS(tok); {
		case len(tok) == 0, foldEq(tok, "keep-alive"):
		case foldEq(tok, "close"):
			r.close = true
		default:
			return false
		}
	}
	return true
}

// write writes the request to send a backend: the same head the direct
// path writes (writeRequest) for the same request.
func (r *h1Request) write(bw *bufio.Writer, clientIP string, localPort []byte, id []byte, start int64) {
	bw.WriteString(r.method)
	bw.WriteByte(' ')
	bw.Write(r.target)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.Write(r.host)
	bw.WriteString("\r\n")
	for _, f := range r.fields {
		if f.requestID && !r.keepID {
			continue
		}
		bw.Write(f.name)
		bw.WriteString(": ")
		bw.Write(f.value)
		bw.WriteString("\r\n")
	}
	bw.WriteString("X-Forwarded-For: ")
	for _, v := range r.forwarded {
		bw.Write(v)
		bw.WriteString(", ")
	}
	bw.WriteString(clientIP)
	bw.WriteString("\r\nX-Forwarded-Host: ")
	bw.Write(r.host)
	bw.WriteString("\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Port: ")
	bw.Write(localPort)
	bw.WriteString("\r\n")
	if !r.keepID {
		bw.WriteString("X-Request-Id: ")
		bw.Write(id)
		bw.WriteString("\r\n")
	}
	bw.WriteString("X-Request-Start: t=")
	bw.Write(strconv.AppendInt(bw.AvailableBuffer(), start, 10))
	bw.WriteString("\r\n\r\n")
}

// cutLine splits off the first CRLF-terminated line; nil when there is
// none, or when a bare LF or CR comes first.
func cutLine(b []byte) (line, rest []byte) {
	i := bytes.IndexByte(b, '\n')
	if i <= 0 || b[i-1] != '\r' {
		return nil, nil
	}
	line = b[:i-1]
	if bytes.IndexByte(line, '\r') >= 0 {
		return nil, nil
	}
	return line, b[i+1:]
}

// foldEq reports whether b equals lower, which is lower case, ignoring
// ASCII case.
func foldEq(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// validToken: RFC 9110's token, what a header name must be.
func validToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c >= 0x80 || !tokenChars[c] {
			return false
		}
	}
	return true
}

var tokenChars = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// validValue: no control characters but tab (obs-text is allowed, as
// net/http allows it).
func validValue(b []byte) bool {
	for _, c := range b {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// validHost: a name, IPv4 or bracketed IPv6 literal, with an optional
// port; stricter than net/http, which takes more and is left to do so.
func validHost(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.' || c == '-' || c == ':' || c == '[' || c == ']' || c == '_':
		default:
			return false
		}
	}
	return true
}
