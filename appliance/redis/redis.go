package redis

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/appliance"
)

const (
	// ProcessType is the system app's process type that runs the member.
	ProcessType = "redis"
	// DataPath is where the member's volume is mounted: Redis's dir.
	DataPath = "/data"
	// AdminUser is Redis's default user, the controller's.
	AdminUser = "default"
	// HashEnv carries the default user's password's SHA-256 to the member.
	HashEnv = "PIER_REDIS_ADMIN_SHA256"
	// ServerBin and CLIBin are Debian's (scripts/setup installs
	// redis-server and redis-tools on every host).
	ServerBin = "/usr/bin/redis-server"
	CLIBin    = "/usr/bin/redis-cli"
)

// Resources a member asks for and is held to; maxmemory (member.go)
// stays below the memory limit.
var memberResources = api.Resources{CPUMillis: 500, MemoryMB: 256, PIDs: 64, DiskMB: 64}

// Provider is the Redis appliance.
type Provider struct{}

func (Provider) Type() string                 { return "redis" }
func (Provider) SystemApp(name string) string { return "redis-" + name }
func (Provider) MemberProcess() string        { return ProcessType }
func (Provider) EnvVar() string               { return "REDIS_URL" }

func (Provider) NewSecret(name string) (api.ResourceSecret, error) {
	return api.ResourceSecret{Name: name, AdminPassword: appliance.Password(), Passwords: map[string]string{}}, nil
}

// passwordHash is what Redis's ACL keeps of a password ("#<sha256>").
func passwordHash(pw string) string {
	sum := sha256.Sum256([]byte(pw))
	return hex.EncodeToString(sum[:])
}

// Process runs `pier redis-member` with the resource's volume and one
// TCP port, checked for health and registered as redis.<system app>.
func (Provider) Process(res *api.Resource, sec *api.ResourceSecret) (string, api.ProcessType, error) {
	return ProcessType, api.ProcessType{
		Args: []string{api.PierBinary, MemberCommand},
		Env:  map[string]string{HashEnv: passwordHash(sec.AdminPassword)},
		Ports: []api.Port{{
			Proto:   "tcp",
			Service: api.ServiceName(res.App, ProcessType),
			// A large append-only file is read back before Redis listens.
			Health: &api.HealthCheck{Kind: "tcp", StartGrace: api.Duration(time.Minute)},
		}},
		Resources: memberResources,
		Restart:   api.RestartAlways,
		StopGrace: api.Duration(30 * time.Second),
		Volumes:   []api.VolumeSpec{{Name: "data", Path: DataPath, SizeMB: res.SizeMB}},
	}, nil
}

func admin(ctx context.Context, addr string, sec *api.ResourceSecret) (*conn, error) {
	return dial(ctx, addr, AdminUser, sec.AdminPassword)
}

// Ready authenticates as the default user and pings.
func (Provider) Ready(ctx context.Context, addr string, sec *api.ResourceSecret) error {
	c, err := admin(ctx, addr, sec)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.do(ctx, "PING")
	return err
}

// Bind makes a's ACL user (or resets it) with password: every key and
// channel, every command but the administrative and dangerous ones
// (CONFIG, ACL, SHUTDOWN, FLUSHALL, DEBUG…), so an app cannot lock the
// controller out or change where the data goes.
func (Provider) Bind(ctx context.Context, addr string, sec *api.ResourceSecret, a *api.Attachment, password string) error {
	if !api.ValidID(a.Role) {
		return errors.New("redis: user names must be DNS labels")
	}
	c, err := admin(ctx, addr, sec)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.do(ctx, "ACL", "SETUSER", a.Role, "reset", "on", "#"+passwordHash(password), "~*", "&*", "+@all", "-@admin", "-@dangerous")
	if err == nil {
		_, err = c.do(ctx, "ACL", "SAVE")
	}
	return err
}

// Unbind drops a's user, ending its connections; the keys stay.
func (Provider) Unbind(ctx context.Context, addr string, sec *api.ResourceSecret, a *api.Attachment) error {
	if !api.ValidID(a.Role) {
		return errors.New("redis: user names must be DNS labels")
	}
	c, err := admin(ctx, addr, sec)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.do(ctx, "ACL", "DELUSER", a.Role)
	if err == nil {
		_, err = c.do(ctx, "ACL", "SAVE")
	}
	return err
}

// URL is redis://USER:PASSWORD@ADDRESS/0.
func (Provider) URL(address string, a *api.Attachment, password string) string {
	u := url.URL{Scheme: "redis", User: url.UserPassword(a.LoginRole(), password), Host: address, Path: "/0"}
	return u.String()
}

// Info is what INFO says of the server.
func (Provider) Info(ctx context.Context, addr string, sec *api.ResourceSecret) (map[string]string, error) {
	c, err := admin(ctx, addr, sec)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	text, err := c.do(ctx, "INFO")
	if err != nil {
		return nil, err
	}
	all := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			all[k] = v
		}
	}
	out := map[string]string{}
	for k, name := range map[string]string{
		"redis_version": "version", "used_memory_human": "memory", "connected_clients": "connections",
		"uptime_in_seconds": "uptime_seconds", "aof_enabled": "aof", "rdb_last_save_time": "last_rdb_save",
	} {
		if v, ok := all[k]; ok {
			out[name] = v
		}
	}
	if db, ok := all["db0"]; ok {
		out["keys"] = db
	}
	return out, nil
}

// Client runs redis-cli against the member as a's user, or as the
// default user; the password goes in the environment (REDISCLI_AUTH),
// never argv. A command is split into words, each an argument: no shell.
func (Provider) Client(addr string, sec *api.ResourceSecret, a *api.Attachment, command string) ([]string, map[string]string) {
	host, port, _ := net.SplitHostPort(addr)
	user, pw := AdminUser, sec.AdminPassword
	if a != nil {
		user, pw = a.LoginRole(), sec.Passwords[a.App]
	}
	args := []string{CLIBin, "-h", host, "-p", port, "--user", user}
	args = append(args, strings.Fields(command)...)
	return args, map[string]string{"REDISCLI_AUTH": pw, "HOME": "/tmp", "REDISCLI_HISTFILE": "/dev/null"}
}
