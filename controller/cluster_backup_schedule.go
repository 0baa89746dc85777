package controller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/backup"
	"github.com/pierpaas/pier/scheduler"
	"github.com/pierpaas/pier/store"
)

// Scheduled cluster backups: the API keeps schedules in the store; every
// server campaigns, and the elected one passes over them, makes the
// backups that are due into their directories and prunes the old ones.
// When a backup is due depends only on the schedule and its status
// record (when the last one started and whether it worked), both in the
// store, so a restarted or newly elected server neither repeats nor
// skips one.

// ClusterBackupElection is where the servers' cluster backup loops
// campaign.
const ClusterBackupElection = "/pier/leaders/cluster-backups/"

// clusterBackupInterval is the longest the leader waits between passes.
const clusterBackupInterval = time.Second

// maxClusterBackupRetry bounds the wait after a failed backup before the
// next attempt (shorter when the schedule's interval is).
const maxClusterBackupRetry = 5 * time.Minute

// minClusterBackupEvery keeps a schedule from backing up without pause.
const minClusterBackupEvery = time.Minute

// nextClusterBackup is when s's next backup is due given what its loop
// did (st): a schedule with Every makes its first at once and then one
// Every after the start of the last that worked; a daily one, at its
// first time of day after the schedule was made and after the last
// that worked. After a failure, the next attempt waits a while (at most
// maxClusterBackupRetry).
func nextClusterBackup(s api.ClusterBackupSchedule, st api.ClusterBackupStatus, now time.Time) (time.Time, error) {
	var next time.Time
	retry := maxClusterBackupRetry
	if s.Every > 0 {
		retry = min(retry, time.Duration(s.Every))
		next = s.CreatedAt
		if !st.LastSuccess.IsZero() {
			next = st.LastSuccess.Add(time.Duration(s.Every))
		}
	} else {
		since := s.CreatedAt
		if st.LastSuccess.After(since) {
			since = st.LastSuccess
		}
		var err error
		if next, err = dailyAfter(s, since); err != nil {
			return time.Time{}, err
		}
	}
	if st.LastAttempt.After(st.LastSuccess) && st.LastError != "" {
		next = later(next, st.LastAttempt.Add(retry))
	}
	return next, nil
}

// dailyAfter is the first time of day of s strictly after t.
func dailyAfter(s api.ClusterBackupSchedule, t time.Time) (time.Time, error) {
	h, m, loc, err := clockIn(s.At, s.Zone)
	if err != nil {
		return time.Time{}, err
	}
	local := t.In(loc)
	for d := 0; ; d++ {
		if due := time.Date(local.Year(), local.Month(), local.Day()+d, h, m, 0, 0, loc); due.After(t) {
			return due, nil
		}
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// checkClusterBackupSchedule validates a request into a schedule.
func checkClusterBackupSchedule(name string, req api.ClusterBackupScheduleRequest, now time.Time) (api.ClusterBackupSchedule, error) {
	s := api.ClusterBackupSchedule{Name: name, Every: req.Every, At: req.At, Zone: req.Zone, Dir: req.Dir, S3: req.S3, Keep: req.Keep, CreatedAt: now.UTC()}
	if !api.ValidID(name) {
		return s, invalid("a schedule's name is lower-case letters, digits and dashes (%q is not)", name)
	}
	switch {
	case s.Every == 0 && s.At == "":
		return s, invalid("say how often: every (a duration such as 24h) or at (a time of day, HH:MM)")
	case s.Every != 0 && s.At != "":
		return s, invalid("every or at, not both")
	case s.Every != 0 && time.Duration(s.Every) < minClusterBackupEvery:
		return s, invalid("backups at most every %s, not every %s", minClusterBackupEvery, time.Duration(s.Every))
	case s.Every != 0 && s.Zone != "":
		return s, invalid("a time zone goes with at, not with every")
	}
	if s.At != "" {
		if _, _, err := api.ParseClock(s.At); err != nil {
			return s, invalid("%v", err)
		}
		if s.Zone != "" {
			if _, err := time.LoadLocation(s.Zone); err != nil || strings.HasPrefix(s.Zone, "/") {
				return s, invalid("time zone %q is unknown (give one such as Europe/Paris, or none for UTC)", s.Zone)
			}
		}
	}
	switch {
	case s.S3 != nil && s.Dir != "":
		return s, invalid("a directory or an S3 bucket, not both")
	case s.S3 != nil:
		if err := checkS3(s.S3); err != nil {
			return s, err
		}
	case s.Dir == "" || !filepath.IsAbs(s.Dir):
		return s, invalid("the directory must be an absolute path on the servers (%q is not)", s.Dir)
	default:
		s.Dir = filepath.Clean(s.Dir)
	}
	if s.Keep == 0 {
		s.Keep = api.DefaultClusterBackupKeep
	}
	if s.Keep < 1 || s.Keep > 10000 {
		return s, invalid("a schedule keeps from 1 to 10000 backups, not %d", s.Keep)
	}
	return s, nil
}

// bucketRE is what S3 accepts as a bucket name.
var bucketRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

func checkS3(d *api.ClusterBackupS3) error {
	switch {
	case d.Endpoint == "" || strings.Contains(d.Endpoint, "/"):
		return invalid("an S3 endpoint is host[:port], such as s3.amazonaws.com (%q is not)", d.Endpoint)
	case !bucketRE.MatchString(d.Bucket):
		return invalid("%q is not an S3 bucket name", d.Bucket)
	case strings.HasPrefix(d.Prefix, "/"):
		return invalid("an S3 prefix does not start with /")
	case d.AccessKey == "":
		return invalid("an S3 bucket needs an access key and a secret key")
	}
	if d.Prefix != "" && !strings.HasSuffix(d.Prefix, "/") {
		d.Prefix += "/"
	}
	return nil
}

// PUT /v1/cluster/backup-schedules/{name}: make or replace a schedule.
// Replacing one keeps what its loop did: the next backup is due from
// the last one, by the new rule.
func (c *Controller) putClusterBackupSchedule(w http.ResponseWriter, r *http.Request) error {
	var req api.ClusterBackupScheduleRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	s, err := checkClusterBackupSchedule(r.PathValue("name"), req, c.now())
	if err != nil {
		return err
	}
	key := store.ClusterBackupSchedulesPrefix + s.Name
	old, _, err := store.Get[api.ClusterBackupSchedule](r.Context(), c.Client, key)
	if err == nil {
		s.CreatedAt = old.CreatedAt
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if s.S3 != nil && s.S3.SecretKey == "" {
		// The same bucket and key again: the secret it was given stays.
		if old.S3 == nil || old.S3.Endpoint != s.S3.Endpoint || old.S3.AccessKey != s.S3.AccessKey {
			return invalid("an S3 bucket needs an access key and a secret key")
		}
		s.S3.SecretKey = old.S3.SecretKey
	}
	if _, err := store.Put(r.Context(), c.Client, key, s); err != nil {
		return err
	}
	c.Log.Info("cluster backup schedule set", "schedule", s.Name, "every", time.Duration(s.Every), "at", s.At, "to", destination(s), "keep", s.Keep)
	out, err := c.withBackupStatus(r.Context(), []api.ClusterBackupSchedule{s})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out[0])
	return nil
}

// GET /v1/cluster/backup-schedules
func (c *Controller) listClusterBackupSchedules(w http.ResponseWriter, r *http.Request) error {
	items, _, err := store.List[api.ClusterBackupSchedule](r.Context(), c.Client, store.ClusterBackupSchedulesPrefix)
	if err != nil {
		return err
	}
	ss := make([]api.ClusterBackupSchedule, 0, len(items))
	for _, it := range items {
		ss = append(ss, it.Value)
	}
	sort.Slice(ss, func(i, j int) bool { return ss[i].Name < ss[j].Name })
	out, err := c.withBackupStatus(r.Context(), ss)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// DELETE /v1/cluster/backup-schedules/{name}: no more backups; the
// files made stay where they are.
func (c *Controller) deleteClusterBackupSchedule(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if !api.ValidID(name) {
		return notFound("no cluster backup schedule %q", name)
	}
	resp, err := c.Client.Delete(r.Context(), store.ClusterBackupSchedulesPrefix+name)
	if err != nil {
		return err
	}
	if resp.Deleted == 0 {
		return notFound("no cluster backup schedule %q", name)
	}
	c.Log.Info("cluster backup schedule removed", "schedule", name)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// withBackupStatus adds each schedule's status and next due time.
func (c *Controller) withBackupStatus(ctx context.Context, ss []api.ClusterBackupSchedule) ([]api.ClusterBackupSchedule, error) {
	sts, _, err := store.List[api.ClusterBackupStatus](ctx, c.Client, store.ClusterBackupStatusPrefix)
	if err != nil {
		return nil, err
	}
	byName := map[string]api.ClusterBackupStatus{}
	for _, it := range sts {
		byName[strings.TrimPrefix(it.Key, store.ClusterBackupStatusPrefix)] = it.Value
	}
	now := c.now()
	for i := range ss {
		if ss[i].S3 != nil {
			d := *ss[i].S3
			d.SecretKey = "" // never shown
			ss[i].S3 = &d
		}
		st := byName[ss[i].Name]
		st.Next, _ = nextClusterBackup(ss[i], st, now)
		ss[i].Status = &st
	}
	return ss, nil
}

// runClusterBackups campaigns and, while leading, makes the scheduled
// backups.
func (c *Controller) runClusterBackups(ctx context.Context) {
	for ctx.Err() == nil {
		if err := c.leadClusterBackups(ctx); err != nil && ctx.Err() == nil {
			c.Log.Warn("cluster backups: leadership ended", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

func (c *Controller) leadClusterBackups(ctx context.Context) error {
	var opts []scheduler.ElectOption
	if c.LeaderDead != nil {
		opts = append(opts, scheduler.WithLeaderProbe(c.LeaderDead, c.Log))
	}
	leader, err := scheduler.Elect(ctx, c.Client, ClusterBackupElection, cmpOr(c.ServerName, "controller"), 5*time.Second, opts...)
	if err != nil {
		return err
	}
	defer leader.Close()
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		// A backup under way stops when the lead is lost: the next
		// leader makes it again.
		select {
		case <-leader.Done():
			cancel()
		case <-lctx.Done():
		}
	}()
	kick := make(chan struct{}, 1)
	go func() {
		for range c.Client.Watch(clientv3.WithRequireLeader(lctx), store.ClusterBackupSchedulesPrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly()) {
			select {
			case kick <- struct{}{}:
			default:
			}
		}
	}()
	t := time.NewTicker(clusterBackupInterval)
	defer t.Stop()
	for {
		if err := c.clusterBackupPass(lctx); err != nil && lctx.Err() == nil {
			c.Log.Warn("cluster backups: pass failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-leader.Done():
			return errors.New("lease lost")
		case <-kick:
		case <-t.C:
		}
	}
}

// clusterBackupPass makes every backup that is due, one after the other,
// and forgets the status of schedules that are gone.
func (c *Controller) clusterBackupPass(ctx context.Context) error {
	scheds, _, err := store.List[api.ClusterBackupSchedule](ctx, c.Client, store.ClusterBackupSchedulesPrefix)
	if err != nil {
		return err
	}
	sts, _, err := store.List[api.ClusterBackupStatus](ctx, c.Client, store.ClusterBackupStatusPrefix)
	if err != nil {
		return err
	}
	byName := map[string]store.Item[api.ClusterBackupStatus]{}
	for _, it := range sts {
		byName[strings.TrimPrefix(it.Key, store.ClusterBackupStatusPrefix)] = it
	}
	for _, it := range scheds {
		s := it.Value
		st := byName[s.Name]
		delete(byName, s.Name)
		next, err := nextClusterBackup(s, st.Value, c.now())
		if err != nil {
			c.Log.Warn("cluster backups: bad schedule", "schedule", s.Name, "err", err)
			continue
		}
		if c.now().Before(next) {
			continue
		}
		if err := c.scheduledClusterBackup(ctx, s, st.Value); err != nil {
			return err
		}
	}
	for name, it := range byName {
		if err := store.DeleteIf(ctx, c.Client, it.Key, it.ModRevision); err != nil && !errors.Is(err, store.ErrConflict) {
			return err
		}
		c.Log.Info("cluster backups: schedule gone, its record forgotten", "schedule", name)
	}
	return nil
}

// scheduledClusterBackup makes one backup of s and records the outcome.
// Only a failure to record it is returned: a failed backup is the
// schedule's news, kept in its status.
func (c *Controller) scheduledClusterBackup(ctx context.Context, s api.ClusterBackupSchedule, st api.ClusterBackupStatus) error {
	start := c.now().UTC()
	c.Log.Info("cluster backups: backing up", "schedule", s.Name, "to", destination(s))
	path, size, err := c.backupTo(ctx, s, start)
	if ctx.Err() != nil {
		return ctx.Err() // the lead was lost: the next leader tries again
	}
	st.LastAttempt = start
	if err != nil {
		st.LastError = err.Error()
		st.Failed++
		c.Log.Error("cluster backups: backup failed", "schedule", s.Name, "to", destination(s), "err", err)
	} else {
		st.LastError, st.LastSuccess = "", start
		st.Made++
		var kept []backup.DirFile
		var perr error
		if s.S3 != nil {
			kept, perr = backup.PruneS3(ctx, s.S3, s.Name, s.Keep)
		} else {
			kept, perr = backup.PruneDir(s.Dir, s.Name, s.Keep, c.now())
		}
		if perr != nil {
			c.Log.Warn("cluster backups: cannot remove old backups", "schedule", s.Name, "err", perr)
		}
		old := st.Files
		st.Files = nil
		for _, f := range kept {
			server := c.ServerName
			if f.Path != path {
				server = serverOf(old, f.Path)
			}
			st.Files = append(st.Files, api.ClusterBackupFile{Path: f.Path, Server: server, Size: f.Size, CreatedAt: f.CreatedAt})
		}
		c.Log.Info("cluster backups: backup made", "schedule", s.Name, "path", path, "size", size, "kept", len(kept))
	}
	if _, err := store.Put(ctx, c.Client, store.ClusterBackupStatusPrefix+s.Name, st); err != nil {
		return fmt.Errorf("record backup of %s: %w", s.Name, err)
	}
	return nil
}

// serverOf is the server that wrote path, as the status last recorded
// it ("" when unknown).
func serverOf(files []api.ClusterBackupFile, path string) string {
	for _, f := range files {
		if f.Path == path {
			return f.Server
		}
	}
	return ""
}

// backupTo makes one backup of s into its directory or bucket and
// returns where it is and its size.
func (c *Controller) backupTo(ctx context.Context, s api.ClusterBackupSchedule, at time.Time) (string, int64, error) {
	src, err := c.prepareClusterBackup(ctx)
	if err != nil {
		return "", 0, err
	}
	defer src.Close()
	write := func(w io.Writer) error {
		_, err := src.Write(w)
		return err
	}
	if s.S3 != nil {
		return backup.WriteS3(ctx, s.S3, "", s.Name, at, write)
	}
	return backup.WriteDir(s.Dir, s.Name, at, write)
}

// destination says where s's backups go, without credentials.
func destination(s api.ClusterBackupSchedule) string {
	if s.S3 != nil {
		return s.S3.String()
	}
	return s.Dir
}
