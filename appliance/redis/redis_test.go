package redis

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pierpaas/pier/api"
)

func TestProcessCarriesNoPassword(t *testing.T) {
	p := Provider{}
	res := &api.Resource{Name: "kv", App: p.SystemApp("kv"), SizeMB: 128}
	sec, _ := p.NewSecret("kv")
	name, pt, err := p.Process(res, &sec)
	if err != nil {
		t.Fatal(err)
	}
	if err := pt.Validate(name); err != nil {
		t.Fatalf("the member's process type is invalid: %v", err)
	}
	if pt.Ports[0].Service != "redis.redis-kv" || pt.Volumes[0].SizeMB != 128 {
		t.Fatalf("process %s: %+v", name, pt)
	}
	for k, v := range pt.Env {
		if strings.Contains(v, sec.AdminPassword) {
			t.Errorf("env %s carries the password", k)
		}
	}
	if _, err := MemberArgs(6379, pt.Env[HashEnv]); err != nil {
		t.Errorf("the member refuses its own hash: %v", err)
	}
	if _, err := MemberArgs(6379, "x\nuser evil on nopass"); err == nil {
		t.Error("a hash with a newline passes")
	}
}

func TestDefaultUserKeepsOthers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.acl")
	os.WriteFile(path, []byte("user default on #old ~* &* +@all\nuser app on #abc ~* &* +@all\n"), 0o600)
	if err := writeDefaultUser(path, strings.Repeat("a", 64)); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if got := string(b); got != "user default on #"+strings.Repeat("a", 64)+" ~* &* +@all\nuser app on #abc ~* &* +@all\n" {
		t.Fatalf("users.acl: %q", got)
	}
}

func TestURLAndClient(t *testing.T) {
	p := Provider{}
	a := &api.Attachment{App: "cache", Role: "cache"}
	if got := p.URL("127.0.0.1:20001", a, "PW"); got != "redis://cache:PW@127.0.0.1:20001/0" {
		t.Errorf("URL %s", got)
	}
	sec := &api.ResourceSecret{AdminPassword: "ADMIN", Passwords: map[string]string{"cache": "PW"}}
	args, env := p.Client("10.0.0.1:6379", sec, a, "GET key")
	if strings.Contains(strings.Join(args, " "), "PW") || env["REDISCLI_AUTH"] != "PW" || args[len(args)-1] != "key" {
		t.Errorf("client as cache: %v %v", args, env)
	}
	_, env = p.Client("10.0.0.1:6379", sec, nil, "")
	if env["REDISCLI_AUTH"] != "ADMIN" {
		t.Errorf("client as default: %v", env)
	}
}
