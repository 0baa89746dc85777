package logs

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/pierpaas/pier/api"
)

// The aggregator's endpoints (api/logs.go lists them) sit on the servers'
// API port and want a client certificate of the cluster CA: host agents
// ship with theirs and controllers read with the server's. Users reach
// logs through the controller, which checks their API key.

const (
	// maxBatchBody bounds an ingest request; shippers send far less.
	maxBatchBody = 16 << 20
	// DefaultTail is how many lines a query returns without lines=N, as
	// Heroku's logs command.
	DefaultTail = 100
	// followChunk is how many lines a follower takes from a ring at once.
	followChunk = 1000
	// heartbeat keeps an idle follow stream alive through proxies: a bare
	// newline, which NDJSON readers skip.
	heartbeat = 15 * time.Second
)

// Handler serves the aggregator's endpoints.
func (a *Aggregator) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/logs/cursors", a.serveCursors)
	mux.HandleFunc("POST /v1/logs/ingest", a.serveIngest)
	mux.HandleFunc("POST /v1/logs/platform", a.servePlatform)
	mux.HandleFunc("GET /v1/logs/apps/{app}", a.serveApp)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
			writeError(w, http.StatusUnauthorized, api.Errorf(api.ErrCodeUnauthenticated, "a client certificate of the cluster is required"))
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, e *api.Error) { writeJSON(w, status, e) }

func inactive(w http.ResponseWriter) {
	writeError(w, http.StatusServiceUnavailable, api.Errorf(api.ErrCodeUnavailable, "%v", ErrInactive))
}

func (a *Aggregator) serveCursors(w http.ResponseWriter, r *http.Request) {
	cur, err := a.Cursors(r.URL.Query().Get("host"))
	if err != nil {
		inactive(w)
		return
	}
	writeJSON(w, http.StatusOK, cur)
}

func (a *Aggregator) serveIngest(w http.ResponseWriter, r *http.Request) {
	var b api.LogBatch
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBatchBody)).Decode(&b); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, api.Errorf(api.ErrCodeTooLarge, "batch over %d bytes", maxBatchBody))
			return
		}
		writeError(w, http.StatusBadRequest, api.Errorf(api.ErrCodeBadRequest, "bad batch: %v", err))
		return
	}
	cur, err := a.Ingest(&b)
	if err != nil {
		inactive(w)
		return
	}
	writeJSON(w, http.StatusOK, cur)
}

// maxPlatformLines bounds one platform batch.
const maxPlatformLines = 10000

// servePlatform takes platform lines from other parts of the cluster:
// routers' access lines (process "router"), say. They carry their app and
// are told as the platform's, whatever source they claim.
func (a *Aggregator) servePlatform(w http.ResponseWriter, r *http.Request) {
	var lines []api.AppLogLine
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBatchBody)).Decode(&lines); err != nil {
		writeError(w, http.StatusBadRequest, api.Errorf(api.ErrCodeBadRequest, "bad lines: %v", err))
		return
	}
	if len(lines) > maxPlatformLines {
		writeError(w, http.StatusRequestEntityTooLarge, api.Errorf(api.ErrCodeTooLarge, "more than %d lines", maxPlatformLines))
		return
	}
	if !a.Active() {
		inactive(w)
		return
	}
	for _, l := range lines {
		l.Source, l.Seq, l.ID = api.LogSourcePier, 0, 0
		if l.Process == "" {
			l.Process = "router"
		}
		a.Emit(l)
	}
	w.WriteHeader(http.StatusNoContent)
}

// Query is what a log query asks for.
type Query struct {
	Lines   int // how many of the newest lines; DefaultTail when < 0
	Follow  bool
	Process string
	Job     string
}

// ParseQuery reads follow, lines, type and job from a request's query.
func ParseQuery(r *http.Request) (Query, error) {
	q := r.URL.Query()
	out := Query{Lines: -1, Process: q.Get("type"), Job: q.Get("job")}
	if v := q.Get("follow"); v != "" {
		f, err := strconv.ParseBool(v)
		if err != nil {
			return out, api.Errorf(api.ErrCodeBadRequest, "follow must be true or false")
		}
		out.Follow = f
	}
	if v := q.Get("lines"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return out, api.Errorf(api.ErrCodeBadRequest, "lines must be a number of at least 0")
		}
		out.Lines = n
	}
	return out, nil
}

// serveApp writes an app's newest lines as NDJSON and, with follow, the
// lines that come after, until the client goes or the aggregator stops
// being the active one (the client then asks the new one).
func (a *Aggregator) serveApp(w http.ResponseWriter, r *http.Request) {
	q, err := ParseQuery(r)
	if err != nil {
		var ae *api.Error
		errors.As(err, &ae)
		writeError(w, http.StatusBadRequest, ae)
		return
	}
	if q.Lines < 0 {
		q.Lines = DefaultTail
	}
	f := filter{process: q.Process, job: q.Job}
	app := r.PathValue("app")
	v, err := a.tail(app, q.Lines, f)
	if err != nil {
		inactive(w)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	for i := range v.lines {
		if enc.Encode(&v.lines[i]) != nil {
			return
		}
	}
	rc.Flush()
	if !q.Follow {
		return
	}
	last, notify, term := v.last, v.notify, v.term
	hb := time.NewTicker(heartbeat)
	defer hb.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-term:
			return
		case <-hb.C:
			w.Write([]byte("\n"))
			rc.Flush()
			continue
		case <-notify:
		}
		for {
			v, err := a.after(app, last, followChunk, f)
			if err != nil {
				return
			}
			if v.skipped > 0 {
				// This reader fell behind further than the ring reaches.
				n := api.AppLogLine{Time: time.Now().UTC(), App: app, Source: api.LogSourcePier, Process: "logs",
					Text: fmt.Sprintf("Error L11 (tail buffer overflow): %d lines skipped: this reader fell behind", v.skipped)}
				if enc.Encode(&n) != nil {
					return
				}
			}
			for i := range v.lines {
				if enc.Encode(&v.lines[i]) != nil {
					return
				}
			}
			notify = v.notify
			moved := v.last != last
			last = v.last
			if !moved {
				break
			}
		}
		if rc.Flush() != nil {
			return
		}
	}
}
