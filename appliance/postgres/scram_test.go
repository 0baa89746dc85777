package postgres

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/pierpaas/pier/api"
)

// TestVerifierRFC7677 checks a verifier against the exchange of RFC 7677
// (section 3): a server holding it accepts the RFC's client proof and
// answers with the RFC's server signature.
func TestVerifierRFC7677(t *testing.T) {
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	v, err := verifier("pencil", salt)
	if err != nil {
		t.Fatal(err)
	}
	if !verifierRE.MatchString(v) {
		t.Fatalf("verifier %q does not match its own shape", v)
	}
	// SCRAM-SHA-256$4096:SALT$STOREDKEY:SERVERKEY
	_, keys, _ := strings.Cut(strings.TrimPrefix(v, "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ=="), "$")
	stored64, server64, _ := strings.Cut(keys, ":")
	stored, _ := base64.StdEncoding.DecodeString(stored64)
	serverKey, _ := base64.StdEncoding.DecodeString(server64)
	nonce := "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
	authMessage := "n=user,r=rOprNGfwEbeRWgbNEkqO,r=" + nonce + ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=" + nonce
	mac := func(key []byte) []byte {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(authMessage))
		return m.Sum(nil)
	}

	if got := base64.StdEncoding.EncodeToString(mac(serverKey)); got != "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=" {
		t.Errorf("server signature %s", got)
	}
	proof, _ := base64.StdEncoding.DecodeString("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
	sig := mac(stored)
	clientKey := make([]byte, len(proof))
	for i := range proof {
		clientKey[i] = proof[i] ^ sig[i]
	}
	if h := sha256.Sum256(clientKey); !hmac.Equal(h[:], stored) {
		t.Errorf("the RFC's client proof does not match the stored key")
	}
}

func TestVerifierSaltsDiffer(t *testing.T) {
	a, _ := Verifier("x")
	b, _ := Verifier("x")
	if a == b || !verifierRE.MatchString(a) {
		t.Fatalf("verifiers %q and %q", a, b)
	}
	for _, bad := range []string{"", "md5abc", "SCRAM-SHA-256$4096:a'b$c:d", "SCRAM-SHA-256$4096:ab$c:d'; DROP ROLE x; --"} {
		if verifierRE.MatchString(bad) {
			t.Errorf("%q passes as a verifier", bad)
		}
	}
}

func TestProcess(t *testing.T) {
	p := Provider{}
	res := &api.Resource{Name: "db", App: p.SystemApp("db"), SizeMB: 256}
	sec, _ := p.NewSecret("db")
	name, pt, err := p.Process(res, &sec)
	if err != nil {
		t.Fatal(err)
	}
	if err := pt.Validate(name); err != nil {
		t.Fatalf("the member's process type is invalid: %v", err)
	}
	if name != ProcessType || pt.Ports[0].Service != "postgres.pg-db" || pt.Volumes[0].SizeMB != 256 || pt.Resources.MemoryMB == 0 {
		t.Fatalf("process %s: %+v", name, pt)
	}
	for k, v := range pt.Env {
		if strings.Contains(v, sec.AdminPassword) {
			t.Errorf("env %s carries the admin password", k)
		}
	}
	if !verifierRE.MatchString(pt.Env[VerifierEnv]) {
		t.Errorf("env %s = %q", VerifierEnv, pt.Env[VerifierEnv])
	}
	if strings.Contains(strings.Join(pt.Args, " "), sec.AdminPassword) {
		t.Error("args carry the admin password")
	}
}

func TestURLAndClient(t *testing.T) {
	p := Provider{}
	a := &api.Attachment{App: "notes", Role: "notes", Database: "notes"}
	if got := p.URL("127.0.0.1:20000", a, "PW"); got != "postgres://notes:PW@127.0.0.1:20000/notes" {
		t.Errorf("URL %s", got)
	}
	sec := &api.ResourceSecret{AdminPassword: "ADMIN", Passwords: map[string]string{"notes": "PW"}}
	args, env := p.Client("10.0.0.1:5432", sec, a, "SELECT 1")
	if strings.Contains(strings.Join(args, " "), "PW") || env["PGPASSWORD"] != "PW" || env["PGUSER"] != "notes" || env["PGHOST"] != "10.0.0.1" {
		t.Errorf("client as notes: %v %v", args, env)
	}
	args, env = p.Client("10.0.0.1:5432", sec, nil, "")
	if len(args) != 1 || env["PGUSER"] != AdminUser || env["PGPASSWORD"] != "ADMIN" {
		t.Errorf("client as admin: %v %v", args, env)
	}
}
