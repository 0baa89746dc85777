package build

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
	"os"
	"strings"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/internal/pki"
)

// errNotFound is a 404 from the controller: for the cache, "no cache yet".
var errNotFound = errors.New("not found")

// controller talks to the build's endpoints on the controller.
type controller struct {
	base, token string
	hc          *http.Client
	attempts    int
	retryWait   time.Duration
}

func newController(env func(string) string) (*controller, error) {
	base, token := strings.TrimRight(env(api.BuildEnvURL), "/"), env(api.BuildEnvToken)
	if base == "" || token == "" {
		return nil, fmt.Errorf("slugbuild: %s and %s must be set: this command runs as a build job started by the controller", api.BuildEnvURL, api.BuildEnvToken)
	}
	u, err := url.Parse(base)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("slugbuild: %s=%q is not an http(s) URL", api.BuildEnvURL, base)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if pem := env(api.BuildEnvCA); pem != "" {
		if tr, err = pki.ControlPlaneTransport(pem, env(api.EnvAPIRelay)); err != nil {
			return nil, fmt.Errorf("slugbuild: %s: %w", api.BuildEnvCA, err)
		}
	} else if u.Scheme == "https" {
		return nil, fmt.Errorf("slugbuild: %s is not set: cannot verify the controller at %s", api.BuildEnvCA, base)
	}
	tr.ResponseHeaderTimeout = 5 * time.Minute // the server may digest a large upload first
	// No client timeout: uploads of large slugs take what they take; the
	// job's context bounds them.
	return &controller{base: base, token: token, hc: &http.Client{Transport: tr}, attempts: 3, retryWait: time.Second}, nil
}

// get streams the body of a GET to fn. A 404 is errNotFound.
func (c *controller) get(ctx context.Context, path string, fn func(io.Reader) error) error {
	resp, err := c.do(ctx, http.MethodGet, path, nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return fn(resp.Body)
}

func (c *controller) putFile(ctx context.Context, path, file string) error {
	open := func() (io.ReadCloser, int64, error) {
		f, err := os.Open(file)
		if err != nil {
			return nil, 0, err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, 0, err
		}
		return f, fi.Size(), nil
	}
	resp, err := c.do(ctx, http.MethodPut, path, open, "application/gzip")
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

func (c *controller) postJSON(ctx context.Context, path string, body []byte) error {
	open := func() (io.ReadCloser, int64, error) {
		return io.NopCloser(bytes.NewReader(body)), int64(len(body)), nil
	}
	resp, err := c.do(ctx, http.MethodPost, path, open, "application/json")
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// do sends a request, retrying transport errors and 5xx answers a few
// times, since a controller fail-over should not fail a build that is
// done. It returns a 2xx response, or an error saying what the
// controller answered.
func (c *controller) do(ctx context.Context, method, path string, body func() (io.ReadCloser, int64, error), ctype string) (*http.Response, error) {
	wait := c.retryWait
	for attempt := 1; ; attempt++ {
		resp, err := c.once(ctx, method, path, body, ctype)
		retry := err != nil && !refused(err)
		if err == nil {
			if resp.StatusCode/100 == 2 {
				return resp, nil
			}
			err = statusError(method, path, resp)
			retry = resp.StatusCode >= 500
		}
		if !retry || attempt >= c.attempts || ctx.Err() != nil {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait *= 2
	}
}

func (c *controller) once(ctx context.Context, method, path string, body func() (io.ReadCloser, int64, error), ctype string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	if body != nil {
		rc, n, err := body()
		if err != nil {
			return nil, err
		}
		req.Body, req.ContentLength = rc, n
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	return c.hc.Do(req)
}

// statusError reads an error answer, an api.Error when the controller
// sent one, and closes it.
func statusError(method, path string, resp *http.Response) error {
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound && method == http.MethodGet {
		return errNotFound
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	msg := strings.TrimSpace(string(b))
	var ae api.Error
	if json.Unmarshal(b, &ae) == nil && ae.Message != "" {
		msg = ae.Message
	}
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	return &statusErr{code: resp.StatusCode, msg: fmt.Sprintf("%s %s: %s (%s)", method, path, msg, resp.Status)}
}

// statusErr is an answer other than 2xx.
type statusErr struct {
	code int
	msg  string
}

func (e *statusErr) Error() string { return e.msg }

// refused reports whether err means the controller will not take this
// build's requests at all (a token it refuses, a certificate we do not
// trust), so that the build stops before its work rather than after.
func refused(err error) bool {
	var se *statusErr
	if errors.As(err, &se) {
		return se.code == http.StatusUnauthorized || se.code == http.StatusForbidden
	}
	var ve *tls.CertificateVerificationError
	return errors.As(err, &ve)
}
