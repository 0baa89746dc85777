package api

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Backup is a dump of one database of a resource (pg_dump's custom
// format for PostgreSQL), under /pier/resource-backups/<id>. The dump
// itself is a blob of the blobstore, so every server holds a copy and it
// outlives the resource's host; the record keeps the blob from garbage
// collection for as long as it lives. A backup job (a one-off of the
// resource's system app) makes the dump and uploads it; the controller
// records the outcome.
type Backup struct {
	ID       string      `json:"id"`
	Resource string      `json:"resource"`
	Type     string      `json:"type"` // the resource's type
	Database string      `json:"database"`
	State    BackupState `json:"state"`
	// Scheduled backups expire (see BackupSchedule); captured ones stay
	// until deleted.
	Scheduled bool   `json:"scheduled,omitempty"`
	JobID     string `json:"job_id,omitempty"`
	SHA256    string `json:"sha256,omitempty"`
	Size      int64  `json:"size,omitempty"`
	// Error is why a failed backup failed.
	Error      string    `json:"error,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	// ExpiresAt is when a scheduled backup is deleted.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// BackupState is where a backup is.
type BackupState string

const (
	BackupRunning   BackupState = "running"   // its job dumps and uploads
	BackupSucceeded BackupState = "succeeded" // the dump is in the blobstore
	BackupFailed    BackupState = "failed"
)

// Done reports whether the backup has ended.
func (s BackupState) Done() bool { return s == BackupSucceeded || s == BackupFailed }

// BackupSchedule captures a resource's database every day at At
// ("HH:MM", in Zone, UTC if empty), keeping each backup KeepDays days.
type BackupSchedule struct {
	At       string `json:"at"`
	Zone     string `json:"zone,omitempty"`
	KeepDays int    `json:"keep_days"`
	// Database is the database captured; empty: the only attached app's.
	Database string    `json:"database,omitempty"`
	Since    time.Time `json:"since"`
}

// DefaultBackupKeepDays is how long scheduled backups are kept unless
// the schedule says otherwise.
const DefaultBackupKeepDays = 7

// ParseClock reads "HH:MM" into hours and minutes.
func ParseClock(s string) (int, int, error) {
	h, m, ok := strings.Cut(strings.TrimSpace(s), ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || len(m) != 2 || hh < 0 || hh > 23 || mm < 0 || mm > 59 {
		return 0, 0, fmt.Errorf("time %q: give it as HH:MM, 24-hour (02:00)", s)
	}
	return hh, mm, nil
}

// CaptureRequest is POST /v1/resources/{name}/backups.
type CaptureRequest struct {
	// App names the attachment whose database is captured; empty: the
	// resource's only attached app.
	App string `json:"app,omitempty"`
}

// RestoreRequest is POST /v1/resources/{name}/restores: backup Backup
// (of this resource or another of the same type) loaded into the
// database of the attachment App (empty: the only attached app).
type RestoreRequest struct {
	Backup string `json:"backup"`
	App    string `json:"app,omitempty"`
}

// ScheduleRequest is PUT /v1/resources/{name}/backup-schedule.
type ScheduleRequest struct {
	At       string `json:"at"`
	Zone     string `json:"zone,omitempty"`
	KeepDays int    `json:"keep_days,omitempty"`
	App      string `json:"app,omitempty"`
}

// A backup job reaches its controller as a build job does: the job's
// environment carries the URL of its endpoint, a token good for that one
// job, and the cluster's CA.
//
//	PUT /v1/backup-jobs/{job}/dump    the dump, streamed (capture)
//	POST /v1/backup-jobs/{job}/result BackupJobResult (capture)
//	GET /v1/backup-jobs/{job}/dump    the dump to load (restore)
const (
	BackupEnvURL   = "PIER_BACKUP_URL" // https://server:port/v1/backup-jobs/{job}
	BackupEnvToken = "PIER_BACKUP_TOKEN"
	BackupEnvCA    = "PIER_BACKUP_CA"
)

// BackupJobResult is what a capture job reports when its dump failed.
type BackupJobResult struct {
	Error string `json:"error,omitempty"`
}
