package api

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Resource is a provisioned datastore (a PostgreSQL database server),
// under /pier/resources/<name>. The controller writes it: the API creates
// it and asks for changes (an attachment, a removal), and the resource
// loop carries them out step by step, each step guarded by the record's
// revision, so any server finishes what another started. Its members are
// the jobs of an ordinary system app (App), with their data on a volume.
// Credentials are never in it: see ResourceSecret.
type Resource struct {
	Name string `json:"name"`
	Type string `json:"type"` // "postgres"
	// App is the system app whose jobs run the resource ("pg-<name>").
	App    string        `json:"app"`
	State  ResourceState `json:"state"`
	SizeMB int64         `json:"size_mb"`
	// Port is the routers' TCP port that reaches the resource wherever
	// its member runs: the stable address apps get (see Address).
	Port int `json:"port,omitempty"`
	// Address is where apps connect, "HOST:PORT": a router's address and
	// Port.
	Address     string       `json:"address,omitempty"`
	Attachments []Attachment `json:"attachments,omitempty"`
	// BackupSchedule, when set, captures a database every day.
	BackupSchedule *BackupSchedule `json:"backup_schedule,omitempty"`
	// Error is why the last step failed, while the loop retries it.
	Error     string    `json:"error,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// DeleteRequestedAt marks the resource for removal: the loop detaches
	// its apps, removes its system app, jobs and volume, then the record.
	DeleteRequestedAt time.Time `json:"delete_requested_at,omitzero"`
}

// ResourceState is where a resource is in its life.
type ResourceState string

const (
	ResourceProvisioning ResourceState = "provisioning" // its member is being started
	ResourceAvailable    ResourceState = "available"    // its member answers
	ResourceDeleting     ResourceState = "deleting"     // being removed, data included
)

// Attachment binds a resource to an app: a database and a login role of
// their own, whose URL is in the app's environment under EnvVar.
type Attachment struct {
	App      string          `json:"app"`
	State    AttachmentState `json:"state"`
	EnvVar   string          `json:"env_var"`
	Database string          `json:"database"`
	// Role owns the database; sessions log in as Login, when set (after
	// a credential rotation), which acts as Role.
	Role  string `json:"role"`
	Login string `json:"login,omitempty"`
	// Release is the app's release that first carried (or, detaching,
	// dropped) the variable.
	Release   int       `json:"release,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// AttachmentState is an attachment's progress.
type AttachmentState string

const (
	AttachmentPending   AttachmentState = "attaching" // database and role being made, then the release
	AttachmentAttached  AttachmentState = "attached"  // the app's release carries the URL
	AttachmentDetaching AttachmentState = "detaching" // a release without it, then the role dropped
	AttachmentRotating  AttachmentState = "rotating"  // a new login and a release with it, then the old login retired
)

// LoginRole is the role the attached app logs in as.
func (a *Attachment) LoginRole() string {
	if a.Login != "" {
		return a.Login
	}
	return a.Role
}

// Attachment returns the resource's attachment to app, if any.
func (r *Resource) Attachment(app string) (*Attachment, bool) {
	for i := range r.Attachments {
		if r.Attachments[i].App == app {
			return &r.Attachments[i], true
		}
	}
	return nil, false
}

// ResourceSecret holds a resource's credentials, under
// /pier/resource-secrets/<name>: read by servers only, never answered by
// an endpoint that lists or shows resources.
type ResourceSecret struct {
	Name string `json:"name"`
	// AdminPassword is the superuser's (postgres) password.
	AdminPassword string `json:"admin_password"`
	// Passwords are the attachments' roles' passwords, by app.
	Passwords map[string]string `json:"passwords,omitempty"`
	// NextPasswords are the passwords of logins being rotated in, by
	// app: kept before they are used, so a step repeated sets the same.
	NextPasswords map[string]string `json:"next_passwords,omitempty"`
}

// CreateResourceRequest is POST /v1/resources.
type CreateResourceRequest struct {
	Type string `json:"type"`
	// Name is a DNS label; empty: the controller picks one.
	Name string `json:"name,omitempty"`
	// App, when set, is attached as soon as the resource is available.
	App    string `json:"app,omitempty"`
	SizeMB int64  `json:"size_mb,omitempty"`
}

// AttachRequest is POST /v1/resources/{name}/attachments.
type AttachRequest struct {
	App string `json:"app"`
}

// RotateRequest is POST /v1/resources/{name}/credentials/rotate: new
// credentials for App's attachment, or every attached app's when empty.
type RotateRequest struct {
	App string `json:"app,omitempty"`
}

// PsqlRequest is POST /v1/resources/{name}/psql: a one-off job running
// psql against the resource, as App's role on its database, or as the
// superuser when App is empty.
type PsqlRequest struct {
	App   string `json:"app,omitempty"`
	TTY   bool   `json:"tty,omitempty"`
	Stdin bool   `json:"stdin,omitempty"`
	// Command, when set, is run by psql (-c) instead of a session.
	Command string `json:"command,omitempty"`
}

// ResourceInfo is GET /v1/resources/{name}: the record, where its member
// runs and what its server says of itself.
type ResourceInfo struct {
	Resource
	Host   string `json:"host,omitempty"`
	Volume string `json:"volume,omitempty"`
	// Member is the member job's address, when it is serving.
	Member string `json:"member,omitempty"`
	// Stats come from the database server itself (version, size,
	// connections), when it answers.
	Stats map[string]string `json:"stats,omitempty"`
}

// DefaultResourceMB is a resource's volume size when none is asked for.
const DefaultResourceMB = 1024

// ValidateResourceName checks a resource's name: a DNS label, short
// enough that its system app's name ("pg-" + name) is one too.
func ValidateResourceName(name string) error {
	switch {
	case len(name) > 56:
		return fmt.Errorf("resource name %q is %d characters long; the limit is 56", name, len(name))
	case !idRE.MatchString(name):
		return fmt.Errorf("resource name %q is invalid: use lower-case letters, digits and single dashes between them (like main-db)", name)
	}
	return nil
}

// ParseSizeMB reads a size such as "512M", "10G", "1T" or "300" (MB)
// into megabytes.
func ParseSizeMB(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "I")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'M':
			t = t[:n-1]
		case 'G':
			mult, t = 1024, t[:n-1]
		case 'T':
			mult, t = 1024*1024, t[:n-1]
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("size %q: want a positive number of megabytes, or one with M, G or T (10G)", s)
	}
	if n > MaxVolumeMB/mult {
		return 0, fmt.Errorf("size %q is over the maximum of %d MB", s, MaxVolumeMB)
	}
	return n * mult, nil
}
