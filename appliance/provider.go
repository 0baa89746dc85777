package appliance

import (
	"context"
	"crypto/rand"

	"github.com/pierpaas/pier/api"
)

// Provider is one kind of datastore. Methods that talk to a member get
// its address ("IP:PORT", from discovery) and the resource's secret; they
// are idempotent, because the loop that calls them may be cut short and
// repeat a step on another server.
type Provider interface {
	// Type is the name users give ("postgres").
	Type() string
	// SystemApp is the name of the app that runs resource name's members.
	SystemApp(name string) string
	// MemberProcess is the system app's process type that runs members;
	// its first port is registered as <type>.<system app>.
	MemberProcess() string
	// EnvVar is the variable an attached app gets ("DATABASE_URL").
	EnvVar() string
	// NewSecret makes a new resource's credentials.
	NewSecret(name string) (api.ResourceSecret, error)
	// Process is the process type (and its name) that runs a member of
	// res. Only what a member needs to start goes in; a password never
	// does, since a release's environment is readable by the app's users.
	Process(res *api.Resource, sec *api.ResourceSecret) (string, api.ProcessType, error)
	// Ready reports whether the member at addr serves, with the admin
	// credentials.
	Ready(ctx context.Context, addr string, sec *api.ResourceSecret) error
	// Bind makes what attachment a needs on the member (a database and a
	// login role with password), or brings it back in line.
	Bind(ctx context.Context, addr string, sec *api.ResourceSecret, a *api.Attachment, password string) error
	// Unbind removes a's role, keeping its data.
	Unbind(ctx context.Context, addr string, sec *api.ResourceSecret, a *api.Attachment) error
	// URL is the value of EnvVar for a, reached at address.
	URL(address string, a *api.Attachment, password string) string
	// Info is what the member says of itself (version, size, ...).
	Info(ctx context.Context, addr string, sec *api.ResourceSecret) (map[string]string, error)
	// Client is the command and environment that open the datastore's
	// own client against the member at addr, as a (nil: admin).
	Client(addr string, sec *api.ResourceSecret, a *api.Attachment, command string) ([]string, map[string]string)
}

// Rotator is a provider whose attachments can change credentials
// without a moment when the app cannot log in (found by type
// assertion): a second login is made that acts as the attachment's
// role, the app is released with it, and only then is the first
// retired. An attachment alternates between two logins.
type Rotator interface {
	// NextLogin is the login a's next credentials use.
	NextLogin(a *api.Attachment) string
	// AddLogin makes login (or sets it again) with password, acting as
	// a's role, beside its current login.
	AddLogin(ctx context.Context, addr string, sec *api.ResourceSecret, a *api.Attachment, login, password string) error
	// RetireLogin makes login refuse new sessions; sessions it has end
	// with the jobs that hold them.
	RetireLogin(ctx context.Context, addr string, sec *api.ResourceSecret, a *api.Attachment, login string) error
}

// Password returns a random password of 130 bits, in upper-case letters
// and digits: nothing that needs escaping in a URL, a shell or SQL.
func Password() string { return rand.Text() }

// Backuper is a provider whose databases can be dumped to one file and
// loaded back (found by type assertion). Both give the command and
// environment of a one-off job of the resource's system app, run by
// `pier backup-job`: Dump writes the dump to its stdout, Restore reads
// one on its stdin. Neither goes through a shell.
type Backuper interface {
	// Dump dumps database (a DNS label) of the member at addr.
	Dump(addr string, sec *api.ResourceSecret, database string) ([]string, map[string]string)
	// Restore loads a dump into a's database, its objects owned by a's
	// role, replacing the objects the dump holds.
	Restore(addr string, sec *api.ResourceSecret, a *api.Attachment) ([]string, map[string]string)
}
