package controller

import (
	"context"
	"errors"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/store"
)

// backupPass is the resource loop's care of backups, level-triggered
// like the rest of it: a backup whose job ended without storing a dump
// failed; a job that ended needs its token no more; a scheduled backup
// past its days goes (its dump with the next garbage collection); and a
// resource whose daily time has come since its last scheduled backup
// gets one.
func (c *Controller) backupPass(ctx context.Context) {
	if err := c.settleBackups(ctx); err != nil && ctx.Err() == nil {
		c.Log.Warn("backups: cannot settle", "err", err)
	}
	res, _, err := store.List[api.Resource](ctx, c.Client, store.ResourcesPrefix)
	if err != nil {
		return
	}
	backups, _, err := store.List[api.Backup](ctx, c.Client, store.ResourceBackups)
	if err != nil {
		return
	}
	now := time.Now()
	for _, it := range res {
		r := it.Value
		if r.BackupSchedule == nil || !r.DeleteRequestedAt.IsZero() || r.State != api.ResourceAvailable {
			continue
		}
		due, err := lastDue(*r.BackupSchedule, now)
		if err != nil || !due.After(r.BackupSchedule.Since) || haveScheduled(backups, r.Name, due) {
			continue
		}
		if _, err := c.startCapture(ctx, &r, r.BackupSchedule.Database, r.BackupSchedule.KeepDays); err != nil && ctx.Err() == nil {
			c.Log.Warn("backups: scheduled capture failed to start; retrying", "resource", r.Name, "err", err)
		}
	}
}

// lastDue is the latest time at or before now at which s captures.
func lastDue(s api.BackupSchedule, now time.Time) (time.Time, error) {
	h, m, loc, err := clockIn(s.At, s.Zone)
	if err != nil {
		return time.Time{}, err
	}
	local := now.In(loc)
	due := time.Date(local.Year(), local.Month(), local.Day(), h, m, 0, 0, loc)
	if due.After(now) {
		due = time.Date(local.Year(), local.Month(), local.Day()-1, h, m, 0, 0, loc)
	}
	return due, nil
}

// clockIn parses a time of day ("HH:MM") and its zone (UTC when empty).
func clockIn(at, zone string) (h, m int, loc *time.Location, err error) {
	if h, m, err = api.ParseClock(at); err != nil {
		return 0, 0, nil, err
	}
	loc = time.UTC
	if zone != "" {
		if loc, err = time.LoadLocation(zone); err != nil {
			return 0, 0, nil, err
		}
	}
	return h, m, loc, nil
}

// haveScheduled reports whether resource has a scheduled backup started
// at or after due.
func haveScheduled(backups []store.Item[api.Backup], resource string, due time.Time) bool {
	for _, it := range backups {
		if b := it.Value; b.Resource == resource && b.Scheduled && !b.CreatedAt.Before(due) {
			return true
		}
	}
	return false
}

func (c *Controller) settleBackups(ctx context.Context) error {
	backups, _, err := store.List[api.Backup](ctx, c.Client, store.ResourceBackups)
	if err != nil {
		return err
	}
	now := time.Now()
	for _, it := range backups {
		b := it.Value
		switch {
		case b.State.Done() && !b.ExpiresAt.IsZero() && now.After(b.ExpiresAt):
			if err := store.DeleteIf(ctx, c.Client, backupKey(b.ID), it.ModRevision); err != nil && !errors.Is(err, store.ErrConflict) {
				return err
			}
			c.Log.Info("backup expired", "backup", b.ID, "resource", b.Resource)
		case !b.State.Done():
			ended, err := c.oneOffEnded(ctx, b.JobID)
			if err != nil || !ended {
				continue
			}
			b.State, b.Error, b.FinishedAt = api.BackupFailed, "the backup job ended without storing a dump; see its output in pier logs", now.UTC()
			if _, err := store.Update(ctx, c.Client, backupKey(b.ID), b, it.ModRevision); err != nil && !errors.Is(err, store.ErrConflict) {
				return err
			}
		}
	}
	secrets, _, err := store.List[backupJobSecret](ctx, c.Client, store.BackupJobSecrets)
	if err != nil {
		return err
	}
	for _, it := range secrets {
		job := it.Key[len(store.BackupJobSecrets):]
		if ended, err := c.oneOffEnded(ctx, job); err == nil && ended {
			if err := store.DeleteIf(ctx, c.Client, it.Key, it.ModRevision); err != nil && !errors.Is(err, store.ErrConflict) {
				return err
			}
		}
	}
	return nil
}
