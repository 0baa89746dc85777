package controller

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/store"
)

// A job's output, from its host: what a failed deploy shows of the job
// that failed it (a crash, the release phase). The host's own log files
// have every line at once, where the app's log stream (pier logs) may
// not have them yet, and keep them after the job ended.

// maxJobOutputLines bounds ?lines=.
const maxJobOutputLines = 1000

// jobOutput serves the last lines of one of an app's jobs.
func (c *Controller) jobOutput(w http.ResponseWriter, r *http.Request) error {
	app, id := r.PathValue("app"), r.PathValue("id")
	if _, _, err := c.loadApp(r.Context(), app); err != nil {
		return err
	}
	n := 20
	if s := r.URL.Query().Get("lines"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > maxJobOutputLines {
			return api.Errorf(api.ErrCodeInvalid, "lines: want a number from 1 to %d, got %q", maxJobOutputLines, s)
		}
		n = v
	}
	lines, err := c.jobTail(r.Context(), app, id, n)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, lines)
	return nil
}

// jobTail is the last n lines of app's job id, from its host.
func (c *Controller) jobTail(ctx context.Context, app, id string, n int) ([]api.LogLine, error) {
	missing := notFound("app %s has no job %q", app, id)
	if !api.ValidID(id) {
		return nil, missing
	}
	st, _, err := store.Get[api.JobStatus](ctx, c.Client, store.JobStatusPrefix+id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, missing
	}
	if err != nil {
		return nil, err
	}
	key, err := store.Key(store.JobsPrefix, st.HostID, id)
	if err != nil {
		return nil, missing
	}
	job, _, err := store.Get[api.Job](ctx, c.Client, key)
	if errors.Is(err, store.ErrNotFound) || (err == nil && job.App != app) {
		return nil, missing
	}
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	hc, err := c.hostClient(ctx, st.HostID)
	if err != nil {
		return nil, api.Errorf(api.ErrCodeUnavailable, "the host of job %s cannot be reached: %v", id, err)
	}
	defer hc.Close()
	lines := []api.LogLine{}
	err = hc.Logs(ctx, id, false, n, func(l api.LogLine) error {
		lines = append(lines, l)
		return nil
	})
	return lines, err
}
