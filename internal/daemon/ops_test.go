package daemon

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

type check struct {
	name string
	fn   func(context.Context) error
}

func pass(context.Context) error { return nil }

func serve(t *testing.T, h http.Handler, method, target string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec
}

func TestLivez(t *testing.T) {
	var h Health
	// A failing readiness check must not affect liveness.
	h.AddReadyCheck("db", func(context.Context) error { return errors.New("down") })
	handler := h.Handler(nil)

	tests := []struct {
		method   string
		wantCode int
		wantBody string
	}{
		{http.MethodGet, http.StatusOK, "ok\n"},
		{http.MethodHead, http.StatusOK, ""},
		{http.MethodPost, http.StatusMethodNotAllowed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			rec := serve(t, handler, tt.method, "/livez")
			if rec.Code != tt.wantCode {
				t.Fatalf("status = %d, want %d", rec.Code, tt.wantCode)
			}
			if tt.wantBody != "" && rec.Body.String() != tt.wantBody {
				t.Errorf("body = %q, want %q", rec.Body.String(), tt.wantBody)
			}
		})
	}
}

func TestReadyz(t *testing.T) {
	// Closed at the end so the check that ignores its context can exit.
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })

	const timeout = 50 * time.Millisecond
	tests := []struct {
		name     string
		checks   []check
		target   string
		wantCode int
		want     []string // substrings the body must contain
		notWant  []string // substrings it must not contain
	}{
		{
			name:     "no checks",
			target:   "/readyz",
			wantCode: http.StatusOK,
			want:     []string{"ok\n"},
		},
		{
			name:     "all pass",
			checks:   []check{{"store", pass}, {"dns", pass}},
			target:   "/readyz",
			wantCode: http.StatusOK,
			want:     []string{"ok\n"},
			notWant:  []string{"[+]"},
		},
		{
			name:     "all pass verbose",
			checks:   []check{{"store", pass}, {"dns", pass}},
			target:   "/readyz?verbose",
			wantCode: http.StatusOK,
			want:     []string{"[+]store ok\n[+]dns ok\nreadyz check passed\n"},
		},
		{
			name: "one fails",
			checks: []check{
				{"store", pass},
				{"dns", func(context.Context) error { return errors.New("port 53 in use") }},
			},
			target:   "/readyz",
			wantCode: http.StatusServiceUnavailable,
			want:     []string{"[-]dns failed: port 53 in use\n", "readyz check failed\n"},
			notWant:  []string{"store"},
		},
		{
			name: "one fails verbose",
			checks: []check{
				{"store", pass},
				{"dns", func(context.Context) error { return errors.New("port 53 in use") }},
			},
			target:   "/readyz?verbose",
			wantCode: http.StatusServiceUnavailable,
			want:     []string{"[+]store ok\n", "[-]dns failed: port 53 in use\n"},
		},
		{
			name: "timeout honouring context",
			checks: []check{{"store", func(ctx context.Context) error {
				<-ctx.Done()
				return ctx.Err()
			}}},
			target:   "/readyz",
			wantCode: http.StatusServiceUnavailable,
			// Whether the check's own ctx.Err or the handler's timeout wins
			// the race, the reason names the deadline.
			want: []string{"[-]store failed: ", "context deadline exceeded\n"},
		},
		{
			name: "timeout ignoring context",
			checks: []check{
				{"store", pass},
				{"stuck", func(context.Context) error { <-release; return nil }},
			},
			target:   "/readyz?verbose",
			wantCode: http.StatusServiceUnavailable,
			want:     []string{"[+]store ok\n", "[-]stuck failed: daemon: readiness check timed out after 50ms: context deadline exceeded\n"},
		},
		{
			name:     "panic",
			checks:   []check{{"buggy", func(context.Context) error { panic("oops") }}},
			target:   "/readyz",
			wantCode: http.StatusServiceUnavailable,
			want:     []string{"[-]buggy failed: panic: oops"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &Health{Timeout: timeout}
			for _, c := range tt.checks {
				h.AddReadyCheck(c.name, c.fn)
			}
			start := time.Now()
			rec := serve(t, h.Handler(nil), http.MethodGet, tt.target)
			if elapsed := time.Since(start); elapsed > 20*timeout {
				t.Errorf("readyz took %s, want about %s at most", elapsed, timeout)
			}
			body := rec.Body.String()
			if rec.Code != tt.wantCode {
				t.Errorf("status = %d, want %d; body:\n%s", rec.Code, tt.wantCode, body)
			}
			for _, s := range tt.want {
				if !strings.Contains(body, s) {
					t.Errorf("body lacks %q; body:\n%s", s, body)
				}
			}
			for _, s := range tt.notWant {
				if strings.Contains(body, s) {
					t.Errorf("body contains %q; body:\n%s", s, body)
				}
			}
			if got := rec.Header().Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", got)
			}
		})
	}
}

func TestAddReadyCheckReplaces(t *testing.T) {
	var h Health
	h.AddReadyCheck("store", func(context.Context) error { return errors.New("old") })
	h.AddReadyCheck("store", pass)
	if err := h.Ready(context.Background()); err != nil {
		t.Fatalf("Ready() = %v, want nil after replacing the failing check", err)
	}
	if n := len(h.Check(context.Background())); n != 1 {
		t.Fatalf("got %d checks, want 1", n)
	}
}

func TestReadyJoinsFailures(t *testing.T) {
	var h Health
	sentinel := errors.New("down")
	h.AddReadyCheck("a", func(context.Context) error { return sentinel })
	h.AddReadyCheck("b", pass)
	err := h.Ready(context.Background())
	if !errors.Is(err, sentinel) {
		t.Fatalf("Ready() = %v, want it to wrap %v", err, sentinel)
	}
	if !strings.Contains(err.Error(), "a: down") {
		t.Errorf("Ready() = %q, want the check name in it", err)
	}
}

func TestMetrics(t *testing.T) {
	var h Health
	reg := NewRegistry()
	// Building the handler twice on one registry must not panic on
	// duplicate registration of promhttp's own metrics.
	h.Handler(reg)
	rec := serve(t, h.Handler(reg), http.MethodGet, "/metrics")
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d, want 200", rec.Code)
	}
	body := rec.Body.String()
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total", "promhttp_metric_handler_requests_total"} {
		if !strings.Contains(body, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

func TestReadyTimeoutIsErrCheckTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	h := &Health{Timeout: 10 * time.Millisecond}
	h.AddReadyCheck("stuck", func(context.Context) error { <-release; return nil })
	if err := h.Ready(context.Background()); !errors.Is(err, ErrCheckTimeout) {
		t.Fatalf("Ready() = %v, want ErrCheckTimeout", err)
	}
}
