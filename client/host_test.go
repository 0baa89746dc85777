package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/client"
)

// fakeAgent serves canned answers in the shape of the host agent's API.
func fakeAgent(t *testing.T, h http.Handler) *client.HostClient {
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	cfg := srv.Client().Transport.(*http.Transport).TLSClientConfig
	hc := client.NewHostClientTLS(srv.Listener.Addr().String(), cfg)
	t.Cleanup(hc.Close)
	return hc
}

func TestHostClientRequestsAndErrors(t *testing.T) {
	var got []string
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Method+" "+r.URL.RequestURI())
		switch {
		case r.URL.Path == "/v1/jobs" && r.Method == "POST":
			var req api.RunJobRequest
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Args[0] != "echo" || req.MemoryMB != 32 {
				t.Errorf("run request %+v %v", req, err)
			}
			w.WriteHeader(http.StatusCreated)
			json.NewEncoder(w).Encode(api.Job{ID: "run-0123456789", Args: req.Args})
		case r.URL.Path == "/v1/jobs":
			json.NewEncoder(w).Encode([]api.HostJob{{Job: api.Job{ID: "a"}}, {Job: api.Job{ID: "b"}}})
		case r.URL.Path == "/v1/status":
			json.NewEncoder(w).Encode(api.HostStatus{ID: "h1", Jobs: 2})
		case r.URL.Path == "/v1/jobs/gone":
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(api.Error{Code: api.ErrCodeNotFound, Message: "no job gone"})
		case r.URL.Path == "/v1/jobs/proxied":
			http.Error(w, "bad gateway", http.StatusBadGateway)
		case strings.HasSuffix(r.URL.Path, "/signal"):
			w.WriteHeader(http.StatusNoContent)
		case strings.HasSuffix(r.URL.Path, "/stop"):
			w.WriteHeader(http.StatusAccepted)
			json.NewEncoder(w).Encode(api.HostJob{Job: api.Job{ID: "a"}, Supervised: true})
		}
	})
	hc := fakeAgent(t, mux)
	ctx := context.Background()

	jobs, err := hc.Jobs(ctx)
	if err != nil || len(jobs) != 2 || jobs[1].Job.ID != "b" {
		t.Fatalf("jobs %+v %v", jobs, err)
	}
	st, err := hc.Status(ctx)
	if err != nil || st.ID != "h1" || st.Jobs != 2 {
		t.Fatalf("status %+v %v", st, err)
	}
	job, err := hc.Run(ctx, api.RunJobRequest{Args: []string{"echo", "hi"}, MemoryMB: 32})
	if err != nil || job.ID != "run-0123456789" {
		t.Fatalf("run %+v %v", job, err)
	}
	if err := hc.Signal(ctx, "a", syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if hj, err := hc.Stop(ctx, "a"); err != nil || !hj.Supervised {
		t.Fatalf("stop %+v %v", hj, err)
	}

	_, err = hc.Job(ctx, "gone")
	var apiErr *api.Error
	if !errors.As(err, &apiErr) || apiErr.Status != 404 || apiErr.Message != "no job gone" ||
		!errors.Is(err, &api.Error{Code: api.ErrCodeNotFound}) {
		t.Fatalf("not found: %#v", err)
	}
	_, err = hc.Job(ctx, "proxied")
	if !errors.As(err, &apiErr) || apiErr.Status != 502 || apiErr.Code != api.ErrCodeUnavailable || !strings.Contains(apiErr.Message, "bad gateway") {
		t.Fatalf("non-JSON error: %#v", err)
	}
	// Ids are escaped, so none reaches another path.
	hc.Job(ctx, "../status")
	want := []string{"GET /v1/jobs", "GET /v1/status", "POST /v1/jobs", "POST /v1/jobs/a/signal?signal=1",
		"POST /v1/jobs/a/stop", "GET /v1/jobs/gone", "GET /v1/jobs/proxied", "GET /v1/jobs/..%2Fstatus"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestHostClientLogs(t *testing.T) {
	var queries []string
	hc := fakeAgent(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		queries = append(queries, r.URL.RawQuery)
		w.Header().Set("Content-Type", "application/x-ndjson")
		for i := 1; i <= 3; i++ {
			json.NewEncoder(w).Encode(api.LogLine{Seq: uint64(i), Stream: "stdout", Text: fmt.Sprint("line ", i), Time: time.Now()})
			w.(http.Flusher).Flush()
		}
	}))
	ctx := context.Background()
	var got []string
	err := hc.Logs(ctx, "j", true, 10, func(l api.LogLine) error {
		got = append(got, l.Text)
		return nil
	})
	if err != nil || strings.Join(got, ",") != "line 1,line 2,line 3" {
		t.Fatalf("logs %q %v", got, err)
	}
	stop := errors.New("enough")
	n := 0
	err = hc.Logs(ctx, "j", false, -1, func(api.LogLine) error {
		n++
		return stop
	})
	if err != stop || n != 1 {
		t.Fatalf("fn error: %v after %d lines", err, n)
	}
	hc.LogsFrom(ctx, "j", 7, true, func(api.LogLine) error { return nil })
	want := []string{"follow=true&lines=10", "follow=false", "follow=true&from=7"}
	if strings.Join(queries, " ") != strings.Join(want, " ") {
		t.Fatalf("queries %q", queries)
	}
}

func TestHostClientNeedsCredentials(t *testing.T) {
	if _, err := client.NewHostClient("127.0.0.1:1", t.TempDir()); err == nil {
		t.Fatal("a client without credentials")
	}
}
