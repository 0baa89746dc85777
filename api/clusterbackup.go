package api

import "time"

// ClusterBackupSchedule is a schedule of whole-cluster backups (what
// `pier cluster backup` writes), kept at
// /pier/cluster-backup-schedules/<name> and written by the controller
// only. The elected backup loop of the servers makes them; what it did
// is the schedule's ClusterBackupStatus.
type ClusterBackupSchedule struct {
	Name string `json:"name"`
	// Every is the time between two backups; or At ("HH:MM", 24-hour) in
	// Zone (an IANA name, UTC when empty) makes one a day. One of the two.
	Every Duration `json:"every,omitempty"`
	At    string   `json:"at,omitempty"`
	Zone  string   `json:"zone,omitempty"`
	// Dir is the directory, on the server that makes the backup, where
	// files go: an absolute path. In a cluster of several servers it
	// should be shared storage (NFS and the like): the elected server
	// writes, and the election may move.
	Dir string `json:"dir,omitempty"`
	// S3, instead of Dir, is a bucket of an S3-compatible store the files
	// go to.
	S3 *ClusterBackupS3 `json:"s3,omitempty"`
	// Keep is how many of the schedule's newest files stay in Dir; older
	// ones are removed after each backup made.
	Keep      int       `json:"keep"`
	CreatedAt time.Time `json:"created_at"`

	// Status is filled in by the API from the loop's record; not stored
	// here.
	Status *ClusterBackupStatus `json:"status,omitempty"`
}

// ClusterBackupS3 is where in an S3-compatible store a schedule's
// backups go: objects Prefix + pier-backup-<name>-<time>.tar in Bucket.
// The API never shows SecretKey.
type ClusterBackupS3 struct {
	// Endpoint is the store's host[:port] ("s3.amazonaws.com",
	// "minio.internal:9000"); Insecure talks plain HTTP to it.
	Endpoint  string `json:"endpoint"`
	Bucket    string `json:"bucket"`
	Prefix    string `json:"prefix,omitempty"`
	Region    string `json:"region,omitempty"`
	AccessKey string `json:"access_key"`
	SecretKey string `json:"secret_key,omitempty"`
	Insecure  bool   `json:"insecure,omitempty"`
}

// String is the destination as a URL, without credentials.
func (s *ClusterBackupS3) String() string {
	return "s3://" + s.Bucket + "/" + s.Prefix + " at " + s.Endpoint
}

// DefaultClusterBackupKeep is how many files a schedule keeps when not
// told.
const DefaultClusterBackupKeep = 7

// ClusterBackupStatus is what the backup loop did for a schedule, kept at
// /pier/cluster-backup-status/<name> and written by that loop only.
type ClusterBackupStatus struct {
	// LastAttempt is when the last backup started, LastSuccess when the
	// last one that worked started; the next is due from them.
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	// LastError is why the last attempt failed ("" when it worked).
	LastError string `json:"last_error,omitempty"`
	// Files are the backups of the schedule known to be kept, newest
	// first, as the last successful run left them.
	Files []ClusterBackupFile `json:"files,omitempty"`
	// Made and Failed count the attempts since the schedule was made.
	Made   int `json:"made"`
	Failed int `json:"failed"`
	// Next is when the next backup is due (filled in by the API).
	Next time.Time `json:"next,omitzero"`
}

// ClusterBackupFile is one backup a schedule wrote.
type ClusterBackupFile struct {
	Path      string    `json:"path"`
	Server    string    `json:"server"`
	Size      int64     `json:"size"`
	CreatedAt time.Time `json:"created_at"`
}

// ClusterBackupScheduleRequest is PUT /v1/cluster/backup-schedules/{name}.
type ClusterBackupScheduleRequest struct {
	Every Duration         `json:"every,omitempty"`
	At    string           `json:"at,omitempty"`
	Zone  string           `json:"zone,omitempty"`
	Dir   string           `json:"dir,omitempty"`
	S3    *ClusterBackupS3 `json:"s3,omitempty"`
	Keep  int              `json:"keep,omitempty"`
}
