package logs

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/internal/pki"
)

// rfc5424 is the grammar of RFC 5424 section 6 for what drains send:
// PRI VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP
// STRUCTURED-DATA [SP MSG], each header field PRINTUSASCII within its
// length limit, the timestamp RFC 3339 with at most 6 fraction digits.
var rfc5424 = regexp.MustCompile(`^<([0-9]{1,3})>1 ` +
	`([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:Z|[+-][0-9]{2}:[0-9]{2})) ` +
	`([!-~]{1,255}) ([!-~]{1,48}) ([!-~]{1,128}) ([!-~]{1,32}) (-|(?:\[[^\]]*\])+)(?: (.*))?$`)

// readFrame reads one octet-counted frame (RFC 6587 3.4.1).
func readFrame(br *bufio.Reader) (string, error) {
	n, err := br.ReadString(' ')
	if err != nil {
		return "", err
	}
	size, err := strconv.Atoi(strings.TrimSuffix(n, " "))
	if err != nil || size <= 0 || strings.HasPrefix(n, "0") {
		return "", fmt.Errorf("bad frame length %q", n)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(br, b); err != nil {
		return "", err
	}
	return string(b), nil
}

// listener accepts connections and sends every frame received on msgs.
func listener(t *testing.T, ln net.Listener) <-chan string {
	msgs := make(chan string, 1000)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				br := bufio.NewReader(conn)
				for {
					m, err := readFrame(br)
					if err != nil {
						if err != io.EOF {
							msgs <- "ERROR " + err.Error()
						}
						return
					}
					msgs <- m
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return msgs
}

func receive(t *testing.T, msgs <-chan string) string {
	t.Helper()
	select {
	case m := <-msgs:
		if strings.HasPrefix(m, "ERROR ") {
			t.Fatal(m)
		}
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no syslog message received")
	}
	return ""
}

func TestSyslogMessageFormat(t *testing.T) {
	ts := time.Date(2026, 12, 2, 7, 0, 0, 123456789, time.UTC)
	tests := []struct {
		line api.AppLogLine
		want string
	}{
		{api.AppLogLine{Time: ts, App: "hello", Source: "app", Process: "web", Job: "hello-web-1", Stream: "stdout", Text: "GET / 200"},
			"<190>1 2026-12-02T07:00:00.123456Z hello app web.hello-web-1 - - GET / 200"},
		{api.AppLogLine{Time: ts, App: "hello", Source: "app", Process: "worker", Job: "w1", Stream: "stderr", Text: "oops"},
			"<187>1 2026-12-02T07:00:00.123456Z hello app worker.w1 - - oops"},
		{api.AppLogLine{Time: ts.In(time.FixedZone("x", 3600)), App: "hello", Source: "pier", Process: "api", Text: "Deploy v2 finished"},
			"<189>1 2026-12-02T07:00:00.123456Z hello pier api - - Deploy v2 finished"},
		// Header fields never carry spaces or non-ASCII; the text may.
		{api.AppLogLine{Time: ts, App: "hello", Source: "app", Process: "wé b", Job: "j", Text: "ünïcode text "},
			"<190>1 2026-12-02T07:00:00.123456Z hello app w__b.j - - ünïcode text "},
		{api.AppLogLine{Time: ts, App: "hello", Source: "app", Process: "web", Job: "j", Text: ""},
			"<190>1 2026-12-02T07:00:00.123456Z hello app web.j - - "},
	}
	for _, tt := range tests {
		got := string(SyslogMessage(&tt.line))
		if got != tt.want {
			t.Errorf("SyslogMessage = %q\n want %q", got, tt.want)
		}
		if !rfc5424.MatchString(got) {
			t.Errorf("%q is not RFC 5424", got)
		}
	}
	if f := string(frame([]byte("<190>1 - - - - - - héllo"))); f != "25 <190>1 - - - - - - héllo" {
		t.Errorf("frame = %q", f)
	}
}

func TestDrainTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	msgs := listener(t, ln)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := NewDrains(DrainsConfig{})
	d.Set(ctx, []api.Drain{{ID: "d1", App: "hello", URL: "syslog://" + ln.Addr().String()}})

	ts := time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC)
	for i := range 100 {
		d.Forward(&api.AppLogLine{Time: ts, App: "hello", Source: "app", Process: "web", Job: "hello-web-x", Stream: "stdout", Text: fmt.Sprintf("line %d", i)})
		d.Forward(&api.AppLogLine{Time: ts, App: "other", Source: "app", Process: "web", Text: "not for this drain"})
	}
	for i := range 100 {
		m := receive(t, msgs)
		want := fmt.Sprintf("<190>1 2026-12-02T07:00:00.000000Z hello app web.hello-web-x - - line %d", i)
		if m != want {
			t.Fatalf("message %d = %q, want %q", i, m, want)
		}
		sm := rfc5424.FindStringSubmatch(m)
		if sm == nil {
			t.Fatalf("%q is not RFC 5424", m)
		}
		if pri, _ := strconv.Atoi(sm[1]); pri > 191 {
			t.Fatalf("PRI %d out of range", pri)
		}
		if _, err := time.Parse(time.RFC3339Nano, sm[2]); err != nil {
			t.Fatalf("timestamp %q: %v", sm[2], err)
		}
	}
	select {
	case m := <-msgs:
		t.Fatalf("extra message %q", m)
	case <-time.After(100 * time.Millisecond):
	}
	// Removed: no more lines.
	d.Set(ctx, nil)
	d.Forward(&api.AppLogLine{App: "hello", Text: "after removal"})
	select {
	case m := <-msgs:
		t.Fatalf("message after removal: %q", m)
	case <-time.After(200 * time.Millisecond):
	}
}

func TestDrainDownDropsAndSaysSo(t *testing.T) {
	// A port nothing listens on (yet).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := NewDrains(DrainsConfig{QueueBytes: 2000})
	d.Set(ctx, []api.Drain{{ID: "d1", App: "hello", URL: "syslog://" + addr}})
	for i := range 100 { // ~80 bytes each: most do not fit
		d.Forward(&api.AppLogLine{App: "hello", Source: "app", Process: "web", Job: "j", Text: fmt.Sprintf("line %d", i)})
	}
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	msgs := listener(t, ln)
	first := receive(t, msgs)
	if !rfc5424.MatchString(first) || !strings.Contains(first, " pier logs - - Error L10") || !strings.Contains(first, "lines dropped") {
		t.Fatalf("first message %q, want a drop notice", first)
	}
	var n int
	fmt.Sscanf(first[strings.Index(first, "): ")+3:], "%d", &n)
	kept := 0
	for kept+n < 100 {
		m := receive(t, msgs)
		if !strings.HasSuffix(m, fmt.Sprintf("line %d", kept)) {
			t.Fatalf("message %q, want line %d (dropped %d)", m, kept, n)
		}
		kept++
	}
	if n == 0 || kept == 0 {
		t.Fatalf("kept %d, dropped %d", kept, n)
	}
}

func TestDrainTLS(t *testing.T) {
	ca, err := pki.NewCA("test")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "srv")
	if err := ca.Issue(dir, pki.Request{CommonName: "syslog", Role: pki.RoleServer, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}); err != nil {
		t.Fatal(err)
	}
	creds, err := pki.LoadCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{creds.Cert}})
	if err != nil {
		t.Fatal(err)
	}
	msgs := listener(t, ln)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := NewDrains(DrainsConfig{TLS: &tls.Config{RootCAs: creds.Pool}})
	d.Set(ctx, []api.Drain{{ID: "d1", App: "hello", URL: "syslog+tls://" + ln.Addr().String()}})
	d.Forward(&api.AppLogLine{App: "hello", Source: "app", Process: "web", Job: "j", Text: "secret line"})
	if m := receive(t, msgs); !rfc5424.MatchString(m) || !strings.HasSuffix(m, " hello app web.j - - secret line") {
		t.Fatalf("message %q", m)
	}
}

func TestParseDrainURL(t *testing.T) {
	for _, ok := range []string{"syslog://logs.example.com:514", "syslog+tls://10.0.0.1:6514", "syslog://[::1]:514"} {
		if _, _, err := api.ParseDrainURL(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "http://x:1", "syslog://x", "syslog://:514", "syslog://x:0", "syslog://x:99999",
		"syslog://x:514/path", "syslog://u:p@x:514", "syslog://x:514?q=1", "udp://x:514"} {
		if _, _, err := api.ParseDrainURL(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
