package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/host/joblog"
	"github.com/pierpaas/pier/host/shim"
	"github.com/pierpaas/pier/internal/daemon"
	"github.com/pierpaas/pier/store"
)

// The agent's API (api/hostapi.go lists the endpoints) is served over TLS
// with the host's certificate. Every endpoint but /livez and /readyz wants
// a client certificate of the cluster CA: jobs share the host's network
// and must not reach it.
//
// Stopping a job through the API does not touch the job's record, whose
// desired state has one writer (its scheduler): the agent stops the
// process itself, as it would on desired shutdown, and reports the job
// `shutdown`. The scheduler then sees a job that ended and decides what
// follows (a service job is replaced, as flynn-host stop does). Ad-hoc
// jobs (`pier host run`) are the exception that proves the rule: the API
// writes their record, as the controller does for one-off jobs, once, and
// never again.

const (
	// maxRequestBody bounds what a client can make the agent read.
	maxRequestBody = 1 << 20
	// statusTimeout bounds the store reads of one request.
	statusTimeout = 5 * time.Second
	// logEndPoll is how often a log follower looks whether its job ended.
	logEndPoll = 100 * time.Millisecond
)

// apiServer is the agent's HTTPS server and what it needs to stop cleanly.
type apiServer struct {
	srv      *http.Server
	ln       net.Listener
	requests *prometheus.CounterVec

	mu       sync.Mutex
	closed   bool
	inflight sync.WaitGroup
	hijacked map[net.Conn]struct{} // attachments (attach.go)
}

// startAPI begins serving the API on the advertise address.
func (a *Agent) startAPI() error {
	a.Health = &daemon.Health{}
	a.Metrics = daemon.NewRegistry()
	hostKey, err := store.Key(store.HostsPrefix, a.cfg.ID)
	if err != nil {
		return err
	}
	a.Health.AddReadyCheck("store", func(ctx context.Context) error {
		_, err := a.Client.Get(ctx, hostKey, clientv3.WithCountOnly())
		return err
	})
	a.Health.AddReadyCheck("jobs", func(context.Context) error {
		select {
		case <-a.jobs.Synced():
			return nil
		default:
			return errors.New("jobs not loaded yet")
		}
	})
	s := &apiServer{requests: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pier_host_api_requests_total",
		Help: "Requests to the host agent's API by route and status code.",
	}, []string{"route", "code"})}
	supervised := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "pier_host_jobs_supervised",
		Help: "Jobs whose process the host agent supervises.",
	}, func() float64 {
		a.mu.Lock()
		defer a.mu.Unlock()
		return float64(len(a.workers))
	})
	a.Metrics.MustRegister(s.requests, supervised)

	ln, err := net.Listen("tcp", a.cfg.apiAddr())
	if err != nil {
		return fmt.Errorf("agent: API listener: %w", err)
	}
	s.ln = ln
	s.srv = &http.Server{
		Handler:           a.apiHandler(s),
		TLSConfig:         a.Creds.ServerConfig(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// Failed handshakes (a job probing the port, a foreign CA) are
		// not the agent's errors.
		ErrorLog: slog.NewLogLogger(a.cfg.Log.Handler(), slog.LevelDebug),
	}
	a.api = s
	go s.srv.ServeTLS(ln, "", "")
	return nil
}

// stopAPI closes the server and waits for its handlers: log followers
// end with their connections.
func (a *Agent) stopAPI() {
	s := a.api
	if s == nil {
		return
	}
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if s.srv.Shutdown(ctx) != nil {
		s.srv.Close()
	}
	s.closeHijacked()
	s.inflight.Wait()
}

// APIAddr is the address the API listens on.
func (a *Agent) APIAddr() string {
	if a.api == nil {
		return ""
	}
	return a.api.ln.Addr().String()
}

func (a *Agent) apiHandler(s *apiServer) http.Handler {
	mux := http.NewServeMux()
	ops := a.Health.Handler(a.Metrics)
	route := func(pattern string, authn bool, h http.Handler) {
		mux.Handle(pattern, s.wrap(pattern, authn, h))
	}
	route("GET /livez", false, ops)
	route("GET /readyz", false, ops)
	route("GET /metrics", true, ops)
	route("GET /v1/status", true, http.HandlerFunc(a.serveStatus))
	route("GET /v1/jobs", true, http.HandlerFunc(a.serveJobs))
	route("POST /v1/jobs", true, http.HandlerFunc(a.serveRun))
	route("GET /v1/jobs/{id}", true, http.HandlerFunc(a.serveJob))
	route("POST /v1/jobs/{id}/stop", true, http.HandlerFunc(a.serveStop))
	route("POST /v1/jobs/{id}/signal", true, http.HandlerFunc(a.serveSignal))
	route("GET /v1/jobs/{id}/logs", true, http.HandlerFunc(a.serveLogs))
	route("GET /v1/jobs/{id}/attach", true, http.HandlerFunc(a.serveAttach))
	route("/", true, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, api.ErrCodeNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path)
	}))
	return mux
}

// wrap authenticates, bounds the body, counts, and tracks the handler so
// the server can wait for it.
func (s *apiServer) wrap(route string, authn bool, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			writeError(w, http.StatusServiceUnavailable, api.ErrCodeUnavailable, "the host agent is stopping")
			return
		}
		s.inflight.Add(1)
		s.mu.Unlock()
		defer s.inflight.Done()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		defer func() { s.requests.WithLabelValues(route, strconv.Itoa(rec.code)).Inc() }()
		if authn && (r.TLS == nil || len(r.TLS.VerifiedChains) == 0) {
			writeError(rec, http.StatusUnauthorized, api.ErrCodeUnauthenticated, "a client certificate of the cluster is required")
			return
		}
		r.Body = http.MaxBytesReader(rec, r.Body, maxRequestBody)
		h.ServeHTTP(rec, r)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wrote {
		r.code, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, format string, args ...any) {
	writeJSON(w, status, api.Errorf(code, format, args...))
}

// serveStatus describes the host.
func (a *Agent) serveStatus(w http.ResponseWriter, r *http.Request) {
	jobs, _ := a.knownJobs()
	st := api.HostStatus{
		ID: a.cfg.ID, Addr: a.cfg.AdvertiseIP, APIAddr: a.cfg.apiAddr(), Runtime: a.cfg.Runtime,
		Version: a.cfg.Version, Tags: a.cfg.Tags, CPUMillis: a.cfg.CPUMillis, MemoryMB: a.cfg.MemoryMB,
		Jobs: len(jobs), StartedAt: a.startedAt, Uptime: api.Duration(time.Since(a.startedAt).Round(time.Second)),
	}
	st.MemTotalMB, st.MemAvailableMB = memInfoMB()
	if a.cfg.Disk != nil {
		d := a.cfg.Disk.Status()
		st.Disk = &api.DiskStatus{Dir: d.Dir, FreeBytes: d.Free, TotalBytes: d.Total, LowBytes: d.Low, Pressure: d.Reason()}
	}
	for _, hj := range jobs {
		if hj.Supervised {
			st.Supervised++
			st.UsedCPUMillis += hj.Job.Resources.CPUMillis
			st.UsedMemoryMB += hj.Job.Resources.MemoryMB
		}
	}
	writeJSON(w, http.StatusOK, st)
}

// knownJobs lists the jobs assigned here and those still on the host
// whose records are gone, without their statuses.
func (a *Agent) knownJobs() ([]api.HostJob, map[string]*localJob) {
	byID := map[string]*api.HostJob{}
	for _, it := range a.jobs.List() {
		byID[it.Value.ID] = &api.HostJob{Job: it.Value, Assigned: true}
	}
	locals := map[string]*localJob{}
	if ljs, err := a.local.all(); err == nil {
		for _, lj := range ljs {
			locals[lj.Job.ID] = lj
			if byID[lj.Job.ID] == nil {
				byID[lj.Job.ID] = &api.HostJob{Job: lj.Job}
			}
		}
	}
	a.mu.Lock()
	for id, hj := range byID {
		hj.Supervised = a.workers[id] != nil
	}
	a.mu.Unlock()
	out := make([]api.HostJob, 0, len(byID))
	for _, hj := range byID {
		out = append(out, *hj)
	}
	slices.SortFunc(out, func(x, y api.HostJob) int {
		if c := x.Job.CreatedAt.Compare(y.Job.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(x.Job.ID, y.Job.ID)
	})
	return out, locals
}

// withStatuses fills in the jobs' statuses from the store, in one round
// trip per MaxTxnOps jobs, or from the agent's own records if the store
// cannot be reached: an admin looks at a host most when things are wrong.
func (a *Agent) withStatuses(ctx context.Context, jobs []api.HostJob, locals map[string]*localJob) {
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	for start := 0; start < len(jobs); start += store.MaxTxnOps {
		chunk := jobs[start:min(start+store.MaxTxnOps, len(jobs))]
		ops := make([]clientv3.Op, len(chunk))
		for i, hj := range chunk {
			key, _ := store.Key(store.JobStatusPrefix, hj.Job.ID)
			ops[i] = clientv3.OpGet(key)
		}
		resp, err := a.Client.Txn(ctx).Then(ops...).Commit()
		for i := range chunk {
			hj := &chunk[i]
			if err != nil {
				hj.Status, hj.StatusFrom = localStatus(a.cfg.ID, locals[hj.Job.ID]), "local"
				continue
			}
			kvs := resp.Responses[i].GetResponseRange().GetKvs()
			if len(kvs) == 0 {
				continue
			}
			var st api.JobStatus
			if json.Unmarshal(kvs[0].Value, &st) == nil {
				hj.Status, hj.StatusFrom = &st, "store"
			}
		}
	}
}

// localStatus is what the agent itself remembers of a job's state.
func localStatus(host string, lj *localJob) *api.JobStatus {
	if lj == nil {
		return nil
	}
	st := &api.JobStatus{ID: lj.Job.ID, HostID: host, State: lj.Reported, HostPorts: lj.HostPorts, IP: lj.IP}
	if s, _ := shim.ReadStarted(lj.Dir); s != nil {
		st.PID, st.StartedAt = s.PID, s.Time
	}
	if res, _ := shim.ReadResult(lj.Dir); res != nil {
		code := res.Exit.Code
		st.ExitCode, st.Signal, st.OOMKilled, st.FinishedAt = &code, res.Exit.Signal, res.Exit.OOMKilled, res.Exit.Finished
	}
	return st
}

func (a *Agent) serveJobs(w http.ResponseWriter, r *http.Request) {
	jobs, locals := a.knownJobs()
	a.withStatuses(r.Context(), jobs, locals)
	writeJSON(w, http.StatusOK, jobs)
}

// hostJob returns one job with its status, or false if the host does not
// know it.
func (a *Agent) hostJob(ctx context.Context, id string) (api.HostJob, bool) {
	if !api.ValidID(id) {
		return api.HostJob{}, false
	}
	jobs, locals := a.knownJobs()
	i := slices.IndexFunc(jobs, func(hj api.HostJob) bool { return hj.Job.ID == id })
	var one []api.HostJob
	if i >= 0 {
		one = jobs[i : i+1]
	} else {
		// A job created a moment ago (pier host run, then at once logs)
		// may not have reached the watch cache yet: ask the store.
		key, err := store.Key(store.JobsPrefix, a.cfg.ID, id)
		if err != nil {
			return api.HostJob{}, false
		}
		job, _, err := store.Get[api.Job](ctx, a.Client, key)
		if err != nil {
			return api.HostJob{}, false
		}
		one = []api.HostJob{{Job: job, Assigned: true}}
	}
	a.withStatuses(ctx, one, locals)
	return one[0], true
}

func (a *Agent) serveJob(w http.ResponseWriter, r *http.Request) {
	hj, ok := a.hostJob(r.Context(), r.PathValue("id"))
	if !ok {
		writeError(w, http.StatusNotFound, api.ErrCodeNotFound, "no job %q on host %s", r.PathValue("id"), a.cfg.ID)
		return
	}
	writeJSON(w, http.StatusOK, hj)
}

// liveWorker returns the worker of a job with a live process, or writes
// why there is none.
func (a *Agent) liveWorker(w http.ResponseWriter, r *http.Request) *worker {
	id := r.PathValue("id")
	if api.ValidID(id) {
		a.mu.Lock()
		wk := a.workers[id]
		a.mu.Unlock()
		if wk != nil {
			return wk
		}
	}
	if hj, ok := a.hostJob(r.Context(), id); ok {
		state := "not started"
		if hj.Status != nil {
			state = string(hj.Status.State)
		}
		writeError(w, http.StatusConflict, api.ErrCodeConflict, "job %s is not running (%s)", id, state)
		return nil
	}
	writeError(w, http.StatusNotFound, api.ErrCodeNotFound, "no job %q on host %s", id, a.cfg.ID)
	return nil
}

// serveStop stops a job gracefully, as desired shutdown would: SIGTERM,
// then SIGKILL after its grace period. It answers at once; the job's
// status says when it has stopped.
func (a *Agent) serveStop(w http.ResponseWriter, r *http.Request) {
	wk := a.liveWorker(w, r)
	if wk == nil {
		return
	}
	a.cfg.Log.Info("job stop requested through the API", "job", wk.lj.Job.ID)
	wk.requestStop()
	hj, _ := a.hostJob(r.Context(), wk.lj.Job.ID)
	writeJSON(w, http.StatusAccepted, hj)
}

// serveSignal sends a signal to the job's main process through its shim.
func (a *Agent) serveSignal(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.Atoi(r.URL.Query().Get("signal"))
	if err != nil || n < 1 || n > 64 {
		writeError(w, http.StatusBadRequest, api.ErrCodeBadRequest, "signal must be a number from 1 to 64")
		return
	}
	wk := a.liveWorker(w, r)
	if wk == nil {
		return
	}
	c := shim.NewClient(a.socketPath(wk.lj.Job.ID))
	defer c.Close()
	ctx, cancel := context.WithTimeout(r.Context(), statusTimeout)
	defer cancel()
	if err := c.Signal(ctx, syscall.Signal(n)); err != nil {
		writeError(w, http.StatusConflict, api.ErrCodeConflict, "job %s: %v", wk.lj.Job.ID, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// jobDone reports whether a job will write no more output: it ended, or
// it is not going to run here.
func (a *Agent) jobDone(id string) bool {
	a.mu.Lock()
	wk, ended := a.workers[id], a.ended[id]
	a.mu.Unlock()
	switch {
	case ended:
		return true
	case wk != nil:
		res, _ := shim.ReadResult(a.jobDir(id))
		return res != nil
	}
	key, err := store.Key(store.JobsPrefix, a.cfg.ID, id)
	if err != nil {
		return true
	}
	it, ok := a.jobs.Get(key)
	// Waiting to be started: its output is still to come.
	return !ok || it.Value.Desired != api.DesiredRunning
}

// serveLogs writes the job's output as JSON lines: all of it, the last
// `lines` lines, or the lines from number `from` on. With follow it goes
// on until the job has ended and its output is all sent, or the client
// goes.
func (a *Agent) serveLogs(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	q := r.URL.Query()
	follow := false
	if v := q.Get("follow"); v != "" {
		var err error
		if follow, err = strconv.ParseBool(v); err != nil {
			writeError(w, http.StatusBadRequest, api.ErrCodeBadRequest, "follow must be true or false")
			return
		}
	}
	lines := -1 // all
	if v := q.Get("lines"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, api.ErrCodeBadRequest, "lines must be a number of at least 0")
			return
		}
		lines = n
	}
	var from uint64 // 0: the oldest line kept
	if v := q.Get("from"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || lines >= 0 {
			writeError(w, http.StatusBadRequest, api.ErrCodeBadRequest, "from must be a line number, and not given with lines")
			return
		}
		from = n
	}
	if _, ok := a.hostJob(r.Context(), id); !ok {
		writeError(w, http.StatusNotFound, api.ErrCodeNotFound, "no job %q on host %s", id, a.cfg.ID)
		return
	}
	dir := shim.LogDir(a.jobDir(id))
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	emit := func(l joblog.Line) error {
		if err := enc.Encode(api.LogLine{Seq: l.Seq, Time: l.Time, Stream: l.Stream, Text: l.Text, Gap: l.Gap}); err != nil {
			return err
		}
		if follow {
			return rc.Flush()
		}
		return nil
	}

	if lines >= 0 {
		tail, err := joblog.Tail(dir, lines)
		if err != nil {
			a.cfg.Log.Warn("read job log", "job", id, "err", err)
			return
		}
		for _, l := range tail {
			if emit(l) != nil {
				return
			}
		}
		if len(tail) > 0 {
			from = tail[len(tail)-1].Seq + 1
		} else if lines == 0 {
			// Nothing of the past: start after the newest line there is.
			from = lastSeq(dir) + 1
		}
	}
	if !follow {
		if lines < 0 {
			joblog.Read(dir, from, emit)
		}
		rc.Flush()
		return
	}
	rc.Flush() // the client knows the stream is open before a line comes

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	ended := make(chan struct{})
	go func() {
		t := time.NewTicker(logEndPoll)
		defer t.Stop()
		for !a.jobDone(id) {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
		close(ended)
		cancel()
	}()
	next, err := joblog.Follow(ctx, dir, from, emit)
	select {
	case <-ended:
		// The job's writer closed before it ended: what is on disk now is
		// all there will be.
		if r.Context().Err() == nil {
			joblog.Read(dir, next, emit)
		}
	default:
		if err != nil && !errors.Is(err, context.Canceled) {
			a.cfg.Log.Warn("follow job log", "job", id, "err", err)
		}
	}
}

// lastSeq is the sequence number of the newest line in dir, 0 if none.
func lastSeq(dir string) uint64 {
	tail, _ := joblog.Tail(dir, 1)
	if len(tail) == 0 {
		return 0
	}
	return tail[0].Seq
}

// serveRun creates an ad-hoc job on this host. It writes the job's record
// as a scheduler would, so the ordinary path runs, reports and stops it.
func (a *Agent) serveRun(w http.ResponseWriter, r *http.Request) {
	var req api.RunJobRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, api.ErrCodeTooLarge, "request body over %d bytes", maxRequestBody)
			return
		}
		writeError(w, http.StatusBadRequest, api.ErrCodeBadRequest, "bad request body: %v", err)
		return
	}
	if req.MemoryMB < 0 || req.CPUMillis < 0 {
		writeError(w, http.StatusBadRequest, api.ErrCodeBadRequest, "memory and cpu must not be negative")
		return
	}
	id, err := runID()
	if err != nil {
		writeError(w, http.StatusInternalServerError, api.ErrCodeInternal, "%v", err)
		return
	}
	job := api.Job{
		ID: id, HostID: a.cfg.ID, Args: req.Args, Env: req.Env,
		Resources: api.Resources{MemoryMB: req.MemoryMB, CPUMillis: req.CPUMillis},
		Desired:   api.DesiredRunning, CreatedAt: time.Now().UTC(),
		TTY: req.TTY, Stdin: req.Stdin, Scheduler: AdHocScheduler,
	}
	if err := job.Validate(); err != nil {
		writeError(w, http.StatusBadRequest, api.ErrCodeBadRequest, "%v", err)
		return
	}
	key, err := store.Key(store.JobsPrefix, a.cfg.ID, id)
	if err != nil {
		writeError(w, http.StatusInternalServerError, api.ErrCodeInternal, "%v", err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), statusTimeout)
	defer cancel()
	if _, err := store.Create(ctx, a.Client, key, job); err != nil {
		writeError(w, http.StatusServiceUnavailable, api.ErrCodeUnavailable, "cannot record the job: %v", err)
		return
	}
	a.cfg.Log.Info("ad-hoc job created through the API", "job", id, "args", job.Args)
	writeJSON(w, http.StatusCreated, job)
}

// runID names an ad-hoc job: "run-" and 10 random hex digits.
func runID() (string, error) {
	b := make([]byte, 5)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "run-" + hex.EncodeToString(b), nil
}
