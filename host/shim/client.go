package shim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"syscall"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/runtime"
)

// Client talks to a running shim over its socket.
type Client struct {
	hc     *http.Client
	socket string
}

// NewClient returns a client of the shim serving socket.
func NewClient(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}
	return &Client{hc: &http.Client{Transport: tr}, socket: socket}
}

// Status returns the job's start and, if it ended, its result.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	return s, c.do(ctx, http.MethodGet, "/status", &s)
}

// Wait blocks until the job ends and returns its status.
func (c *Client) Wait(ctx context.Context) (Status, error) {
	var s Status
	return s, c.do(ctx, http.MethodGet, "/wait", &s)
}

// Signal sends sig to the job's main process.
func (c *Client) Signal(ctx context.Context, sig syscall.Signal) error {
	return c.do(ctx, http.MethodPost, "/signal?signal="+strconv.Itoa(int(sig)), nil)
}

// ErrAttached is Attach's error while another client is attached.
var ErrAttached = errors.New("shim: another client is attached to the job")

// Attach connects to the job's stdio and returns the connection, which
// speaks the frames of api/attach.go; size is the terminal's, or zero.
// ctx bounds the handshake only.
func (c *Client) Attach(ctx context.Context, size runtime.ConsoleSize) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.socket)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	q := url.Values{}
	if size.Rows > 0 || size.Cols > 0 {
		q.Set("rows", strconv.Itoa(int(size.Rows)))
		q.Set("cols", strconv.Itoa(int(size.Cols)))
	}
	req, _ := http.NewRequest(http.MethodGet, "http://shim/attach?"+q.Encode(), nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", api.AttachUpgrade)
	br := bufio.NewReader(conn)
	resp, err := func() (*http.Response, error) {
		if err := req.Write(conn); err != nil {
			return nil, err
		}
		return http.ReadResponse(br, req)
	}()
	if !stop() || err != nil {
		conn.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("shim: attach: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		conn.Close()
		if resp.StatusCode == http.StatusConflict {
			return nil, ErrAttached
		}
		return nil, fmt.Errorf("shim: attach: %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	return &bufConn{Conn: conn, r: br}, nil
}

// Close releases idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

func (c *Client) do(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://shim"+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("shim: %s: %s", resp.Status, b)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
