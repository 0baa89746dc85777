package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/pierpaas/pier/api"
)

// Build uploads a gzipped tar of a source tree (size bytes, or -1 when
// unknown) and builds and deploys it on the cluster. fn sees each event:
// output as it comes, then the last one with the build or its error,
// which Build also returns as an error.
func (c *Controller) Build(ctx context.Context, app, source string, size int64, body io.Reader, fn func(api.BuildEvent)) (api.BuildEvent, error) {
	u := c.base + appPath(app, "/builds") + "?" + url.Values{"source": {source}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, body)
	if err != nil {
		return api.BuildEvent{}, err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/gzip")
	resp, err := c.sendRequest(req)
	if err != nil {
		return api.BuildEvent{}, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var ev api.BuildEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return api.BuildEvent{}, fmt.Errorf("client: build: bad event: %w", err)
		}
		if fn != nil {
			fn(ev)
		}
		if ev.Build != nil || ev.Error != "" {
			if ev.Error != "" {
				return ev, errors.New(ev.Error)
			}
			return ev, nil
		}
	}
	// No final event: the server went away (or its connection broke)
	// mid-build. A build runs in the request that streams it, so it
	// ended with that server, or will end unobserved.
	why := "the server closed the connection"
	if err := sc.Err(); err != nil {
		why = err.Error()
	}
	return api.BuildEvent{}, fmt.Errorf("%w (%s); see pier builds -a %s, then push again", ErrBuildLost, why, app)
}

// ErrBuildLost is Build's error when the stream ends without the build's
// result: the server running it went away.
var ErrBuildLost = errors.New("lost the server during the build: its result is unknown")

// Builds lists an app's builds, newest first.
func (c *Controller) Builds(ctx context.Context, app string) ([]api.Build, error) {
	var out []api.Build
	return out, c.do(ctx, http.MethodGet, appPath(app, "/builds"), nil, &out)
}

// BuildInfo shows one build ("latest" for the newest).
func (c *Controller) BuildInfo(ctx context.Context, app, id string) (api.Build, error) {
	var out api.Build
	return out, c.do(ctx, http.MethodGet, appPath(app, "/builds/"+url.PathEscape(id)), nil, &out)
}

// BuildOutput copies a finished build's output to w.
func (c *Controller) BuildOutput(ctx context.Context, app, id string, w io.Writer) error {
	resp, err := c.send(ctx, http.MethodGet, appPath(app, "/builds/"+url.PathEscape(id)+"/output"), nil, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(w, resp.Body)
	return err
}

// SSHKeys lists the keys that may git push.
func (c *Controller) SSHKeys(ctx context.Context) ([]api.SSHKey, error) {
	var out []api.SSHKey
	return out, c.do(ctx, http.MethodGet, "/v1/ssh-keys", nil, &out)
}

// AddSSHKey registers a public key (one authorized_keys line).
func (c *Controller) AddSSHKey(ctx context.Context, publicKey string) (api.SSHKey, error) {
	var out api.SSHKey
	return out, c.do(ctx, http.MethodPost, "/v1/ssh-keys", api.AddSSHKeyRequest{PublicKey: publicKey}, &out)
}

// RemoveSSHKey removes a key by id, fingerprint or comment.
func (c *Controller) RemoveSSHKey(ctx context.Context, ref string) error {
	return c.do(ctx, http.MethodDelete, "/v1/ssh-keys/"+url.PathEscape(ref), nil, nil)
}

// GitInfo says where the cluster's git receivers are.
func (c *Controller) GitInfo(ctx context.Context) (api.GitInfo, error) {
	var out api.GitInfo
	return out, c.do(ctx, http.MethodGet, "/v1/git", nil, &out)
}
