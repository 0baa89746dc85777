package client

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pierpaas/pier/api"
)

// Controller is a client of the controller API (api/controller.go lists
// the endpoints), authenticated with an API key. Its errors for answers
// the controller gave are *api.Error with the code and HTTP status.
type Controller struct {
	rest
	url *url.URL
	key string
	// failover moves connections to another server when the base URL's
	// cannot be reached; it is off without WithFallbacks.
	failover failover
	tls      *tls.Config
	proxy    *url.URL // WithProxy; nil: none
}

// NewController returns a client of the controller at baseURL
// ("https://127.0.0.1:7300") with key. tlsCfg says which certificates
// to trust (the cluster CA); nil means the system's.
func NewController(baseURL, key string, tlsCfg *tls.Config, opts ...Option) (*Controller, error) {
	u, err := url.Parse(strings.TrimSuffix(baseURL, "/"))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("client: controller URL %q: want https://HOST:PORT", baseURL)
	}
	if tlsCfg == nil {
		tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	c := &Controller{url: u, key: key, tls: tlsCfg.Clone()}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsCfg.Clone()
	tr.ForceAttemptHTTP2 = true
	tr.Proxy = nil // not the environment's: see WithProxy
	if c.proxy != nil {
		tr.Proxy = http.ProxyURL(c.proxy)
	}
	if len(c.failover.addrs) > 0 && u.Scheme == "https" {
		c.failover.primary, c.failover.current, c.failover.tls = hostPort(u), hostPort(u), tlsCfg.Clone()
		tr.DialTLSContext = c.failover.dialTLS
	}
	c.rest = rest{base: u.String(), hc: &http.Client{Transport: tr}, authorize: func(r *http.Request) {
		r.Header.Set("Authorization", "Bearer "+key)
	}}
	return c, nil
}

// ServerURL is the base URL of the server the client uses now: the
// base URL's, or the one it moved to when that was down.
func (c *Controller) ServerURL() string {
	u := *c.url
	if len(c.failover.addrs) > 0 {
		c.failover.mu.Lock()
		if c.failover.current != c.failover.primary {
			u.Host = c.failover.current
		}
		c.failover.mu.Unlock()
	}
	return u.String()
}

// OnMove has fn told each time the client moves to another server
// because the one it used cannot be reached (see WithFallbacks).
func (c *Controller) OnMove(fn func(from, to string, err error)) {
	c.failover.mu.Lock()
	defer c.failover.mu.Unlock()
	c.failover.moved = fn
}

// Hosts lists the cluster's live hosts.
func (c *Controller) Hosts(ctx context.Context) ([]api.HostInfo, error) {
	var out []api.HostInfo
	return out, c.do(ctx, http.MethodGet, "/v1/hosts", nil, &out)
}

// DrainHost starts draining a host: nothing new is placed there and its
// service jobs move elsewhere (see api.HostDrain).
func (c *Controller) DrainHost(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodPut, "/v1/hosts/"+url.PathEscape(id)+"/drain", nil, nil)
}

// UndrainHost ends a host's drain.
func (c *Controller) UndrainHost(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/hosts/"+url.PathEscape(id)+"/drain", nil, nil)
}

// Servers lists the cluster's servers.
func (c *Controller) Servers(ctx context.Context) ([]api.Server, error) {
	var out []api.Server
	return out, c.do(ctx, http.MethodGet, "/v1/servers", nil, &out)
}

// Close releases idle connections.
func (c *Controller) Close() { c.hc.CloseIdleConnections() }

func appPath(app, suffix string) string { return "/v1/apps/" + url.PathEscape(app) + suffix }

// Apps lists the apps.
func (c *Controller) Apps(ctx context.Context) ([]api.App, error) {
	var out []api.App
	return out, c.do(ctx, http.MethodGet, "/v1/apps", nil, &out)
}

// CreateApp creates an app.
func (c *Controller) CreateApp(ctx context.Context, req api.CreateAppRequest) (api.App, error) {
	var out api.App
	return out, c.do(ctx, http.MethodPost, "/v1/apps", req, &out)
}

// App shows an app.
func (c *Controller) App(ctx context.Context, app string) (api.App, error) {
	var out api.App
	return out, c.do(ctx, http.MethodGet, appPath(app, ""), nil, &out)
}

// UpdateApp changes an app's meta or strategy.
func (c *Controller) UpdateApp(ctx context.Context, app string, req api.UpdateAppRequest) (api.App, error) {
	var out api.App
	return out, c.do(ctx, http.MethodPatch, appPath(app, ""), req, &out)
}

// DeleteApp deletes an app with its jobs, releases and routes.
func (c *Controller) DeleteApp(ctx context.Context, app string) error {
	return c.do(ctx, http.MethodDelete, appPath(app, ""), nil, nil)
}

// Releases lists an app's releases, newest first.
func (c *Controller) Releases(ctx context.Context, app string) ([]api.Release, error) {
	var out []api.Release
	return out, c.do(ctx, http.MethodGet, appPath(app, "/releases"), nil, &out)
}

// Release shows a release by version ("v3", "3") or id.
func (c *Controller) Release(ctx context.Context, app, version string) (api.Release, error) {
	var out api.Release
	return out, c.do(ctx, http.MethodGet, appPath(app, "/releases/"+url.PathEscape(version)), nil, &out)
}

// CreateRelease stores a release and starts its deployment.
func (c *Controller) CreateRelease(ctx context.Context, app string, req api.CreateReleaseRequest) (api.ReleaseResult, error) {
	return c.makeRelease(ctx, http.MethodPost, appPath(app, "/releases"), req)
}

// Env shows the current release's config vars.
func (c *Controller) Env(ctx context.Context, app string) (map[string]string, error) {
	var out map[string]string
	return out, c.do(ctx, http.MethodGet, appPath(app, "/env"), nil, &out)
}

// SetEnv sets (a value) and unsets (nil) config vars: a new release.
func (c *Controller) SetEnv(ctx context.Context, app string, changes map[string]*string) (api.ReleaseResult, error) {
	return c.makeRelease(ctx, http.MethodPatch, appPath(app, "/env"), changes)
}

// Rollback releases an older release again (version 0: the one before the
// current one).
func (c *Controller) Rollback(ctx context.Context, app string, version int) (api.ReleaseResult, error) {
	return c.makeRelease(ctx, http.MethodPost, appPath(app, "/rollback"), api.RollbackRequest{Version: version})
}

// Resize changes process types' resources: a new release.
func (c *Controller) Resize(ctx context.Context, app string, sizes map[string]api.Resources) (api.ReleaseResult, error) {
	return c.makeRelease(ctx, http.MethodPatch, appPath(app, "/resources"), sizes)
}

// Formation shows the current release's job counts.
func (c *Controller) Formation(ctx context.Context, app string) (api.AppFormation, error) {
	var out api.AppFormation
	return out, c.do(ctx, http.MethodGet, appPath(app, "/formation"), nil, &out)
}

// Scale sets job counts of process types. It is a PUT, so a request that
// met a store hiccup is sent again: setting the same counts twice is
// setting them once.
func (c *Controller) Scale(ctx context.Context, app string, counts map[string]int) (api.AppFormation, error) {
	var out api.AppFormation
	return out, c.do(ctx, http.MethodPut, appPath(app, "/formation"), api.ScaleRequest{Processes: counts}, &out)
}

// Jobs lists an app's jobs and what waits for a host.
func (c *Controller) Jobs(ctx context.Context, app string) (api.JobList, error) {
	var out api.JobList
	return out, c.do(ctx, http.MethodGet, appPath(app, "/jobs"), nil, &out)
}

// Job shows one job.
func (c *Controller) Job(ctx context.Context, app, id string) (api.AppJob, error) {
	var out api.AppJob
	return out, c.do(ctx, http.MethodGet, appPath(app, "/jobs/"+url.PathEscape(id)), nil, &out)
}

// JobOutput returns the last lines (at most 1000) of a job's output,
// read from its host.
func (c *Controller) JobOutput(ctx context.Context, app, id string, lines int) ([]api.LogLine, error) {
	var out []api.LogLine
	path := appPath(app, "/jobs/"+url.PathEscape(id)+"/output") + "?lines=" + strconv.Itoa(lines)
	return out, c.do(ctx, http.MethodGet, path, nil, &out)
}

// KillJob stops a job.
func (c *Controller) KillJob(ctx context.Context, app, id string) error {
	return c.do(ctx, http.MethodDelete, appPath(app, "/jobs/"+url.PathEscape(id)), nil, nil)
}

// Run asks for a one-off job.
func (c *Controller) Run(ctx context.Context, app string, req api.RunRequest) (api.AppJob, error) {
	var out api.AppJob
	return out, c.do(ctx, http.MethodPost, appPath(app, "/run"), req, &out)
}

// Attach connects to a one-off job's stdio through the controller.
func (c *Controller) Attach(ctx context.Context, app, id string, opts AttachOptions) (*AttachConn, error) {
	hdr := http.Header{"Authorization": {"Bearer " + c.key}}
	target := c.url.String() + appPath(app, "/jobs/"+url.PathEscape(id)+"/attach")
	dial := tlsDialer(c.tls)
	if len(c.failover.addrs) > 0 {
		dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			return c.failover.dial(ctx, network, addr, []string{"http/1.1"})
		}
	}
	return dialAttach(ctx, dial, hostPort(c.url), target, opts, hdr)
}

// Deployments lists an app's deployments, newest first.
func (c *Controller) Deployments(ctx context.Context, app string) ([]api.Deployment, error) {
	var out []api.Deployment
	return out, c.do(ctx, http.MethodGet, appPath(app, "/deployments"), nil, &out)
}

// Deployment shows a deployment by version ("v3") or id.
func (c *Controller) Deployment(ctx context.Context, app, id string) (api.Deployment, error) {
	var out api.Deployment
	return out, c.do(ctx, http.MethodGet, appPath(app, "/deployments/"+url.PathEscape(id)), nil, &out)
}

// PutBlob uploads an artifact of size bytes with its sha256 digest.
func (c *Controller) PutBlob(ctx context.Context, digest string, size int64, body io.Reader) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.base+"/v1/blobs/sha256/"+url.PathEscape(digest), body)
	if err != nil {
		return err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := c.sendRequest(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// APIKeys lists the API keys (without their secrets).
func (c *Controller) APIKeys(ctx context.Context) ([]api.APIKey, error) {
	var out []api.APIKey
	return out, c.do(ctx, http.MethodGet, "/v1/api-keys", nil, &out)
}

// CreateAPIKey makes a key; its secret is in the answer only.
func (c *Controller) CreateAPIKey(ctx context.Context, name string) (api.NewAPIKey, error) {
	var out api.NewAPIKey
	return out, c.do(ctx, http.MethodPost, "/v1/api-keys", map[string]string{"name": name}, &out)
}

// DeleteAPIKey revokes a key.
func (c *Controller) DeleteAPIKey(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/api-keys/"+url.PathEscape(id), nil, nil)
}

// Events follows the event stream (of one app, or all when app is ""),
// from after the event lastID ("" for new events only), calling fn for
// each until ctx ends, fn fails, or the stream ends. It returns the id of
// the last event seen, to resume from.
func (c *Controller) Events(ctx context.Context, app, lastID string, fn func(api.Event) error) (string, error) {
	path := "/v1/events"
	if app != "" {
		path += "?app=" + url.QueryEscape(app)
	}
	return c.streamEvents(ctx, path, lastID, fn)
}

// EventsSince is Events from a time on: the events the cluster still
// keeps (about an hour) that happened since then, then new ones.
func (c *Controller) EventsSince(ctx context.Context, app string, since time.Time, fn func(api.Event) error) (string, error) {
	v := url.Values{"since": {since.UTC().Format(time.RFC3339Nano)}}
	if app != "" {
		v.Set("app", app)
	}
	return c.streamEvents(ctx, "/v1/events?"+v.Encode(), "", fn)
}

func (c *Controller) streamEvents(ctx context.Context, path, lastID string, fn func(api.Event) error) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return lastID, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := c.sendRequest(req)
	if err != nil {
		return lastID, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var data strings.Builder
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "data: "):
			data.WriteString(strings.TrimPrefix(line, "data: "))
		case line == "" && data.Len() > 0:
			var ev api.Event
			if err := json.Unmarshal([]byte(data.String()), &ev); err != nil {
				return lastID, fmt.Errorf("client: events: %w", err)
			}
			data.Reset()
			lastID = ev.ID
			if err := fn(ev); err != nil {
				return lastID, err
			}
		}
	}
	if ctx.Err() != nil {
		return lastID, ctx.Err()
	}
	return lastID, sc.Err()
}

// ParseVersion reads "v3" or "3".
func ParseVersion(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimPrefix(s, "v"))
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%q is not a release version (like v3)", s)
	}
	return n, nil
}

// makeRelease sends a request that makes a release with a fresh
// idempotency key, so that it may be sent again after a 503 (a server
// whose store connection broke mid-request) without making two.
func (c *Controller) makeRelease(ctx context.Context, method, path string, body any) (api.ReleaseResult, error) {
	var out api.ReleaseResult
	key := make([]byte, 16)
	rand.Read(key)
	return out, c.doWith(ctx, method, path, http.Header{api.IdempotencyHeader: {hex.EncodeToString(key)}}, body, &out)
}

// Status is the cluster's health (see api.ClusterStatus).
func (c *Controller) Status(ctx context.Context) (api.ClusterStatus, error) {
	var out api.ClusterStatus
	return out, c.do(ctx, http.MethodGet, "/v1/status", nil, &out)
}
