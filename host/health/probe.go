package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// maxRedirects bounds same-host redirects, so a redirect loop is a
// failure rather than a probe that runs until its timeout.
const maxRedirects = 5

// prober makes one probe; nil means the port is serving.
type prober interface {
	probe(ctx context.Context) error
	close()
}

func newProber(c Check) prober {
	if c.Kind == KindTCP {
		return tcpProber{addr: c.Addr, dialer: net.Dialer{Timeout: c.Timeout}}
	}
	return newHTTPProber(c)
}

type tcpProber struct {
	addr   string
	dialer net.Dialer
}

func (p tcpProber) probe(ctx context.Context) error {
	conn, err := p.dialer.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return err
	}
	return conn.Close()
}

func (tcpProber) close() {}

type httpProber struct {
	check  Check
	url    string
	client *http.Client
}

func newHTTPProber(c Check) *httpProber {
	dialer := &net.Dialer{Timeout: c.Timeout}
	tr := &http.Transport{
		// The job is local: never go through a proxy from the agent's
		// environment.
		Proxy:       nil,
		DialContext: dialer.DialContext,
		// A fresh connection each probe: a pooled one could outlive the
		// process that accepted it, and each probe should prove the
		// port still accepts.
		DisableKeepAlives:      true,
		DisableCompression:     true,
		ResponseHeaderTimeout:  c.Timeout,
		MaxResponseHeaderBytes: 64 << 10,
	}
	client := &http.Client{
		Transport: tr,
		Timeout:   c.Timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			// Following a redirect to another host would probe something
			// other than the job (and could be pointed anywhere by the
			// app); judge the redirect itself instead.
			if req.URL.Scheme != "http" || req.URL.Host != c.Addr {
				return http.ErrUseLastResponse
			}
			if len(via) > maxRedirects {
				return fmt.Errorf("more than %d redirects", maxRedirects)
			}
			return nil
		},
	}
	return &httpProber{check: c, url: probeURL(c), client: client}
}

func (p *httpProber) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.check.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "pier-health/1")
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	// Read a little of the body so a server that writes one before
	// looking at the connection sees a clean close, but no more: a huge
	// or endless body must not make the probe slow.
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	if !p.statusOK(resp.StatusCode) {
		return &StatusError{Code: resp.StatusCode, Want: p.check.ExpectStatus}
	}
	return nil
}

func (p *httpProber) statusOK(code int) bool {
	if p.check.ExpectStatus != 0 {
		return code == p.check.ExpectStatus
	}
	return code >= 200 && code < 400
}

func (p *httpProber) close() { p.client.CloseIdleConnections() }

// StatusError is an HTTP answer with a status that does not count as
// healthy.
type StatusError struct {
	Code int
	Want int // 0: any 2xx or 3xx
}

func (e *StatusError) Error() string {
	if e.Want != 0 {
		return fmt.Sprintf("health: HTTP status %d, want %d", e.Code, e.Want)
	}
	return fmt.Sprintf("health: HTTP status %d, want 2xx or 3xx", e.Code)
}

// errText makes a probe error short enough for a status line: a timeout
// says so plainly instead of naming Go's context machinery.
func errText(err error, timeout time.Duration) string {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return fmt.Sprintf("timed out after %v: %v", timeout, err)
	}
	return err.Error()
}
