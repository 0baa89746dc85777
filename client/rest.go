package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/pierpaas/pier/api"
)

// rest is the JSON-over-HTTP plumbing the API clients share.
type rest struct {
	base string
	hc   *http.Client
	// authorize, if set, adds credentials to every request.
	authorize func(*http.Request)
}

func (c *rest) do(ctx context.Context, method, path string, body, out any) error {
	return c.doWith(ctx, method, path, nil, body, out)
}

// doWith is do with extra request headers.
func (c *rest) doWith(ctx context.Context, method, path string, hdr http.Header, body, out any) error {
	resp, err := c.send(ctx, method, path, hdr, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("client: %s %s: bad response: %w", method, path, err)
	}
	return nil
}

// send makes a request and turns an error answer into *api.Error.
func (c *rest) send(ctx context.Context, method, path string, hdr http.Header, body any) (*http.Response, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	return c.sendRequest(req)
}

// sendRequest sends req, and again, a few times with a growing pause,
// while the server answers 503 to an idempotent request whose body can be
// sent again: a server whose store connection broke mid-request (an etcd
// member restarting) answers the next attempt through another member.
func (c *rest) sendRequest(req *http.Request) (*http.Response, error) {
	pause := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		if c.authorize != nil {
			c.authorize(req)
		}
		resp, err := c.hc.Do(req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode < 300 {
			return resp, nil
		}
		if resp.StatusCode == http.StatusServiceUnavailable && attempt < maxAttempts && retryable(req) {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			select {
			case <-req.Context().Done():
				return nil, req.Context().Err()
			case <-time.After(pause):
			}
			pause *= 2
			if req.GetBody != nil {
				if req.Body, err = req.GetBody(); err != nil {
					return nil, err
				}
			}
			continue
		}
		defer resp.Body.Close()
		return nil, responseError(resp)
	}
}

// maxAttempts bounds sendRequest's tries: about 3 s of pauses in all.
const maxAttempts = 5

// retryable reports whether req may be sent twice: an idempotent method,
// or one made so by an idempotency key (a changed config var would
// otherwise make a release each time), and a body that can be read again
// (or none).
func retryable(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete:
	default:
		if req.Header.Get(api.IdempotencyHeader) == "" {
			return false
		}
	}
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

// streamJSON sends a GET to path and calls fn with each JSON value of the
// answer as it arrives (NDJSON log streams), until the answer ends, fn
// fails or ctx ends.
func streamJSON[T any](ctx context.Context, c *rest, path string, fn func(T) error) error {
	resp, err := c.send(ctx, http.MethodGet, path, nil, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var v T
		if err := dec.Decode(&v); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("client: %s: stream: %w", path, err)
		}
		if err := fn(v); err != nil {
			return err
		}
	}
}
