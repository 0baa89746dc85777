package controller

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/discovery"
	"github.com/pierpaas/pier/logs"
	"github.com/pierpaas/pier/scheduler"
	"github.com/pierpaas/pier/store"
)

// appLogs streams an app's log lines from the active log aggregator
// (package logs), found through discovery and reached with the server's
// cluster certificate. The controller checks the user's key and the app;
// the aggregator does the rest. A follow stream ends when the aggregator
// stops being the active one: the client asks again and reaches the new.
func (c *Controller) appLogs(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	name := r.PathValue("app")
	if _, _, err := c.loadApp(ctx, name); err != nil {
		return err
	}
	q, err := logs.ParseQuery(r)
	if err != nil {
		return err
	}
	if q.Job != "" {
		// A job the app never had would only show nothing, or wait
		// forever with follow: say so instead.
		if err := c.knownJob(ctx, name, q.Job); err != nil {
			return err
		}
	}
	leader, err := discovery.New(c.Client).Leader(ctx, logs.Service)
	if err != nil {
		if errors.Is(err, discovery.ErrNoLeader) {
			return api.Errorf(api.ErrCodeUnavailable, "no log aggregator is running")
		}
		return err
	}
	u := url.URL{Scheme: "https", Host: leader.Addr, Path: "/v1/logs/apps/" + name, RawQuery: r.URL.RawQuery}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	// A transport per request: log requests are few and long, and this
	// keeps no connection to an aggregator that may have moved.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = c.HostTLS.Clone()
	tr.ForceAttemptHTTP2 = true
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return api.Errorf(api.ErrCodeUnavailable, "the log aggregator cannot be reached: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var ae api.Error
		if decodeErr := decodeLimited(resp, &ae); decodeErr != nil || ae.Code == "" {
			return api.Errorf(api.ErrCodeUnavailable, "the log aggregator answered %s", resp.Status)
		}
		return &ae
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return nil
			}
			rc.Flush()
		}
		if err != nil {
			return nil
		}
	}
}

// knownJob checks that id is a job of app the store still knows: a
// service job, running or ended and not yet forgotten, or a one-off.
func (c *Controller) knownJob(ctx context.Context, app, id string) error {
	missing := notFound("app %s has no job %q (pier ps lists its jobs)", app, id)
	if !api.ValidID(id) {
		return missing
	}
	if st, _, err := store.Get[api.JobStatus](ctx, c.Client, store.JobStatusPrefix+id); err == nil {
		if j, ok := c.jobs.Get(store.JobsPrefix + st.HostID + "/" + id); ok && j.Value.App == app {
			return nil
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if o, _, err := store.Get[api.OneOff](ctx, c.Client, scheduler.OneOffPrefix+id); err == nil && o.App == app {
		return nil
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	for _, it := range c.jobs.List() { // placed, not started yet
		if it.Value.ID == id && it.Value.App == app {
			return nil
		}
	}
	return missing
}

func (c *Controller) listDrains(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	app, _, err := c.loadApp(ctx, r.PathValue("app"))
	if err != nil {
		return err
	}
	drains, err := c.drainsOf(ctx, app.Name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, drains)
	return nil
}

func (c *Controller) createDrain(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	app, _, err := c.loadApp(ctx, r.PathValue("app"))
	if err != nil {
		return err
	}
	var req api.CreateDrainRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if _, _, err := api.ParseDrainURL(req.URL); err != nil {
		return invalid("%v", err)
	}
	d := api.Drain{ID: newDrainID(), App: app.Name, URL: req.URL, CreatedAt: time.Now().UTC()}
	if err := c.addDrain(ctx, d); err != nil {
		return err
	}
	c.Log.Info("drain added", "app", app.Name, "drain", d.ID, "url", d.URL)
	writeJSON(w, http.StatusCreated, d)
	return nil
}

func (c *Controller) deleteDrain(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	app, _, err := c.loadApp(ctx, r.PathValue("app"))
	if err != nil {
		return err
	}
	if err := c.removeDrain(ctx, app.Name, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
