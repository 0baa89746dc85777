package client

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/pierpaas/pier/api"
)

// AttachOptions shape an attachment.
type AttachOptions struct {
	// Rows and Cols are the terminal's size, for a job with a TTY; zero
	// leaves it unset.
	Rows, Cols uint16
}

// ErrAttachBroken is Copy's error when the connection ended before the
// job did: the agent restarted, say. The job goes on; its output is in
// its log and its end in its status.
var ErrAttachBroken = errors.New("client: the attachment ended before the job")

// AttachConn is a connection to a running job's stdio (see api/attach.go):
// Write sends input, Copy receives output and the job's exit. Writes are
// safe for concurrent use with each other and with Copy.
type AttachConn struct {
	conn net.Conn
	r    *bufio.Reader
	wmu  sync.Mutex
}

// Attach connects to a job's stdio. A job created with TTY or Stdin waits
// for this before it starts; for one that has not started yet, Attach
// waits while its host prepares it. A job that has ended gives an
// *api.Error with status 409. ctx bounds the connecting only.
func (c *HostClient) Attach(ctx context.Context, id string, opts AttachOptions) (*AttachConn, error) {
	return dialAttach(ctx, tlsDialer(c.tls), c.addr, c.base+jobPath(id, "/attach"), opts, nil)
}

// dialFunc opens a TLS connection for an attachment.
type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// tlsDialer dials with cfg, offering HTTP/1.1 only: an upgrade is an
// HTTP/1.1 affair.
func tlsDialer(cfg *tls.Config) dialFunc {
	cfg = cfg.Clone()
	cfg.NextProtos = []string{"http/1.1"}
	return (&tls.Dialer{Config: cfg}).DialContext
}

// dialAttach makes the attach upgrade request to target at addr over a
// connection from dial.
func dialAttach(ctx context.Context, dial dialFunc, addr, target string, opts AttachOptions, hdr http.Header) (*AttachConn, error) {
	conn, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	q := url.Values{}
	if opts.Rows > 0 && opts.Cols > 0 {
		q.Set("rows", strconv.Itoa(int(opts.Rows)))
		q.Set("cols", strconv.Itoa(int(opts.Cols)))
	}
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	req, err := http.NewRequest(http.MethodGet, target, nil)
	if err != nil {
		conn.Close()
		return nil, err
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", api.AttachUpgrade)
	br := bufio.NewReader(conn)
	var resp *http.Response
	if err = req.Write(conn); err == nil {
		resp, err = http.ReadResponse(br, req)
	}
	if !stop() {
		conn.Close()
		return nil, ctx.Err()
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("client: attach: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer conn.Close()
		return nil, responseError(resp)
	}
	return &AttachConn{conn: conn, r: br}, nil
}

// Splice relays the attachment both ways between it and conn, whose
// peer speaks the same frames (a controller between a CLI and an
// agent), until either side ends; then it closes both.
func (a *AttachConn) Splice(conn net.Conn, buffered io.Reader) {
	done := make(chan struct{}, 2)
	go func() {
		io.Copy(a.conn, buffered)
		done <- struct{}{}
	}()
	go func() {
		io.Copy(conn, a.r)
		done <- struct{}{}
	}()
	<-done
	a.conn.Close()
	conn.Close()
	<-done
}

// Write sends p to the job's stdin.
func (a *AttachConn) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), 32<<10)]
		if err := a.send(api.FrameStdin, chunk); err != nil {
			return n, err
		}
		n += len(chunk)
		p = p[len(chunk):]
	}
	return n, nil
}

// CloseStdin ends the job's input (with a TTY, it types ^D).
func (a *AttachConn) CloseStdin() error { return a.send(api.FrameCloseStdin, nil) }

// Resize sets the size of the job's terminal.
func (a *AttachConn) Resize(rows, cols uint16) error {
	return a.send(api.FrameResize, api.ResizePayload(rows, cols))
}

func (a *AttachConn) send(typ byte, p []byte) error {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	return api.WriteFrame(a.conn, typ, p)
}

// Copy writes the job's output to stdout and stderr (either may be nil to
// discard it) as it comes, until the job ends, and returns how it ended.
// If the connection ends first, the error is ErrAttachBroken.
func (a *AttachConn) Copy(stdout, stderr io.Writer) (api.AttachExit, error) {
	for {
		typ, p, err := api.ReadFrame(a.r)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
				return api.AttachExit{}, ErrAttachBroken
			}
			return api.AttachExit{}, fmt.Errorf("%w: %w", ErrAttachBroken, err)
		}
		var w io.Writer
		switch typ {
		case api.FrameStdout:
			w = stdout
		case api.FrameStderr:
			w = stderr
		case api.FrameExit:
			var ex api.AttachExit
			if err := json.Unmarshal(p, &ex); err != nil {
				return ex, fmt.Errorf("client: attach: bad exit: %w", err)
			}
			return ex, nil
		}
		if w != nil {
			if _, err := w.Write(p); err != nil {
				return api.AttachExit{}, err
			}
		}
	}
}

// Close ends the attachment; without a TTY that ends the job's input too.
func (a *AttachConn) Close() error { return a.conn.Close() }
