// Command scheduler is an example of "the cluster is a library": a
// scheduler of its own, written against pier's public packages only
// (client, store, api, scheduler), that shares the cluster with pier's
// schedulers the way Omega's schedulers share a cell. It runs one job on
// every host tagged role=batch (a tag and command of your choosing) and
// nowhere else: a job starts when a host joins or gains the tag, stops
// when the host loses it, is marked lost when its host vanishes, and is
// replaced (after a short backoff) when it ends.
//
// It connects with the credentials of a node (the pki directory a server
// or host agent writes), campaigns for leadership so that several copies
// can run for availability, watches hosts and jobs to know when to act,
// plans from one consistent read of the store, and commits through
// scheduler.Commit: every start is guarded by the revision of the host it
// read and by its job key being absent, every stop by the job's revision,
// and every transaction by the leadership key, so a stale plan or a
// deposed leader commits nothing. Its jobs carry its own name in
// api.Job.Scheduler; pier's schedulers leave them alone and count their
// resources.
//
//	go run ./examples/scheduler -credentials /var/lib/pier/pki \
//	    -etcd https://10.0.0.1:2379 -tag role=batch -- /app/bin/worker
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/client"
	"github.com/pierpaas/pier/scheduler"
	"github.com/pierpaas/pier/store"
)

func main() {
	creds := flag.String("credentials", "", "directory holding ca.crt, node.crt and node.key")
	endpoints := flag.String("etcd", "https://127.0.0.1:2379", "etcd endpoints, comma-separated")
	name := flag.String("name", "per-host", "this scheduler's name, written on its jobs")
	tag := flag.String("tag", "role=batch", "the host tag (key=value) that gets a job")
	memory := flag.Int64("memory", 64, "memory per job, MB")
	flag.Parse()
	args := flag.Args()
	if len(args) == 0 {
		args = []string{"sleep", "infinity"}
	}
	k, v, ok := strings.Cut(*tag, "=")
	if !ok || k == "" {
		log.Fatalf("-tag %q: want key=value", *tag)
	}
	cl, err := client.Connect(client.Config{Endpoints: strings.Split(*endpoints, ","), CredentialsDir: *creds})
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s := &PerHost{Name: *name, TagKey: k, TagValue: v, Args: args,
		Resources: api.Resources{MemoryMB: *memory}, Out: os.Stdout}
	if err := s.Run(ctx, cl.Etcd); err != nil && ctx.Err() == nil {
		log.Fatal(err)
	}
}

// PerHost runs one job on every host carrying a tag.
type PerHost struct {
	Name             string // api.Job.Scheduler of its jobs, and its election
	TagKey, TagValue string
	Args             []string
	Resources        api.Resources
	// Backoff is how long an ended job waits before it is replaced.
	Backoff time.Duration
	Out     io.Writer
}

// Run leads and schedules until ctx ends or the leadership is lost.
func (s *PerHost) Run(ctx context.Context, cli *clientv3.Client) error {
	// Watch hosts and jobs: an event only says "look again".
	changed := make(chan struct{}, 1)
	hosts := store.NewCache[api.Host](cli, store.HostsPrefix)
	jobs := store.NewCache[api.Job](cli, store.JobsPrefix)
	statuses := store.NewCache[api.JobStatus](cli, store.JobStatusPrefix)
	hosts.OnEvent(func(e store.Event[api.Host]) {
		id := strings.TrimPrefix(e.Key, store.HostsPrefix)
		switch {
		case e.Type == store.EventDelete:
			s.printf("host %s left", id)
		case e.Old == nil:
			s.printf("host %s joined, tags %v", id, e.New.Value.Tags)
		}
	})
	for _, c := range []interface {
		Run(context.Context) error
		Subscribe() (<-chan struct{}, func())
	}{hosts, jobs, statuses} {
		go c.Run(ctx)
		ch, cancel := c.Subscribe()
		defer cancel()
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-ch:
					select {
					case changed <- struct{}{}:
					default:
					}
				}
			}
		}()
	}
	me, _ := os.Hostname()
	leader, err := scheduler.Elect(ctx, cli, "/pier/leaders/"+s.Name+"/", me+"-"+strconv.Itoa(os.Getpid()), 5*time.Second)
	if err != nil {
		return err
	}
	defer leader.Close()
	s.printf("elected leader of %s", s.Name)
	for {
		wake, err := s.Pass(ctx, cli, leader.Guard)
		wait := 30 * time.Second // a resync, in case a watch missed something
		if !wake.IsZero() {
			wait = min(wait, max(time.Until(wake), 10*time.Millisecond))
		}
		switch {
		case errors.Is(err, store.ErrConflict):
			s.printf("conflict (%v): re-planning", err)
			wait = 50 * time.Millisecond
		case err != nil:
			s.printf("pass failed: %v", err)
			wait = time.Second
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-leader.Done():
			return errors.New("leadership lost")
		case <-changed:
		case <-time.After(wait):
		}
	}
}

// Pass reads the cluster once, plans and commits, printing what it does.
// It returns when it next wants to look (a backoff's end), or zero.
func (s *PerHost) Pass(ctx context.Context, cli *clientv3.Client, guards ...scheduler.Guard) (time.Time, error) {
	st, err := scheduler.LoadState(ctx, cli)
	if err != nil {
		return time.Time{}, err
	}
	p, wake := s.Plan(&st, time.Now())
	if p.Empty() {
		return wake, nil
	}
	if err := scheduler.Commit(ctx, cli, p, guards...); err != nil {
		return wake, err
	}
	for _, x := range p.Start {
		s.printf("started %s on %s", x.Job.ID, x.Job.HostID)
	}
	for _, x := range p.Stop {
		s.printf("stopped %s on %s: %s", x.Job.ID, x.Job.HostID, x.Reason)
	}
	for _, x := range p.MarkLost {
		s.printf("lost %s: %s", x.Status.ID, x.Status.Error)
	}
	for _, x := range p.Delete {
		s.printf("deleted the record of %s", x.JobID)
	}
	return wake, nil
}

// Plan is the whole policy, a pure function of the state and the time.
func (s *PerHost) Plan(st *scheduler.State, now time.Time) (scheduler.Plan, time.Time) {
	var p scheduler.Plan
	var wake time.Time
	backoff := cmp.Or(s.Backoff, 5*time.Second)
	// This scheduler's jobs per host, newest generation last.
	mine := map[string][]scheduler.JobView{}
	for _, jv := range st.Snapshot(now, scheduler.Config{}).Jobs {
		if jv.Job.Scheduler == s.Name {
			mine[jv.Job.HostID] = append(mine[jv.Job.HostID], jv)
		}
	}
	for _, js := range mine {
		slices.SortFunc(js, func(a, b scheduler.JobView) int { return a.Job.Restarts - b.Job.Restarts })
	}
	present := map[string]bool{}
	for _, h := range st.Hosts {
		host := h.Value
		present[host.ID] = true
		guard := scheduler.Guard{Key: h.Key, Rev: h.ModRevision}
		if !api.ValidID(s.job(host.ID, 0, now).ID) {
			continue // name and host id too long for a job id
		}
		js := mine[host.ID]
		var cur *scheduler.JobView
		if len(js) > 0 {
			cur = &js[len(js)-1]
		}
		// Older generations that ended are done with.
		for _, jv := range js[:max(len(js)-1, 0)] {
			if ended(&jv) {
				p.Delete = append(p.Delete, scheduler.Delete{JobID: jv.Job.ID, HostID: jv.Job.HostID, Rev: jv.Rev, StatusRev: jv.StatusRev})
			}
		}
		if host.Tags[s.TagKey] != s.TagValue {
			for _, jv := range js {
				if jv.Job.Desired == api.DesiredRunning && !ended(&jv) {
					p.Stop = append(p.Stop, scheduler.Stop{Job: shutdown(jv.Job), Rev: jv.Rev, Guards: []scheduler.Guard{guard},
						Reason: "host not tagged " + s.TagKey + "=" + s.TagValue})
				}
			}
			continue
		}
		switch {
		case cur == nil:
			p.Start = append(p.Start, scheduler.Start{Job: s.job(host.ID, 0, now), Guards: []scheduler.Guard{guard}})
		case cur.Job.Desired == api.DesiredRunning && !ended(cur):
			// It runs.
		case cur.Job.Desired == api.DesiredRunning:
			if at := cur.Status.FinishedAt.Add(backoff); at.After(now) {
				if wake.IsZero() || at.Before(wake) {
					wake = at
				}
				continue
			}
			// Replace it: the new generation's key must be absent and the
			// old one's unchanged, in one transaction.
			p.Start = append(p.Start, scheduler.Start{Job: s.job(host.ID, cur.Job.Restarts+1, now),
				Replaces: &scheduler.Stop{Job: shutdown(cur.Job), Rev: cur.Rev, Reason: "replaced"},
				Guards:   []scheduler.Guard{guard}})
		default:
			// Stopped when the host lost the tag; it has it again.
			p.Start = append(p.Start, scheduler.Start{Job: s.job(host.ID, cur.Job.Restarts+1, now), Guards: []scheduler.Guard{guard}})
		}
	}
	for hostID, js := range mine {
		if present[hostID] {
			continue
		}
		for _, jv := range js {
			if ended(&jv) {
				p.Delete = append(p.Delete, scheduler.Delete{JobID: jv.Job.ID, HostID: jv.Job.HostID, Rev: jv.Rev, StatusRev: jv.StatusRev})
				continue
			}
			// Commit guards this with the host being still absent.
			lost := api.JobStatus{ID: jv.Job.ID, HostID: hostID, State: api.JobLost, Error: "host " + hostID + " vanished",
				FinishedAt: now, UpdatedAt: now}
			if jv.Status != nil {
				lost.StartedAt, lost.ExitCode = jv.Status.StartedAt, jv.Status.ExitCode
			}
			p.MarkLost = append(p.MarkLost, scheduler.Lost{Status: lost, Rev: jv.StatusRev})
		}
	}
	return p, wake
}

// job is generation gen of a host's job. Its id is fixed by host and
// generation, so two plans of the same generation conflict on its key.
func (s *PerHost) job(hostID string, gen int, now time.Time) api.Job {
	return api.Job{
		ID: fmt.Sprintf("%s-%s-%d", s.Name, hostID, gen), HostID: hostID,
		Args: s.Args, Resources: s.Resources,
		Desired: api.DesiredRunning, CreatedAt: now, Scheduler: s.Name, Restarts: gen,
	}
}

func ended(jv *scheduler.JobView) bool { return jv.Status != nil && jv.Status.State.Terminal() }

func shutdown(j api.Job) api.Job {
	j.Desired = api.DesiredShutdown
	return j
}

func (s *PerHost) printf(format string, args ...any) {
	if s.Out != nil {
		fmt.Fprintf(s.Out, time.Now().Format("15:04:05.000 ")+format+"\n", args...)
	}
}
