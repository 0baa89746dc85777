package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/miekg/dns"

	"github.com/pierpaas/pier/discovery"
	"github.com/pierpaas/pier/internal/join"
	"github.com/pierpaas/pier/internal/pki"
	"github.com/pierpaas/pier/internal/testutil"
	"github.com/pierpaas/pier/store"
	"github.com/pierpaas/pier/store/storetest"
)

func testConfig(t *testing.T, name string) Config {
	return Config{
		DataDir:    filepath.Join(t.TempDir(), name),
		Name:       name,
		ClientPort: testutil.FreePort(t), PeerPort: testutil.FreePort(t), APIPort: testutil.FreePort(t), DNSPort: testutil.FreePort(t),
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
}

func start(t *testing.T, cfg Config) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start %s: %v", cfg.Name, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestRestartKeepsData(t *testing.T) {
	cfg := testConfig(t, "solo")
	s := start(t, cfg)
	if _, err := s.Client.Put(ctxT(t), "/pier/test", "kept"); err != nil {
		t.Fatal(err)
	}
	tok := s.HostToken
	s.Close()

	s2 := start(t, cfg)
	resp, err := s2.Client.Get(ctxT(t), "/pier/test")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "kept" {
		t.Fatalf("after restart: %v %v", resp, err)
	}
	if s2.HostToken != tok {
		t.Fatal("join token changed across a restart")
	}
}

// TestPortsRequireClusterCertificate checks every port the server opens
// for etcd refuses clients without a certificate of the cluster's CA.
func TestPortsRequireClusterCertificate(t *testing.T) {
	s := start(t, testConfig(t, "locked"))
	foreignCA, _ := pki.NewCA("foreign")
	dir := t.TempDir()
	if err := foreignCA.Issue(dir, pki.Request{CommonName: "intruder", Role: "client"}); err != nil {
		t.Fatal(err)
	}
	foreign, _ := pki.LoadCredentials(dir)

	for _, port := range []int{s.cfg.ClientPort, s.cfg.PeerPort} {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		// No certificate at all, even trusting the server blindly.
		if err := tlsRoundTrip(addr, &tls.Config{InsecureSkipVerify: true}); err == nil {
			t.Errorf("%s accepted a client without a certificate", addr)
		}
		// A certificate from another CA.
		cfg := foreign.ClientConfig()
		cfg.InsecureSkipVerify = true
		if err := tlsRoundTrip(addr, cfg); err == nil {
			t.Errorf("%s accepted a foreign client certificate", addr)
		}
	}
	// And through etcd's own client, with a foreign certificate.
	cli, err := store.Dial([]string{s.cfg.clientURL()}, foreign)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "/pier/intrusion", "x"); err == nil {
		t.Fatal("etcd accepted a write with a foreign certificate")
	}
	resp, err := s.Client.Get(ctxT(t), "/pier/intrusion")
	if err != nil || len(resp.Kvs) != 0 {
		t.Fatalf("intrusion key present: %v %v", resp, err)
	}
}

// tlsRoundTrip completes a handshake and an HTTP request, which is what an
// etcd request needs; TLS 1.3 servers report a missing client certificate
// only after the handshake, on the first read.
func tlsRoundTrip(addr string, cfg *tls.Config) error {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 3 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := fmt.Fprintf(conn, "GET /version HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return err
	}
	buf := make([]byte, 64)
	_, err = conn.Read(buf)
	return err
}

func TestThreeServersJoinAndSurviveLoss(t *testing.T) {
	first := start(t, testConfig(t, "s1"))
	token := first.ServerToken.String()
	var servers = []*Server{first}
	for _, name := range []string{"s2", "s3"} {
		cfg := testConfig(t, name)
		cfg.Join, cfg.Token = []string{first.Addr()}, token
		servers = append(servers, start(t, cfg))
	}
	list, err := first.Client.MemberList(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Members) != 3 {
		t.Fatalf("%d members, want 3", len(list.Members))
	}
	for _, m := range list.Members {
		if m.IsLearner {
			t.Fatalf("member %s is still a learner", m.Name)
		}
	}
	for _, s := range servers[1:] {
		if s.HostToken != first.HostToken || s.ServerToken != first.ServerToken {
			t.Fatalf("%s hands out different tokens", s.Name())
		}
	}
	// Kill the raft leader: the others keep accepting writes.
	leader := -1
	for i, s := range servers {
		if s.Member().IsLeader() {
			leader = i
		}
	}
	if leader < 0 {
		t.Fatal("no leader")
	}
	servers[leader].Close()
	survivor := servers[(leader+1)%3]
	if _, err := survivor.Client.Put(ctxT(t), "/pier/after-loss", "ok"); err != nil {
		t.Fatalf("write after losing the leader: %v", err)
	}
}

func TestJoinRefusesBadTokens(t *testing.T) {
	first := start(t, testConfig(t, "s1"))
	foreignCA, _ := pki.NewCA("foreign")
	cases := map[string]struct {
		token string
		want  error
	}{
		"wrong secret": {pki.Token{CAFingerprint: first.CA.Fingerprint(), Secret: "00000000000000000000000000000000"}.String(), join.ErrUnauthorized},
		"host token":   {first.HostToken.String(), join.ErrUnauthorized},
		"foreign CA":   {pki.Token{CAFingerprint: foreignCA.Fingerprint(), Secret: first.ServerToken.Secret}.String(), pki.ErrBadToken},
		"malformed":    {"PIER1-nonsense", pki.ErrBadToken},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t, "s2")
			cfg.Join, cfg.Token = []string{first.Addr()}, tc.token
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s, err := Start(ctx, cfg)
			if err == nil {
				s.Close()
				t.Fatal("joined with a bad token")
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if pki.HasCredentials(cfg.pkiDir()) {
				t.Fatal("credentials written despite the refusal")
			}
		})
	}
	list, err := first.Client.MemberList(ctxT(t))
	if err != nil || len(list.Members) != 1 {
		t.Fatalf("membership changed: %v %v", list, err)
	}
}

func TestHostJoinGetsClientCertificate(t *testing.T) {
	first := start(t, testConfig(t, "s1"))
	dir := t.TempDir()
	resp, err := join.Join(ctxT(t), []string{first.Addr()}, first.HostToken,
		join.Request{Role: pki.RoleHost, Name: "host-1"}, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.CAKey) != 0 || len(resp.Secrets) != 0 {
		t.Fatal("a host received the CA key or join secrets")
	}
	if _, err := os.Stat(filepath.Join(dir, pki.CAKeyFile)); err == nil {
		t.Fatal("CA key written on a host")
	}
	creds, err := pki.LoadCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := store.Dial(resp.EtcdEndpoints, creds)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.Put(ctxT(t), "/pier/hosts/host-1", "{}"); err != nil {
		t.Fatalf("host cannot use etcd: %v", err)
	}
	// Invalid names are refused before anything is signed.
	_, err = join.Join(ctxT(t), []string{first.Addr()}, first.HostToken,
		join.Request{Role: pki.RoleHost, Name: "Bad Name; rm -rf /"}, t.TempDir())
	if !errors.Is(err, join.ErrInvalid) {
		t.Fatalf("bad name: err = %v", err)
	}
}

func TestExternalEtcd(t *testing.T) {
	ext := storetest.NewCluster(t, 1)
	cfg := testConfig(t, "ext")
	// The external etcd trusts the cluster CA: give the server that CA.
	if err := ext.CA.Save(cfg.pkiDir()); err != nil {
		t.Fatal(err)
	}
	cfg.EtcdEndpoints = ext.Endpoints()
	s := start(t, cfg)
	if s.Member() != nil {
		t.Fatal("embedded member started despite an external etcd")
	}
	if _, err := s.Client.Put(ctxT(t), "/pier/external", "yes"); err != nil {
		t.Fatal(err)
	}
	resp, err := ext.Client().Get(ctxT(t), "/pier/external")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("write did not reach the external etcd: %v %v", resp, err)
	}
}

var _ = clientv3.WithPrefix

func TestDNSFollowsRegistrations(t *testing.T) {
	s := start(t, testConfig(t, "dns"))
	reg := discovery.New(s.Client)
	r, err := reg.Register(ctxT(t), "web", discovery.Instance{Addr: "127.0.0.7:8080", Proto: "http"}, discovery.WithTTL(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.cfg.DNSPort))
	deadline := time.Now().Add(10 * time.Second)
	for {
		m := new(dns.Msg)
		m.SetQuestion("web."+DNSDomain, dns.TypeA)
		in, err := dns.Exchange(m, addr)
		if err == nil && len(in.Answer) == 1 && in.Answer[0].(*dns.A).A.String() == "127.0.0.7" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no A record for web: %v %v", in, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
