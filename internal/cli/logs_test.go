package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/client"
)

func TestFormatLogLine(t *testing.T) {
	ts := time.Date(2026, 12, 2, 7, 0, 0, 123456789, time.FixedZone("CET", 3600))
	tests := []struct {
		l    api.AppLogLine
		want string
	}{
		{api.AppLogLine{Time: ts, Source: "app", Process: "web", Job: "hello-web-1", Text: "listening"},
			"2026-12-02T06:00:00.123456+00:00 app[web.hello-web-1]: listening"},
		{api.AppLogLine{Time: ts, Source: "pier", Process: "api", Text: "Deploy v3 finished"},
			"2026-12-02T06:00:00.123456+00:00 pier[api]: Deploy v3 finished"},
		{api.AppLogLine{Time: ts, Job: "tools-run-1", Text: "x"},
			"2026-12-02T06:00:00.123456+00:00 app[run.tools-run-1]: x"},
	}
	for _, tt := range tests {
		if got := FormatLogLine(&tt.l); got != tt.want {
			t.Errorf("FormatLogLine = %q, want %q", got, tt.want)
		}
	}
}

// TestFollowRidesOutAggregatorMoves: when the stream ends (the aggregator
// moved), pier logs -f asks again and prints only what it had not.
func TestFollowRidesOutAggregatorMoves(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		enc := json.NewEncoder(w)
		ts := time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC)
		line := func(seq int, text string) api.AppLogLine {
			return api.AppLogLine{Time: ts.Add(time.Duration(seq) * time.Millisecond), Source: "app", Process: "web", Job: "j1", Seq: uint64(seq), Text: text}
		}
		switch n {
		case 1:
			enc.Encode(line(1, "one"))
			enc.Encode(line(2, "two"))
			enc.Encode(api.AppLogLine{Time: ts.Add(2500 * time.Microsecond), Source: "pier", Process: "api", Text: "Deploy v2 started"})
		case 2: // a new aggregator: the hosts shipped it all again
			if r.URL.Query().Get("lines") != "1000" {
				t.Errorf("reconnect asked for %q lines", r.URL.Query().Get("lines"))
			}
			enc.Encode(line(1, "one"))
			enc.Encode(line(2, "two"))
			enc.Encode(line(3, "three"))
			enc.Encode(api.AppLogLine{Time: ts.Add(4 * time.Millisecond), Source: "pier", Process: "api", Text: "Deploy v2 finished"})
		default:
			<-r.Context().Done()
		}
	}))
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	c, err := client.NewController(srv.URL, "key", &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := &cobra.Command{}
	cmd.SetContext(ctx)
	var out syncBuffer
	done := make(chan error, 1)
	go func() { done <- streamLogs(cmd, c, "shop", client.LogsQuery{Lines: 10, Follow: true}, false, &out) }()
	deadline := time.Now().Add(10 * time.Second)
	for calls.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	var texts []string
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		texts = append(texts, l[strings.Index(l, ": ")+2:])
	}
	if got := strings.Join(texts, ","); got != "one,two,Deploy v2 started,three,Deploy v2 finished" {
		t.Fatalf("printed %s", got)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
