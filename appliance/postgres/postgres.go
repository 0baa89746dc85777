package postgres

import (
	"net"
	"net/url"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/appliance"
)

// BinDir is where Debian's PostgreSQL 15 puts its programs (scripts/setup
// installs postgresql-15 on every host). Jobs see the host's /usr.
const BinDir = "/usr/lib/postgresql/15/bin"

const (
	// ProcessType is the system app's process type that runs the member.
	ProcessType = "postgres"
	// DataPath is where the member's volume is mounted; the data
	// directory is a directory in it (the volume's root holds
	// lost+found, and initdb wants an empty directory).
	DataPath = "/data"
	// AdminUser is the superuser initdb makes.
	AdminUser = "postgres"
	// VerifierEnv carries the superuser's SCRAM verifier to the member.
	VerifierEnv = "PIER_PG_ADMIN_VERIFIER"
)

// Resources a member asks for and is held to.
var memberResources = api.Resources{CPUMillis: 1000, MemoryMB: 512, PIDs: 256, DiskMB: 256}

// Provider is the PostgreSQL appliance.
type Provider struct{}

func (Provider) Type() string                 { return "postgres" }
func (Provider) SystemApp(name string) string { return "pg-" + name }
func (Provider) MemberProcess() string        { return ProcessType }
func (Provider) EnvVar() string               { return "DATABASE_URL" }

func (Provider) NewSecret(name string) (api.ResourceSecret, error) {
	return api.ResourceSecret{Name: name, AdminPassword: appliance.Password(), Passwords: map[string]string{}}, nil
}

// Process runs `pier postgres-member` (see Member) with the resource's
// volume, one TCP port checked for health and registered in discovery
// as postgres.<system app>, and a long stop grace: a fast shutdown
// writes a checkpoint.
func (p Provider) Process(res *api.Resource, sec *api.ResourceSecret) (string, api.ProcessType, error) {
	v, err := Verifier(sec.AdminPassword)
	if err != nil {
		return "", api.ProcessType{}, err
	}
	return ProcessType, api.ProcessType{
		Args: []string{api.PierBinary, MemberCommand},
		Env:  map[string]string{VerifierEnv: v},
		Ports: []api.Port{{
			Proto:   "tcp",
			Service: api.ServiceName(res.App, ProcessType),
			// A first start runs initdb before postgres listens.
			Health: &api.HealthCheck{Kind: "tcp", StartGrace: api.Duration(time.Minute)},
		}},
		Resources: memberResources,
		Restart:   api.RestartAlways,
		StopGrace: api.Duration(30 * time.Second),
		Volumes:   []api.VolumeSpec{{Name: "data", Path: DataPath, SizeMB: res.SizeMB}},
	}, nil
}

// URL is postgres://LOGIN:PASSWORD@ADDRESS/DATABASE.
func (Provider) URL(address string, a *api.Attachment, password string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(a.LoginRole(), password), Host: address, Path: "/" + a.Database}
	return u.String()
}

// Client runs psql against the member as a's role on its database, or
// as the superuser; the password goes in the environment, never argv.
func (Provider) Client(addr string, sec *api.ResourceSecret, a *api.Attachment, command string) ([]string, map[string]string) {
	host, port, _ := net.SplitHostPort(addr)
	env := map[string]string{
		"PGHOST": host, "PGPORT": port, "PGUSER": AdminUser, "PGPASSWORD": sec.AdminPassword, "PGDATABASE": "postgres",
		// No pager (less may be missing), history in the job's /tmp.
		"PSQL_PAGER": "cat", "HOME": "/tmp", "PSQL_HISTORY": "/tmp/.psql_history",
	}
	if a != nil {
		env["PGUSER"], env["PGPASSWORD"], env["PGDATABASE"] = a.LoginRole(), sec.Passwords[a.App], a.Database
	}
	args := []string{BinDir + "/psql"}
	if command != "" {
		args = append(args, "-v", "ON_ERROR_STOP=1", "-c", command)
	}
	return args, env
}
