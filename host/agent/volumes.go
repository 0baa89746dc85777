package agent

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/store"
)

// The agent's part in volumes (see host/volume): it makes a volume the
// first time a job here needs it, mounts every volume it holds when it
// starts (after a reboot nothing is mounted, and a job relaunched
// against an unmounted volume would find it closed), reports each
// volume's state, and removes one only when its record is marked for
// removal, then deletes the record. It never removes a volume on its
// own: an image with no record stays, for an operator to look at.

func (c *Config) volumesDir() string { return filepath.Join(c.DataDir, "volumes") }

// mountVolumes mounts the volumes a previous run (or boot) left here.
func (a *Agent) mountVolumes() {
	if err := a.volumes.MountAll(); err != nil {
		a.cfg.Log.Error("cannot mount every volume; jobs using them will fail", "err", err)
	}
}

// ensureVolume makes and mounts a job's volume for the job's uid and gid
// (runtime.Spec.Root is never set for jobs), and reports it. A volume
// made for another uid is given to this one (see uids.go).
func (a *Agent) ensureVolume(ctx context.Context, v api.JobVolume, uid, gid int) (string, error) {
	mnt, err := a.volumes.Ensure(v.ID, v.SizeMB, uid, gid)
	st := api.VolumeStatus{ID: v.ID, State: api.VolumeReady}
	if err != nil {
		st.State, st.Error = api.VolumeFailed, err.Error()
	}
	a.writeVolumeStatus(ctx, st)
	return mnt, err
}

func (a *Agent) writeVolumeStatus(ctx context.Context, st api.VolumeStatus) {
	key, err := store.Key(store.VolumeStatusPrefix, st.ID)
	if err != nil {
		return
	}
	st.Host, st.UpdatedAt = a.cfg.ID, time.Now().UTC()
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := store.Put(wctx, a.Client, key, st); err != nil {
		a.cfg.Log.Warn("cannot report volume state", "volume", st.ID, "err", err)
	}
}

// volumeLoop removes the volumes of this host marked for removal,
// whenever the records change and periodically.
func (a *Agent) volumeLoop(ctx context.Context) {
	changed, cancel := a.volumeRecs.Subscribe()
	defer cancel()
	t := time.NewTicker(resyncInterval)
	defer t.Stop()
	select {
	case <-a.volumeRecs.Synced():
	case <-ctx.Done():
		return
	}
	for {
		for _, it := range a.volumeRecs.List() {
			v := it.Value
			if v.Host == a.cfg.ID && !v.DeleteRequestedAt.IsZero() {
				a.removeVolume(ctx, v, it.ModRevision)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-t.C:
		}
	}
}

// volumeInUse reports whether a job supervised here mounts volume id.
func (a *Agent) volumeInUse(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, w := range a.workers {
		if slices.ContainsFunc(w.lj.Job.Volumes, func(v api.JobVolume) bool { return v.ID == id }) {
			return true
		}
	}
	return false
}

// removeVolume deletes a volume's data, then its record and status. A
// volume a job here still mounts waits: the controller refuses to mark
// one in use, but a job may still be stopping.
func (a *Agent) removeVolume(ctx context.Context, v api.Volume, rev int64) {
	log := a.cfg.Log.With("volume", v.ID)
	if a.volumeInUse(v.ID) {
		log.Info("volume marked for removal is still in use; waiting")
		return
	}
	a.writeVolumeStatus(ctx, api.VolumeStatus{ID: v.ID, State: api.VolumeRemoving})
	if err := a.volumes.Remove(v.ID); err != nil {
		log.Error("cannot remove volume", "err", err)
		a.writeVolumeStatus(ctx, api.VolumeStatus{ID: v.ID, State: api.VolumeRemoving, Error: err.Error()})
		return
	}
	key, _ := store.Key(store.VolumesPrefix, v.ID)
	skey, _ := store.Key(store.VolumeStatusPrefix, v.ID)
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	// The data is gone whatever happens next; if the record moved, the
	// next pass sees it again and the removal, being idempotent, ends.
	if err := store.DeleteIf(dctx, a.Client, key, rev); err != nil && !errors.Is(err, store.ErrNotFound) {
		log.Warn("volume removed; cannot delete its record yet", "err", err)
		return
	}
	if err := store.Delete(dctx, a.Client, skey); err != nil && !errors.Is(err, store.ErrNotFound) {
		log.Warn("cannot delete volume status", "err", err)
	}
	log.Info("volume removed", "app", v.App, "process_type", v.ProcessType, "name", v.Name)
}
