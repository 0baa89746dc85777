package controller

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/store"
)

// createBuild builds the gzipped source tar in the request body and
// streams the build's progress back as BuildEvents, one JSON object per
// line: output as it comes, then the finished build (and its release) or
// the error.
func (c *Controller) createBuild(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	app := r.PathValue("app")
	if _, _, err := c.loadApp(ctx, app); err != nil {
		return err
	}
	source := r.URL.Query().Get("source")
	if source == "" {
		source = "upload"
	}
	if len(source) > 100 || !printable(source) {
		return invalid("source: at most 100 printable characters")
	}
	if err := c.refuseUnderPressure("builds"); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	ev := &eventWriter{w: w}
	b, res, err := c.Build(ctx, app, source, r.Body, ev)
	last := api.BuildEvent{Build: &b, Result: res}
	if err != nil {
		last.Error = err.Error()
	}
	ev.send(last)
	return nil
}

// eventWriter turns writes into output events, flushed as they come so
// the client sees a build's lines live.
type eventWriter struct {
	w   http.ResponseWriter
	err error
}

func (e *eventWriter) Write(p []byte) (int, error) {
	e.send(api.BuildEvent{Output: string(p)})
	return len(p), nil
}

func (e *eventWriter) send(ev api.BuildEvent) {
	if e.err != nil {
		return // the client left; the build goes on and is recorded
	}
	line, _ := json.Marshal(ev)
	if _, e.err = e.w.Write(append(line, '\n')); e.err == nil {
		http.NewResponseController(e.w).Flush()
	}
}

func (c *Controller) listBuilds(w http.ResponseWriter, r *http.Request) error {
	if _, _, err := c.loadApp(r.Context(), r.PathValue("app")); err != nil {
		return err
	}
	builds, err := c.appBuilds(r.Context(), r.PathValue("app"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, builds)
	return nil
}

// findBuild finds one of app's builds by id, or "latest".
func (c *Controller) findBuild(r *http.Request) (api.Build, error) {
	app, id := r.PathValue("app"), r.PathValue("id")
	if _, _, err := c.loadApp(r.Context(), app); err != nil {
		return api.Build{}, err
	}
	if id == "latest" {
		builds, err := c.appBuilds(r.Context(), app)
		if err != nil {
			return api.Build{}, err
		}
		if len(builds) == 0 {
			return api.Build{}, notFound("app %s has no builds yet", app)
		}
		return builds[0], nil
	}
	if !api.ValidID(id) {
		return api.Build{}, notFound("app %s has no build %q", app, id)
	}
	b, _, err := store.Get[api.Build](r.Context(), c.Client, store.BuildsPrefix+id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && b.App != app) {
		return api.Build{}, notFound("app %s has no build %q", app, id)
	}
	if err != nil {
		return b, err
	}
	bs := []api.Build{b}
	err = c.settleOrphans(r.Context(), bs)
	return bs[0], err
}

func (c *Controller) getBuild(w http.ResponseWriter, r *http.Request) error {
	b, err := c.findBuild(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, b)
	return nil
}

// buildOutput serves a finished build's output; a running build's is
// followed through its job.
func (c *Controller) buildOutput(w http.ResponseWriter, r *http.Request) error {
	b, err := c.findBuild(r)
	if err != nil {
		return err
	}
	if b.OutputSHA256 == "" {
		return conflict("build %s is %s: its output is kept when it ends", b.ID, b.State)
	}
	f, err := c.openBlob(r.Context(), b.OutputSHA256)
	if err != nil {
		return api.Errorf(api.ErrCodeNotFound, "the output of build %s is no longer stored", b.ID)
	}
	defer f.Close()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, err = io.Copy(w, f)
	return err
}
