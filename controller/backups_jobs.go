package controller

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/appliance"
	"github.com/pierpaas/pier/scheduler"
	"github.com/pierpaas/pier/store"
)

// Backup and restore jobs: one-offs of a resource's system app that run
// `pier backup-job`, the datastore's dump or restore program with the
// dump streamed to or from their own endpoint here. Like a build job's,
// that endpoint takes the job's token, good for its one backup, instead
// of an API key: the job holds the resource's admin password already,
// but nothing that reaches the rest of the cluster.

// backupJobSecret is the controller's private record of a backup or
// restore job, under store.BackupJobSecrets + job id.
type backupJobSecret struct {
	TokenSHA256 string `json:"token_sha256"`
	Backup      string `json:"backup"`
	// Restore: the job may read the backup's dump; else it writes it.
	Restore bool `json:"restore,omitempty"`
}

// backupJobResources are a backup job's: pg_dump and pg_restore stream,
// and need little memory whatever the database's size.
var backupJobResources = api.Resources{CPUMillis: 500, MemoryMB: 256}

func backupKey(id string) string { return store.ResourceBackups + id }

func (c *Controller) backupJobRoutes() map[string]handlerFunc {
	return map[string]handlerFunc{
		"PUT /v1/backup-jobs/{job}/dump":    c.putBackupDump,
		"GET /v1/backup-jobs/{job}/dump":    c.getBackupDump,
		"POST /v1/backup-jobs/{job}/result": c.postBackupResult,
	}
}

// wrapBackupJob authenticates a backup job by its token.
func (c *Controller) wrapBackupJob(h handlerFunc) http.Handler {
	return c.withRequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := c.backupJob(r); err != nil {
			c.writeError(w, r, err)
			return
		}
		if err := h(w, r); err != nil {
			c.writeError(w, r, err)
		}
	}))
}

// backupJob is the secret of the job whose token r carries.
func (c *Controller) backupJob(r *http.Request) (backupJobSecret, error) {
	denied := api.Errorf(api.ErrCodeUnauthenticated, "a backup job's token is required")
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	id := r.PathValue("job")
	if !ok || !api.ValidID(id) {
		return backupJobSecret{}, denied
	}
	s, _, err := store.Get[backupJobSecret](r.Context(), c.Client, store.BackupJobSecrets+id)
	if errors.Is(err, store.ErrNotFound) {
		return s, denied
	}
	if err != nil {
		return s, err
	}
	if subtle.ConstantTimeCompare([]byte(hashHex(token)), []byte(s.TokenSHA256)) != 1 {
		return s, denied
	}
	return s, nil
}

// putBackupDump stores a capture job's dump and marks its backup done.
// A dump cut short (the program failed) fails the upload: nothing is
// recorded, and the job reports why.
func (c *Controller) putBackupDump(w http.ResponseWriter, r *http.Request) error {
	s, _ := c.backupJob(r)
	if s.Restore {
		return api.Errorf(api.ErrCodeUnauthenticated, "a restore job reads its dump")
	}
	if c.Blobs == nil {
		return api.Errorf(api.ErrCodeUnavailable, "this server has no blobstore")
	}
	if err := c.refuseUnderPressure("backups"); err != nil {
		return err
	}
	blob, err := c.Blobs.Put(r.Context(), r.Body, "")
	if err != nil {
		return err
	}
	b, err := c.finishBackup(r.Context(), s.Backup, func(b *api.Backup) {
		b.State, b.SHA256, b.Size = api.BackupSucceeded, blob.SHA256, blob.Size
	})
	if err != nil {
		return err
	}
	c.Log.Info("backup stored", "backup", b.ID, "resource", b.Resource, "size", b.Size)
	writeJSON(w, http.StatusCreated, b)
	return nil
}

// postBackupResult records why a capture failed.
func (c *Controller) postBackupResult(w http.ResponseWriter, r *http.Request) error {
	s, _ := c.backupJob(r)
	var res api.BackupJobResult
	if err := decode(w, r, &res); err != nil {
		return err
	}
	if s.Restore || res.Error == "" {
		return invalid("only a capture job's failure is reported")
	}
	b, err := c.finishBackup(r.Context(), s.Backup, func(b *api.Backup) {
		b.State, b.Error = api.BackupFailed, res.Error
	})
	if err != nil {
		return err
	}
	c.Log.Warn("backup failed", "backup", b.ID, "resource", b.Resource, "err", res.Error)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// finishBackup ends a running backup the way fn says, once: a backup that
// has ended already is a conflict.
func (c *Controller) finishBackup(ctx context.Context, id string, fn func(*api.Backup)) (api.Backup, error) {
	for {
		b, rev, err := store.Get[api.Backup](ctx, c.Client, backupKey(id))
		if err != nil {
			return b, err
		}
		if b.State.Done() {
			return b, conflict("backup %s has ended already (%s)", id, b.State)
		}
		fn(&b)
		b.FinishedAt = time.Now().UTC()
		if _, err := store.Update(ctx, c.Client, backupKey(id), b, rev); !errors.Is(err, store.ErrConflict) {
			return b, err
		}
	}
}

// getBackupDump streams a restore job the dump it loads.
func (c *Controller) getBackupDump(w http.ResponseWriter, r *http.Request) error {
	s, _ := c.backupJob(r)
	if !s.Restore {
		return api.Errorf(api.ErrCodeUnauthenticated, "a capture job writes its dump")
	}
	return c.serveBackup(w, r, s.Backup)
}

// serveBackup streams a succeeded backup's dump.
func (c *Controller) serveBackup(w http.ResponseWriter, r *http.Request, id string) error {
	b, err := c.loadBackup(r.Context(), id)
	if err != nil {
		return err
	}
	if b.State != api.BackupSucceeded {
		return conflict("backup %s is %s: it has no dump", b.ID, b.State)
	}
	f, err := c.openBlob(r.Context(), b.SHA256)
	if err != nil {
		return api.Errorf(api.ErrCodeUnavailable, "backup %s: its dump is on no reachable server: %v", b.ID, err)
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="`+b.ID+`.dump"`)
	http.ServeContent(w, r, b.ID+".dump", b.CreatedAt, f)
	return nil
}

// startBackupJob stores a one-off of res's system app that runs `pier
// backup-job VERB -- ARGS` and its secret, with whatever with adds to
// the transaction (the backup's record), all or nothing.
func (c *Controller) startBackupJob(ctx context.Context, res *api.Resource, verb string, args []string, env map[string]string,
	secret backupJobSecret, stdin bool, with func(o *api.OneOff, tx *store.Tx)) (api.OneOff, error) {
	app, appRev, err := c.loadApp(ctx, res.App)
	if err != nil {
		return api.OneOff{}, err
	}
	token := randomHex(32)
	secret.TokenSHA256 = hashHex(token)
	o := api.OneOff{
		ID: newID(app.Name, verb), App: app.Name, Release: app.Release,
		Args:      append([]string{api.PierBinary, "backup-job", verb, "--"}, args...),
		Env:       env,
		Resources: backupJobResources, Stdin: stdin, ControlPlane: true, CreatedAt: time.Now().UTC(),
	}
	o.Env[api.BackupEnvURL] = strings.TrimSuffix(c.BlobURL, "/") + "/v1/backup-jobs/" + o.ID
	o.Env[api.BackupEnvToken] = token
	o.Env[api.BackupEnvCA] = string(c.BuildCA)
	if err := o.Validate(); err != nil {
		return o, err
	}
	tx := store.Txn().Unchanged(appKey(app.Name), appRev).
		Create(scheduler.OneOffPrefix+o.ID, o).
		Create(store.BackupJobSecrets+o.ID, secret)
	if with != nil {
		with(&o, tx)
	}
	_, err = tx.Commit(ctx, c.Client)
	return o, err
}

// startCapture starts a backup of database of res. The member must be
// serving: its address goes into the job. keepDays > 0 makes a
// scheduled backup, which expires.
func (c *Controller) startCapture(ctx context.Context, res *api.Resource, database string, keepDays int) (api.Backup, error) {
	bk, ok := providers[res.Type].(appliance.Backuper)
	if !ok {
		return api.Backup{}, invalid("resources of type %s have no backups", res.Type)
	}
	addr, sec, err := c.servingMember(ctx, res)
	if err != nil {
		return api.Backup{}, err
	}
	now := time.Now().UTC()
	b := api.Backup{ID: newID(res.Name, "backup"), Resource: res.Name, Type: res.Type, Database: database,
		State: api.BackupRunning, CreatedAt: now}
	if keepDays > 0 {
		b.Scheduled, b.ExpiresAt = true, now.Add(time.Duration(keepDays)*24*time.Hour)
	}
	args, env := bk.Dump(addr, &sec, database)
	_, err = c.startBackupJob(ctx, res, "backup", args, env, backupJobSecret{Backup: b.ID}, false,
		func(o *api.OneOff, tx *store.Tx) {
			b.JobID = o.ID
			tx.Create(backupKey(b.ID), b)
		})
	if err != nil {
		return b, err
	}
	c.Log.Info("backup started", "backup", b.ID, "resource", res.Name, "database", database, "job", b.JobID)
	return b, nil
}

// servingMember is the address of res's serving member and its secret,
// or an unavailable error saying why there is none.
func (c *Controller) servingMember(ctx context.Context, res *api.Resource) (string, api.ResourceSecret, error) {
	addr, err := c.memberAddr(ctx, res)
	if err != nil {
		return "", api.ResourceSecret{}, err
	}
	if addr == "" || res.State != api.ResourceAvailable {
		return "", api.ResourceSecret{}, api.Errorf(api.ErrCodeUnavailable, "resource %s is not serving (%s); try again in a moment", res.Name, res.State)
	}
	sec, _, err := store.Get[api.ResourceSecret](ctx, c.Client, secretKey(res.Name))
	return addr, sec, err
}

// jobEnded reports whether a one-off has ended, or is gone.
func (c *Controller) oneOffEnded(ctx context.Context, id string) (bool, error) {
	st, _, err := store.Get[api.JobStatus](ctx, c.Client, store.JobStatusPrefix+id)
	if err == nil {
		return st.State.Terminal(), nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return false, err
	}
	// Not started: still to be placed, or cancelled and gone.
	_, _, err = store.Get[api.OneOff](ctx, c.Client, scheduler.OneOffPrefix+id)
	if errors.Is(err, store.ErrNotFound) {
		return true, nil
	}
	return false, err
}
