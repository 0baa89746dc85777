package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"syscall"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/internal/pki"
)

// HostClient talks to one host agent's API (HTTPS, authenticated with a
// client certificate of the cluster CA). Its errors for answers the agent
// gave are *api.Error with the code and HTTP status.
type HostClient struct {
	rest
	addr string
	tls  *tls.Config // for attach, which upgrades an HTTP/1.1 connection
}

// NewHostClient returns a client of the agent at addr (host:port) that
// uses the credentials in credentialsDir: ca.crt, node.crt and node.key,
// as a server or a host agent keeps them in <data-dir>/pki.
func NewHostClient(addr, credentialsDir string) (*HostClient, error) {
	creds, err := pki.LoadCredentials(credentialsDir)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	return NewHostClientTLS(addr, creds.ClientConfig()), nil
}

// NewHostClientTLS returns a client of the agent at addr with a TLS config
// that trusts the cluster CA and carries a client certificate it signed.
// The agent's certificate names its advertise IP, so addr should use it.
func NewHostClientTLS(addr string, cfg *tls.Config) *HostClient {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg.Clone()
	tr.ForceAttemptHTTP2 = true
	// No overall timeout: log streams last as long as their jobs.
	return &HostClient{rest: rest{base: "https://" + addr, hc: &http.Client{Transport: tr}}, addr: addr, tls: cfg.Clone()}
}

// Close releases idle connections.
func (c *HostClient) Close() { c.hc.CloseIdleConnections() }

// Status describes the host.
func (c *HostClient) Status(ctx context.Context) (api.HostStatus, error) {
	var st api.HostStatus
	return st, c.do(ctx, http.MethodGet, "/v1/status", nil, &st)
}

// Jobs lists the jobs the host knows, with their last status.
func (c *HostClient) Jobs(ctx context.Context) ([]api.HostJob, error) {
	var jobs []api.HostJob
	return jobs, c.do(ctx, http.MethodGet, "/v1/jobs", nil, &jobs)
}

// Job returns one job and its last status.
func (c *HostClient) Job(ctx context.Context, id string) (api.HostJob, error) {
	var hj api.HostJob
	return hj, c.do(ctx, http.MethodGet, jobPath(id, ""), nil, &hj)
}

// Stop asks the agent to stop a running job gracefully (SIGTERM, then
// SIGKILL after the job's grace period). It returns once asked; WaitJob
// waits for the end.
func (c *HostClient) Stop(ctx context.Context, id string) (api.HostJob, error) {
	var hj api.HostJob
	return hj, c.do(ctx, http.MethodPost, jobPath(id, "/stop"), nil, &hj)
}

// Signal sends sig to a running job's main process.
func (c *HostClient) Signal(ctx context.Context, id string, sig syscall.Signal) error {
	return c.do(ctx, http.MethodPost, jobPath(id, "/signal")+"?signal="+strconv.Itoa(int(sig)), nil, nil)
}

// Run starts an ad-hoc job on the host and returns it; its status and
// output come through Job and Logs.
func (c *HostClient) Run(ctx context.Context, req api.RunJobRequest) (api.Job, error) {
	var job api.Job
	return job, c.do(ctx, http.MethodPost, "/v1/jobs", req, &job)
}

// Logs calls fn for each line of a job's output: the last lines of it
// (all when lines < 0), then, with follow, new lines until the job has
// ended and all its output is sent. It returns nil at the end of the
// output, fn's error if fn fails, or ctx's.
func (c *HostClient) Logs(ctx context.Context, id string, follow bool, lines int, fn func(api.LogLine) error) error {
	q := url.Values{"follow": {strconv.FormatBool(follow)}}
	if lines >= 0 {
		q.Set("lines", strconv.Itoa(lines))
	}
	return c.logs(ctx, id, q, fn)
}

// LogsFrom is Logs from line number from on (a LogLine's Seq; 0 is the
// oldest kept), to resume a stream that broke off.
func (c *HostClient) LogsFrom(ctx context.Context, id string, from uint64, follow bool, fn func(api.LogLine) error) error {
	q := url.Values{"follow": {strconv.FormatBool(follow)}, "from": {strconv.FormatUint(from, 10)}}
	return c.logs(ctx, id, q, fn)
}

func (c *HostClient) logs(ctx context.Context, id string, q url.Values, fn func(api.LogLine) error) error {
	return streamJSON(ctx, &c.rest, jobPath(id, "/logs")+"?"+q.Encode(), fn)
}

// WaitJob polls a job until its status is terminal and returns it.
func (c *HostClient) WaitJob(ctx context.Context, id string) (api.HostJob, error) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		hj, err := c.Job(ctx, id)
		if err == nil && hj.Status != nil && hj.Status.State.Terminal() {
			return hj, nil
		}
		var apiErr *api.Error
		if errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound {
			return hj, err
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = ctx.Err()
			}
			return hj, err
		case <-t.C:
		}
	}
}

func jobPath(id, suffix string) string { return "/v1/jobs/" + url.PathEscape(id) + suffix }

// responseError turns an error answer into *api.Error.
func responseError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	apiErr := &api.Error{}
	if json.Unmarshal(b, apiErr) != nil || apiErr.Code == "" {
		apiErr = &api.Error{Code: codeFor(resp.StatusCode), Message: fmt.Sprintf("%s: %s", resp.Status, bytes.TrimSpace(b))}
	}
	apiErr.Status = resp.StatusCode
	return apiErr
}

// codeFor guesses the code of an error answer that is not an api.Error
// (a proxy's, say).
func codeFor(status int) string {
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return api.ErrCodeUnauthenticated
	case status == http.StatusNotFound:
		return api.ErrCodeNotFound
	case status == http.StatusConflict:
		return api.ErrCodeConflict
	case status == http.StatusRequestEntityTooLarge:
		return api.ErrCodeTooLarge
	case status == http.StatusNotImplemented:
		return api.ErrCodeNotImplemented
	case status >= 500:
		return api.ErrCodeUnavailable
	}
	return api.ErrCodeBadRequest
}
