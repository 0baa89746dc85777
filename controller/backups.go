package controller

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/appliance"
	"github.com/pierpaas/pier/store"
)

// Backups of resources (pg:backups): the API records a backup and starts
// its job in one transaction; the job uploads the dump (backups_jobs.go);
// the resource loop settles backups whose job ended without a word,
// captures on schedule and expires old scheduled backups
// (backups_loop.go). A backup is a blob in the blobstore, kept while its
// record lives, so it outlives the resource's host and the resource.

// loadBackup reads a backup; a bad or unknown id is a 404.
func (c *Controller) loadBackup(ctx context.Context, id string) (api.Backup, error) {
	if !api.ValidID(id) {
		return api.Backup{}, notFound("no backup %q", id)
	}
	b, _, err := store.Get[api.Backup](ctx, c.Client, backupKey(id))
	if errors.Is(err, store.ErrNotFound) {
		return b, notFound("no backup %q", id)
	}
	return b, err
}

// attachmentFor picks the attachment a backup or restore is about: app's,
// or the resource's only attached one.
func attachmentFor(res *api.Resource, app string) (*api.Attachment, error) {
	if app != "" {
		a, ok := res.Attachment(app)
		if !ok || a.State != api.AttachmentAttached {
			return nil, notFound("resource %s is not attached to %q", res.Name, app)
		}
		return a, nil
	}
	var attached []*api.Attachment
	var names []string
	for i := range res.Attachments {
		if a := &res.Attachments[i]; a.State == api.AttachmentAttached {
			attached, names = append(attached, a), append(names, a.App)
		}
	}
	switch len(attached) {
	case 1:
		return attached[0], nil
	case 0:
		return nil, invalid("resource %s has no attached app, so no database to choose; attach one first", res.Name)
	}
	return nil, invalid("resource %s is attached to %s: name the app whose database you mean", res.Name, strings.Join(names, ", "))
}

func (c *Controller) captureBackup(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var req api.CaptureRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	res, _, err := c.loadResource(ctx, r.PathValue("name"))
	if err != nil {
		return err
	}
	if !res.DeleteRequestedAt.IsZero() {
		return conflict("resource %s is being removed", res.Name)
	}
	a, err := attachmentFor(&res, req.App)
	if err != nil {
		return err
	}
	b, err := c.startCapture(ctx, &res, a.Database, 0)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, b)
	return nil
}

func (c *Controller) listBackups(w http.ResponseWriter, r *http.Request) error {
	name := r.URL.Query().Get("resource")
	items, _, err := store.List[api.Backup](r.Context(), c.Client, store.ResourceBackups)
	if err != nil {
		return err
	}
	out := []api.Backup{}
	for _, it := range items {
		if name == "" || it.Value.Resource == name {
			out = append(out, it.Value)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.After(out[j].CreatedAt) })
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (c *Controller) getBackup(w http.ResponseWriter, r *http.Request) error {
	b, err := c.loadBackup(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, b)
	return nil
}

// deleteBackup forgets a backup; garbage collection then removes its
// dump from every server. A running one is left to finish first.
func (c *Controller) deleteBackup(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	id := r.PathValue("id")
	if !api.ValidID(id) {
		return notFound("no backup %q", id)
	}
	b, rev, err := store.Get[api.Backup](ctx, c.Client, backupKey(id))
	if errors.Is(err, store.ErrNotFound) {
		return notFound("no backup %q", id)
	} else if err != nil {
		return err
	}
	if !b.State.Done() {
		return conflict("backup %s is still running", id)
	}
	if err := store.DeleteIf(ctx, c.Client, backupKey(id), rev); errors.Is(err, store.ErrConflict) {
		return conflict("backup %s changed meanwhile; try again", id)
	} else if err != nil {
		return err
	}
	c.Log.Info("backup deleted", "backup", id, "resource", b.Resource)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (c *Controller) downloadBackup(w http.ResponseWriter, r *http.Request) error {
	return c.serveBackup(w, r, r.PathValue("id"))
}

// restoreBackup starts a one-off job that loads a backup into a
// database of the resource named (the backup's own or another of its
// type); the caller attaches to it for its output and exit status.
func (c *Controller) restoreBackup(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var req api.RestoreRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	b, err := c.loadBackup(ctx, req.Backup)
	if err != nil {
		return err
	}
	if b.State != api.BackupSucceeded {
		return conflict("backup %s is %s: only a succeeded backup can be restored", b.ID, b.State)
	}
	res, _, err := c.loadResource(ctx, r.PathValue("name"))
	if err != nil {
		return err
	}
	if !res.DeleteRequestedAt.IsZero() {
		return conflict("resource %s is being removed", res.Name)
	}
	if res.Type != b.Type {
		return invalid("backup %s is of a %s database; resource %s is %s", b.ID, b.Type, res.Name, res.Type)
	}
	a, err := attachmentFor(&res, req.App)
	if err != nil {
		return err
	}
	bk, ok := providers[res.Type].(appliance.Backuper)
	if !ok {
		return invalid("resources of type %s have no backups", res.Type)
	}
	addr, sec, err := c.servingMember(ctx, &res)
	if err != nil {
		return err
	}
	args, env := bk.Restore(addr, &sec, a)
	o, err := c.startBackupJob(ctx, &res, "restore", args, env, backupJobSecret{Backup: b.ID, Restore: true}, true, nil)
	if err != nil {
		return err
	}
	c.Log.Info("restore started", "backup", b.ID, "resource", res.Name, "database", a.Database, "job", o.ID)
	writeJSON(w, http.StatusCreated, api.AppJob{ID: o.ID, App: o.App, Release: o.Release, Args: slices.Clone(o.Args),
		State: api.JobPending, Desired: api.DesiredRunning, OneOff: true, CreatedAt: o.CreatedAt})
	return nil
}

// scheduleBackups sets (PUT) or clears (DELETE) a resource's daily
// backup.
func (c *Controller) scheduleBackups(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var sched *api.BackupSchedule
	if r.Method == http.MethodPut {
		var req api.ScheduleRequest
		if err := decode(w, r, &req); err != nil {
			return err
		}
		if _, _, err := api.ParseClock(req.At); err != nil {
			return invalid("%v", err)
		}
		if req.Zone != "" {
			if _, err := time.LoadLocation(req.Zone); err != nil || strings.HasPrefix(req.Zone, "/") {
				return invalid("time zone %q is unknown (give one such as Europe/Paris, or none for UTC)", req.Zone)
			}
		}
		if req.KeepDays == 0 {
			req.KeepDays = api.DefaultBackupKeepDays
		}
		if req.KeepDays < 1 || req.KeepDays > 3650 {
			return invalid("backups are kept from 1 to 3650 days, not %d", req.KeepDays)
		}
		sched = &api.BackupSchedule{At: req.At, Zone: req.Zone, KeepDays: req.KeepDays, Since: time.Now().UTC()}
		if req.App != "" {
			sched.Database = req.App // checked below, against the attachments
		}
	}
	res, err := c.changeResource(ctx, r.PathValue("name"), func(res *api.Resource) error {
		if _, ok := providers[res.Type].(appliance.Backuper); !ok && sched != nil {
			return invalid("resources of type %s have no backups", res.Type)
		}
		if sched != nil {
			a, err := attachmentFor(res, sched.Database)
			if err != nil {
				return err
			}
			sched.Database = a.Database
		}
		res.BackupSchedule = sched
		return nil
	})
	if err != nil {
		return err
	}
	c.Log.Info("backup schedule changed", "resource", res.Name, "schedule", res.BackupSchedule)
	writeJSON(w, http.StatusOK, res)
	return nil
}
