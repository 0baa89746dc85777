package controller

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/client"
	"github.com/pierpaas/pier/scheduler"
	"github.com/pierpaas/pier/store"
)

// appJobs reads an app's jobs from one consistent snapshot of the store:
// the live ones, the one-offs with their results, and the slots the
// scheduler could not fill, with why.
func (c *Controller) appJobs(ctx context.Context, app string) (api.JobList, error) {
	st, err := scheduler.LoadState(ctx, c.Client)
	if err != nil {
		return api.JobList{}, err
	}
	versions := map[string]int{}
	for _, it := range st.Releases {
		if it.Value.App == app {
			versions[it.Value.ID] = it.Value.Version
		}
	}
	hosts := map[string]api.Host{}
	for _, it := range st.Hosts {
		hosts[it.Value.ID] = it.Value
	}
	statuses := map[string]api.JobStatus{}
	for _, it := range st.JobStatus {
		statuses[it.Value.ID] = it.Value
	}
	// When each process type's next crashed job restarts.
	restartAt := map[[2]string]time.Time{}
	for _, it := range st.Statuses {
		for _, p := range it.Value.Pending {
			if p.App == app && p.Reason == scheduler.WaitingToRestart {
				restartAt[[2]string{p.Release, p.ProcessType}] = p.Until
			}
		}
	}
	out := api.JobList{Jobs: []api.AppJob{}}
	placed := map[string]bool{}
	for _, it := range st.Jobs {
		j := it.Value
		if j.App != app {
			continue
		}
		placed[j.ID] = true
		aj := api.AppJob{
			ID: j.ID, App: j.App, Release: j.Release, Version: versions[j.Release], ProcessType: j.ProcessType,
			Args: j.Args, HostID: j.HostID, State: api.JobAssigned, Desired: j.Desired, Restarts: j.Restarts,
			OneOff: j.Scheduler == scheduler.OneOffScheduler || j.Scheduler == scheduler.CronScheduler, CreatedAt: j.CreatedAt,
		}
		if s, ok := statuses[j.ID]; ok {
			aj.State, aj.ExitCode, aj.Error, aj.Healthy, aj.StartedAt = s.State, s.ExitCode, s.Error, s.Healthy, s.StartedAt
			if s.State.Terminal() {
				aj.FinishedAt = s.FinishedAt
			}
			addr := s.IP
			if h, ok := hosts[j.HostID]; ok && addr == "" {
				addr = h.Addr
			}
			if addr != "" {
				for _, p := range s.HostPorts {
					aj.Addrs = append(aj.Addrs, net.JoinHostPort(addr, strconv.Itoa(p)))
				}
			}
		}
		// A service job that ended has been (or is being) replaced; what
		// is left of it is history, not a process. But one whose slot
		// waits out a crash's backoff is the process type's news, as is
		// one that failed for good: Heroku lists such a dyno as crashed.
		if aj.State.Terminal() && !aj.OneOff {
			at, waits := restartAt[[2]string{j.Release, j.ProcessType}]
			if j.Desired != api.DesiredRunning || !waits && aj.State != api.JobFailed {
				continue
			}
			aj.RestartAt = at
		}
		out.Jobs = append(out.Jobs, aj)
	}
	oneOffStatus := map[string]api.OneOffStatus{}
	for _, it := range st.OneOffStat {
		oneOffStatus[it.Value.ID] = it.Value
	}
	for _, it := range st.OneOffs {
		o := it.Value
		if o.App != app || placed[o.ID] {
			continue
		}
		aj := api.AppJob{ID: o.ID, App: app, Release: o.Release, Version: versions[o.Release], ProcessType: o.ProcessType,
			Args: o.Args, State: api.JobPending, Desired: api.DesiredRunning, OneOff: true, CreatedAt: o.CreatedAt}
		if s, ok := oneOffStatus[o.ID]; ok {
			aj.Pending = s.Pending
		}
		out.Jobs = append(out.Jobs, aj)
	}
	for _, it := range st.Statuses {
		if it.Value.App == app {
			out.Pending = append(out.Pending, it.Value.Pending...)
		}
	}
	sort.Slice(out.Jobs, func(i, j int) bool {
		a, b := out.Jobs[i], out.Jobs[j]
		if a.ProcessType != b.ProcessType {
			return a.ProcessType < b.ProcessType
		}
		if !a.CreatedAt.Equal(b.CreatedAt) {
			return a.CreatedAt.Before(b.CreatedAt)
		}
		return a.ID < b.ID
	})
	return out, nil
}

func (c *Controller) listJobs(w http.ResponseWriter, r *http.Request) error {
	if _, _, err := c.loadApp(r.Context(), r.PathValue("app")); err != nil {
		return err
	}
	jobs, err := c.appJobs(r.Context(), r.PathValue("app"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, jobs)
	return nil
}

// findJob finds one of app's jobs, live or a one-off's result.
func (c *Controller) findJob(ctx context.Context, app, id string) (api.AppJob, error) {
	if _, _, err := c.loadApp(ctx, app); err != nil {
		return api.AppJob{}, err
	}
	jobs, err := c.appJobs(ctx, app)
	if err != nil {
		return api.AppJob{}, err
	}
	for _, j := range jobs.Jobs {
		if j.ID == id {
			return j, nil
		}
	}
	return api.AppJob{}, notFound("app %s has no job %q", app, id)
}

func (c *Controller) getJob(w http.ResponseWriter, r *http.Request) error {
	j, err := c.findJob(r.Context(), r.PathValue("app"), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, j)
	return nil
}

// killJob stops a job. A one-off is cancelled (its request deleted); a
// service job is stopped by its host agent, and its scheduler replaces it
// as it would a crashed one: `pier kill` restarts a process, as Heroku's
// ps:kill does.
func (c *Controller) killJob(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	j, err := c.findJob(ctx, r.PathValue("app"), r.PathValue("id"))
	if err != nil {
		return err
	}
	if j.State.Terminal() {
		return conflict("job %s has already ended (%s)", j.ID, j.State)
	}
	if j.OneOff {
		if err := store.Delete(ctx, c.Client, scheduler.OneOffPrefix+j.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	} else {
		hc, err := c.hostClient(ctx, j.HostID)
		if err != nil {
			return err
		}
		defer hc.Close()
		if _, err := hc.Stop(ctx, j.ID); err != nil {
			return fmt.Errorf("stop job %s on host %s: %w", j.ID, j.HostID, err)
		}
	}
	c.Log.Info("job killed", "app", j.App, "job", j.ID)
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// hostClient connects to a host agent's API as this server.
func (c *Controller) hostClient(ctx context.Context, hostID string) (*client.HostClient, error) {
	if !api.ValidID(hostID) {
		return nil, api.Errorf(api.ErrCodeUnavailable, "the job has no host yet")
	}
	h, _, err := store.Get[api.Host](ctx, c.Client, store.HostsPrefix+hostID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, api.Errorf(api.ErrCodeUnavailable, "host %s is down", hostID)
	}
	if err != nil {
		return nil, err
	}
	if c.HostTLS == nil {
		return nil, api.Errorf(api.ErrCodeUnavailable, "this server cannot reach host agents")
	}
	return client.NewHostClientTLS(h.APIAddr, c.HostTLS), nil
}

// oneOffID makes a one-off's id: "<app>-run-<random>", a DNS label.
func oneOffID(app string) string { return newID(app, "run") }

func (c *Controller) run(w http.ResponseWriter, r *http.Request) error {
	var req api.RunRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	ctx := r.Context()
	app, _, err := c.loadApp(ctx, r.PathValue("app"))
	if err != nil {
		return err
	}
	if app.Release == "" {
		// Nothing to run the command with: no slug, no config.
		return invalid("app %s has no release yet: deploy it first (pier deploy, or git push pier main)", app.Name)
	}
	if len(req.Args) == 0 {
		return invalid("nothing to run: give a command")
	}
	if err := checkEnv(req.Env); err != nil {
		return err
	}
	if req.Resources.CPUMillis < 0 || req.Resources.MemoryMB < 0 {
		return invalid("negative resources")
	}
	o := api.OneOff{
		ID: oneOffID(app.Name), App: app.Name, Release: app.Release, Args: req.Args, Env: req.Env,
		Resources: req.Resources, TTY: req.TTY, Stdin: req.Stdin, CreatedAt: time.Now().UTC(),
	}
	if err := o.Validate(); err != nil {
		return invalid("%v", err)
	}
	if _, err := store.Create(ctx, c.Client, scheduler.OneOffPrefix+o.ID, o); err != nil {
		return err
	}
	c.Log.Info("one-off job requested", "app", app.Name, "job", o.ID)
	writeJSON(w, http.StatusCreated, api.AppJob{ID: o.ID, App: app.Name, Release: app.Release, Args: o.Args,
		State: api.JobPending, Desired: api.DesiredRunning, OneOff: true, CreatedAt: o.CreatedAt})
	return nil
}

// attach connects the client to a one-off job's stdio through its host
// agent: it waits for the scheduler to place the job, makes the attach
// upgrade to the agent as this server, answers the client's upgrade, and
// relays the frames both ways untouched.
func (c *Controller) attach(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	app, id := r.PathValue("app"), r.PathValue("id")
	if _, _, err := c.loadApp(ctx, app); err != nil {
		return err
	}
	if r.Header.Get("Upgrade") != api.AttachUpgrade {
		return badRequest("attach needs Upgrade: %s", api.AttachUpgrade)
	}
	hostID, err := c.waitPlaced(ctx, app, id)
	if err != nil {
		return err
	}
	if st, _, err := store.Get[api.JobStatus](ctx, c.Client, store.JobStatusPrefix+id); err == nil && st.State.Terminal() {
		return conflict("job %s has ended (%s)", id, st.State)
	}
	hc, err := c.hostClient(ctx, hostID)
	if err != nil {
		return err
	}
	defer hc.Close()
	opts := client.AttachOptions{}
	if rows, err := strconv.ParseUint(r.URL.Query().Get("rows"), 10, 16); err == nil {
		opts.Rows = uint16(rows)
	}
	if cols, err := strconv.ParseUint(r.URL.Query().Get("cols"), 10, 16); err == nil {
		opts.Cols = uint16(cols)
	}
	dialCtx, cancel := context.WithTimeout(ctx, c.AttachWait)
	ac, err := hc.Attach(dialCtx, id, opts)
	cancel()
	if err != nil {
		return err
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		ac.Close()
		return err
	}
	fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: %s\r\n%s: %s\r\n\r\n",
		api.AttachUpgrade, RequestIDHeader, w.Header().Get(RequestIDHeader))
	if err := brw.Flush(); err != nil {
		conn.Close()
		ac.Close()
		return nil
	}
	ac.Splice(conn, brw.Reader)
	return nil
}
