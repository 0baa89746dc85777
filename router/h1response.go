package router

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
)

// The plain port's responses (h1server.go): a backend's head is read
// whole, checked, and written to the client without its hop-by-hop
// headers; the body is relayed as it comes, with the framing it came
// with (a Content-Length, or chunks passed on unchanged, trailers
// included), or in chunks of the router's own when the backend marks
// its end by closing the connection.

// maxResponseHead bounds a backend's response head.
const maxResponseHead = 1 << 20

var errBadResponse = errors.New("router: malformed response from backend")

// h1Response is a backend's response head.
type h1Response struct {
	head   []byte // the raw head, reused between responses
	status int
	// length is the body's Content-Length; -1 when it has none.
	length  int64
	chunked bool
	// keepAlive: the backend keeps the connection open after the body.
	keepAlive bool
	noBody    bool // HEAD, 1xx, 204, 304
}

// read reads a response head from br into r. head is the request's
// method, for which a response has no body.
func (r *h1Response) read(br *bufio.Reader, method string) error {
	r.head = r.head[:0]
	for lineStart := true; ; {
		line, err := br.ReadSlice('\n')
		if len(r.head)+len(line) > maxResponseHead {
			return errBadResponse
		}
		r.head = append(r.head, line...)
		if err == bufio.ErrBufferFull {
			lineStart = false // the rest of a long line follows
			continue
		}
		if err != nil {
			if err == io.EOF && len(r.head) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		if lineStart && (len(line) == 1 || (len(line) == 2 && line[0] == '\r')) {
			break // the empty line
		}
		lineStart = true
	}
	return r.parse(method)
}

func (r *h1Response) parse(method string) error {
	status, rest := cutLineLF(r.head)
	// HTTP/1.x NNN[ reason]
	if len(status) < 12 || !bytes.HasPrefix(status, []byte("HTTP/1.")) || status[8] != ' ' ||
		(len(status) > 12 && status[12] != ' ') {
		return errBadResponse
	}
	code, err := strconv.Atoi(string(status[9:12]))
	if err != nil || code < 100 {
		return errBadResponse
	}
	r.status, r.length, r.chunked = code, -1, false
	r.keepAlive = status[7] == '1'
	r.noBody = method == "HEAD" || code < 200 || code == 204 || code == 304
	for {
		var line []byte
		line, rest = cutLineLF(rest)
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !validToken(line[:colon]) {
			return errBadResponse
		}
		name, value := line[:colon], trimOWS(line[colon+1:])
		if !validValue(value) {
			return errBadResponse // a CR or NUL the client could take apart
		}
		switch {
		case foldEq(name, "content-length"):
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || n < 0 || (r.length >= 0 && n != r.length) {
				return errBadResponse
			}
			r.length = n
		case foldEq(name, "transfer-encoding"):
			if !foldEq(value, "chunked") || r.chunked {
				return errBadResponse // net/http takes nothing else either
			}
			r.chunked = true
		case foldEq(name, "connection"):
			if bytes.Contains(bytes.ToLower(value), []byte("close")) {
				r.keepAlive = false
			}
		}
	}
	if r.chunked {
		r.length = -1 // chunked framing wins over a length (RFC 9112, 6.3)
	}
	if !r.noBody && !r.chunked && r.length < 0 {
		r.keepAlive = false // the body ends when the connection does
	}
	return nil
}

// writeHead writes the head to the client: HTTP/1.1, without hop-by-hop
// headers and those the backend's Connection header names, with the
// framing the client gets (the backend's, or chunks when it had none).
// close adds "Connection: close".
func (r *h1Response) writeHead(bw *bufio.Writer, close bool) {
	status, rest := cutLineLF(r.head)
	bw.WriteString("HTTP/1.1")
	bw.Write(status[8:])
	bw.WriteString("\r\n")
	var connection []byte
	for l := rest; ; {
		var line []byte
		if line, l = cutLineLF(l); len(line) == 0 {
			break
		}
		if name := line[:bytes.IndexByte(line, ':')]; foldEq(name, "connection") {
			connection = append(append(connection, line[len(name)+1:]...), ',')
		}
	}
	for {
		var line []byte
		if line, rest = cutLineLF(rest); len(line) == 0 {
			break
		}
		name := line[:bytes.IndexByte(line, ':')]
		if r.dropped(name, connection) {
			continue
		}
		bw.Write(line)
		bw.WriteString("\r\n")
	}
	if r.chunked || (!r.noBody && r.length < 0) {
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if close {
		bw.WriteString("Connection: close\r\n")
	}
	bw.WriteString("\r\n")
}

// dropped: a hop-by-hop header, or one the Connection header names. A
// Trailer header stays with a chunked body, whose trailers are passed on.
func (r *h1Response) dropped(name, connection []byte) bool {
	switch {
	case foldEq(name, "connection"), foldEq(name, "keep-alive"), foldEq(name, "proxy-connection"),
		foldEq(name, "proxy-authenticate"), foldEq(name, "proxy-authorization"),
		foldEq(name, "te"), foldEq(name, "transfer-encoding"), foldEq(name, "upgrade"):
		return true
	case foldEq(name, "trailer"):
		return !r.chunked
	case foldEq(name, "content-length"):
		return r.chunked
	}
	for v := connection; len(v) > 0; {
		i := bytes.IndexByte(v, ',')
		if bytes.EqualFold(trimOWS(v[:i]), name) {
			return true
		}
		v = v[i+1:]
	}
	return false
}

// cutLineLF splits off the first line, without its CRLF or LF.
func cutLineLF(b []byte) (line, rest []byte) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return b, nil
	}
	line, rest = b[:i], b[i+1:]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, rest
}

// relayError says which side failed while a body was relayed.
type relayError struct {
	client bool // writing to the client failed; else reading the backend
	err    error
}

func (e *relayError) Error() string { return e.err.Error() }
func (e *relayError) Unwrap() error { return e.err }

func backendErr(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return &relayError{err: err}
}

// relay copies the body of r from br to bw and reports how many body
// bytes the client was sent. What br holds is written at once; before
// waiting on the backend for more, bw is flushed, so that a slow or
// streaming body reaches the client as it comes.
func (r *h1Response) relay(bw *bufio.Writer, br *bufio.Reader) (int64, error) {
	switch {
	case r.noBody:
		return 0, nil
	case r.chunked:
		return relayChunks(bw, br)
	case r.length >= 0:
		return relayN(bw, br, r.length)
	}
	return relayToEOF(bw, br)
}

// relayN copies n bytes.
func relayN(bw *bufio.Writer, br *bufio.Reader, n int64) (int64, error) {
	var sent int64
	var buf *[]byte
	defer func() {
		if buf != nil {
			copyBufferPool.Put(buf)
		}
	}()
	for sent < n {
		if k := br.Buffered(); k > 0 {
			b, _ := br.Peek(int(min(int64(k), n-sent)))
			if _, err := bw.Write(b); err != nil {
				return sent, &relayError{client: true, err: err}
			}
			br.Discard(len(b))
			sent += int64(len(b))
			continue
		}
		if err := bw.Flush(); err != nil {
			return sent, &relayError{client: true, err: err}
		}
		if buf == nil {
			buf = copyBufferPool.Get().(*[]byte)
		}
		// br is empty and buf larger than it: this reads straight
		// into buf.
		k, err := br.Read((*buf)[:min(int64(len(*buf)), n-sent)])
		if k > 0 {
			if _, werr := bw.Write((*buf)[:k]); werr != nil {
				return sent, &relayError{client: true, err: werr}
			}
			sent += int64(k)
		}
		if err != nil && sent < n {
			return sent, backendErr(err)
		}
	}
	return sent, nil
}

// relayChunks passes a chunked body on as it came: each chunk's size
// line, its data and CRLF, the last chunk and the trailers. The size
// lines are parsed, strictly, to know where the body ends.
func relayChunks(bw *bufio.Writer, br *bufio.Reader) (int64, error) {
	var sent int64
	for {
		line, err := readCRLFLine(bw, br)
		if err != nil {
			return sent, err
		}
		size, ok := chunkSize(line)
		if !ok {
			return sent, backendErr(errBadResponse)
		}
		if _, err := bw.Write(line); err != nil {
			return sent, &relayError{client: true, err: err}
		}
		if size == 0 {
			// Trailers, up to the empty line.
			for {
				line, err := readCRLFLine(bw, br)
				if err != nil {
					return sent, err
				}
				if _, err := bw.Write(line); err != nil {
					return sent, &relayError{client: true, err: err}
				}
				if len(line) == 2 {
					return sent, nil
				}
			}
		}
		n, err := relayN(bw, br, size)
		sent += n
		if err != nil {
			return sent, err
		}
		line, err = readCRLFLine(bw, br)
		if err != nil {
			return sent, err
		}
		if len(line) != 2 {
			return sent, backendErr(errBadResponse)
		}
		bw.Write(line)
	}
}

// readCRLFLine reads one line of chunked framing, CRLF included; bw is
// flushed first if the line has to be waited for.
func readCRLFLine(bw *bufio.Writer, br *bufio.Reader) ([]byte, error) {
	if br.Buffered() == 0 {
		if err := bw.Flush(); err != nil {
			return nil, &relayError{client: true, err: err}
		}
	}
	line, err := br.ReadSlice('\n')
	if err != nil {
		if err == bufio.ErrBufferFull {
			err = errBadResponse // a chunk line of 4 KiB is no chunk line
		}
		return nil, backendErr(err)
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, backendErr(errBadResponse)
	}
	return line, nil
}

// chunkSize parses a chunk-size line: hex digits, then extensions or the
// CRLF.
func chunkSize(line []byte) (int64, bool) {
	var n int64
	i := 0
	for ; i < len(line); i++ {
		c := line[i]
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			if i == 0 || (c != ';' && c != '\r' && c != ' ' && c != '\t') {
				return 0, false
			}
			return n, true
		}
		if n > 1<<55 {
			return 0, false
		}
		n = n<<4 | int64(d)
	}
	return 0, false
}

// relayToEOF sends a body that ends when the backend closes the
// connection as chunks of what each read brings.
func relayToEOF(bw *bufio.Writer, br *bufio.Reader) (int64, error) {
	buf := copyBufferPool.Get().(*[]byte)
	defer copyBufferPool.Put(buf)
	var sent int64
	for {
		if br.Buffered() == 0 {
			if err := bw.Flush(); err != nil {
				return sent, &relayError{client: true, err: err}
			}
		}
		k, err := br.Read(*buf)
		if k > 0 {
			bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(k), 16))
			bw.WriteString("\r\n")
			bw.Write((*buf)[:k])
			if _, werr := bw.WriteString("\r\n"); werr != nil {
				return sent, &relayError{client: true, err: werr}
			}
			sent += int64(k)
		}
		if err == io.EOF {
			_, werr := bw.WriteString("0\r\n\r\n")
			if werr != nil {
				return sent, &relayError{client: true, err: werr}
			}
			return sent, nil
		}
		if err != nil {
			return sent, &relayError{err: err}
		}
	}
}
