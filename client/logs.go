package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/pierpaas/pier/api"
)

// LogsQuery selects an app's log lines.
type LogsQuery struct {
	// Lines is how many of the newest lines to send first (the server's
	// default, 100, when negative).
	Lines int
	// Follow goes on with new lines as they come.
	Follow bool
	// Type and Job keep only the lines of a process type, or of a job.
	Type, Job string
	// Source keeps only the lines of one source: api.LogSourceApp (the
	// jobs' own) or api.LogSourcePier (the platform's). It is applied
	// here, so Lines counts lines before it.
	Source string
}

// Logs calls fn for each of an app's log lines the query selects. It
// returns nil when the stream ends (at once without Follow; with Follow
// when the log aggregator moved, so call again), fn's error, or ctx's.
func (c *Controller) Logs(ctx context.Context, app string, q LogsQuery, fn func(api.AppLogLine) error) error {
	v := url.Values{}
	if q.Lines >= 0 {
		v.Set("lines", strconv.Itoa(q.Lines))
	}
	if q.Follow {
		v.Set("follow", "true")
	}
	if q.Type != "" {
		v.Set("type", q.Type)
	}
	if q.Job != "" {
		v.Set("job", q.Job)
	}
	if q.Source != "" {
		all := fn
		fn = func(l api.AppLogLine) error {
			src := l.Source
			if src == "" {
				src = api.LogSourceApp
			}
			if src != q.Source {
				return nil
			}
			return all(l)
		}
	}
	return streamJSON(ctx, &c.rest, appPath(app, "/logs")+"?"+v.Encode(), fn)
}

// Drains lists an app's syslog drains.
func (c *Controller) Drains(ctx context.Context, app string) ([]api.Drain, error) {
	var out []api.Drain
	return out, c.do(ctx, http.MethodGet, appPath(app, "/drains"), nil, &out)
}

// AddDrain adds a syslog drain: syslog://HOST:PORT or syslog+tls://HOST:PORT.
func (c *Controller) AddDrain(ctx context.Context, app, drainURL string) (api.Drain, error) {
	var out api.Drain
	return out, c.do(ctx, http.MethodPost, appPath(app, "/drains"), api.CreateDrainRequest{URL: drainURL}, &out)
}

// RemoveDrain removes a drain by its id.
func (c *Controller) RemoveDrain(ctx context.Context, app, id string) error {
	return c.do(ctx, http.MethodDelete, appPath(app, "/drains/"+url.PathEscape(id)), nil, nil)
}
