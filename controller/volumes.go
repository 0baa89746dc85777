package controller

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/store"
)

// Volumes are cluster records (/pier/volumes/<id>), made by the
// scheduler when it first places a job that declares one; the controller
// lists them and marks one for removal, which its host's agent carries
// out. It never deletes data itself.

// listVolumes answers the volumes, of one app with ?app=.
func (c *Controller) listVolumes(w http.ResponseWriter, r *http.Request) error {
	app := r.URL.Query().Get("app")
	if app != "" && !api.ValidID(app) {
		return invalid("app %q is not a valid app name", app)
	}
	infos, err := c.volumeInfos(r.Context(), func(v *api.Volume) bool { return app == "" || v.App == app })
	if err != nil {
		return err
	}
	out := make([]api.VolumeInfo, 0, len(infos))
	for _, vi := range infos {
		out = append(out, vi.VolumeInfo)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// volumeInfo is a volume as listed, with its record's revision.
type volumeInfo struct {
	api.VolumeInfo
	rev int64
}

// volumeInfos reads the volumes keep selects, with their hosts' reports
// and the jobs that use them and have not ended.
func (c *Controller) volumeInfos(ctx context.Context, keep func(*api.Volume) bool) ([]volumeInfo, error) {
	vols, _, err := store.List[api.Volume](ctx, c.Client, store.VolumesPrefix)
	if err != nil {
		return nil, err
	}
	var out []volumeInfo
	byID := map[string]int{}
	for _, it := range vols {
		if keep(&it.Value) {
			byID[it.Value.ID] = len(out)
			out = append(out, volumeInfo{VolumeInfo: api.VolumeInfo{Volume: it.Value}, rev: it.ModRevision})
		}
	}
	if len(out) == 0 {
		return out, nil
	}
	hosts, _, err := store.List[api.Host](ctx, c.Client, store.HostsPrefix)
	if err != nil {
		return nil, err
	}
	live := map[string]bool{}
	for _, h := range hosts {
		live[h.Value.ID] = true
	}
	// Jobs come from the controller's cache; only those that declare
	// volumes cost a read of their status.
	for _, it := range c.jobs.List() {
		j := &it.Value
		var users []int
		for _, v := range j.Volumes {
			if i, ok := byID[v.ID]; ok {
				users = append(users, i)
			}
		}
		if len(users) == 0 {
			continue
		}
		ended, err := c.jobEnded(ctx, j)
		if err != nil {
			return nil, err
		}
		if ended {
			continue
		}
		for _, i := range users {
			out[i].Jobs = append(out[i].Jobs, j.ID)
		}
	}
	for i := range out {
		vi := &out[i]
		sort.Strings(vi.Jobs)
		key, _ := store.Key(store.VolumeStatusPrefix, vi.ID)
		st, _, err := store.Get[api.VolumeStatus](ctx, c.Client, key)
		switch {
		case err == nil:
			vi.Status = &st
		case !errors.Is(err, store.ErrNotFound):
			return nil, err
		}
		vi.State = volumeState(&vi.VolumeInfo, live)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := &out[i], &out[j]
		if a.App != b.App {
			return a.App < b.App
		}
		return a.ID < b.ID
	})
	return out, nil
}

// jobEnded reports whether a job has ended: its status is terminal, or
// it never started and never will (desired shutdown, no status).
func (c *Controller) jobEnded(ctx context.Context, j *api.Job) (bool, error) {
	key, err := store.Key(store.JobStatusPrefix, j.ID)
	if err != nil {
		return true, nil
	}
	st, _, err := store.Get[api.JobStatus](ctx, c.Client, key)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return j.Desired != api.DesiredRunning, nil
	case err != nil:
		return false, err
	}
	return st.State.Terminal(), nil
}

// volumeState sums a volume's record and report up in a word.
func volumeState(v *api.VolumeInfo, live map[string]bool) string {
	switch {
	case !v.DeleteRequestedAt.IsZero():
		return string(api.VolumeRemoving)
	case v.Host == "":
		return "unbound"
	case !live[v.Host]:
		return "host gone"
	case v.Status == nil || v.Status.Host != v.Host:
		return "pending"
	}
	return string(v.Status.State)
}

// deleteVolume removes a volume that no unfinished job uses: at once if
// no host holds it (never bound, or its host is gone: nobody is left to
// remove the data, and the agent of a host that comes back keeps an
// image without a record, never deletes it), else by marking it for its
// host's agent, which deletes the data and then the record.
func (c *Controller) deleteVolume(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if !api.ValidID(id) {
		return notFound("no volume %q", id)
	}
	infos, err := c.volumeInfos(r.Context(), func(v *api.Volume) bool { return v.ID == id })
	if err != nil {
		return err
	}
	if len(infos) == 0 {
		return notFound("no volume %q", id)
	}
	vi := infos[0]
	if len(vi.Jobs) > 0 {
		return conflict("volume %s (%s of %s) is in use by job %s; scale %s to 0 first",
			id, vi.Name, vi.App, strings.Join(vi.Jobs, ", "), vi.ProcessType)
	}
	key, _ := store.Key(store.VolumesPrefix, id)
	// Guarded by the revision read: a job placed meanwhile binds the
	// volume and moves it, and this request fails with a conflict.
	if vi.State == "unbound" || vi.State == "host gone" {
		skey, _ := store.Key(store.VolumeStatusPrefix, id)
		if err := store.DeleteIf(r.Context(), c.Client, key, vi.rev); err != nil {
			return err
		}
		if err := store.Delete(r.Context(), c.Client, skey); err != nil {
			return err
		}
		vi.State = "removed"
		c.Log.Info("volume record removed", "volume", id, "app", vi.App, "host", vi.Host)
	} else if vi.DeleteRequestedAt.IsZero() {
		v := vi.Volume
		v.DeleteRequestedAt = time.Now().UTC()
		if _, err := store.Update(r.Context(), c.Client, key, v, vi.rev); err != nil {
			return err
		}
		vi.Volume, vi.State = v, string(api.VolumeRemoving)
		c.Log.Info("volume marked for removal", "volume", id, "app", vi.App, "host", vi.Host)
	}
	writeJSON(w, http.StatusOK, vi.VolumeInfo)
	return nil
}
