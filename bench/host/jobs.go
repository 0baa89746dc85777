package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/store"
)

// event is a job status as it arrived through the watch, and when.
type event struct {
	st api.JobStatus
	at time.Time
}

// tracker watches every job status and hands each job's events to whoever
// expects them. The arrival time is taken as the watch response is read,
// before any other work, so it is when the benchmark could first know.
type tracker struct {
	mu      sync.Mutex
	waiters map[string]chan event
	err     error
	// check reports a reason to stop waiting early (the agent died).
	check func() error
}

func watchStatuses(ctx context.Context, etcd *clientv3.Client) (*tracker, error) {
	resp, err := etcd.Get(ctx, store.JobStatusPrefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return nil, fmt.Errorf("read job statuses: %w", err)
	}
	t := &tracker{waiters: map[string]chan event{}}
	wch := etcd.Watch(ctx, store.JobStatusPrefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
	go func() {
		for wr := range wch {
			at := time.Now()
			if err := wr.Err(); err != nil {
				t.fail(err)
				return
			}
			for _, ev := range wr.Events {
				if ev.Type != clientv3.EventTypePut {
					continue
				}
				var st api.JobStatus
				if err := json.Unmarshal(ev.Kv.Value, &st); err != nil {
					continue
				}
				id := strings.TrimPrefix(string(ev.Kv.Key), store.JobStatusPrefix)
				t.mu.Lock()
				if ch := t.waiters[id]; ch != nil {
					select {
					case ch <- event{st, at}:
					default: // a job has a handful of states; never full
					}
				}
				t.mu.Unlock()
			}
		}
		t.fail(errors.New("status watch ended"))
	}()
	return t, nil
}

func (t *tracker) fail(err error) {
	t.mu.Lock()
	if t.err == nil {
		t.err = err
	}
	t.mu.Unlock()
}

// expect starts collecting id's events; call it before writing the job.
func (t *tracker) expect(id string) <-chan event {
	ch := make(chan event, 16)
	t.mu.Lock()
	t.waiters[id] = ch
	t.mu.Unlock()
	return ch
}

func (t *tracker) forget(id string) {
	t.mu.Lock()
	delete(t.waiters, id)
	t.mu.Unlock()
}

// waitState waits for the first of id's events in a state for which want
// is true. A terminal state that is not wanted is an error: the job
// failed or was rejected.
func (t *tracker) waitState(ctx context.Context, ch <-chan event, id string, want func(api.JobState) bool, timeout time.Duration) (event, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			if t.check != nil {
				if err := t.check(); err != nil {
					return event{}, fmt.Errorf("job %s: %w", id, err)
				}
			}
		case ev := <-ch:
			if want(ev.st.State) {
				return ev, nil
			}
			if ev.st.State.Terminal() {
				return ev, fmt.Errorf("job %s ended %s: %s", id, ev.st.State, ev.st.Error)
			}
		case <-timer.C:
			t.mu.Lock()
			err := t.err
			t.mu.Unlock()
			if err != nil {
				return event{}, fmt.Errorf("job %s: %w", id, err)
			}
			return event{}, fmt.Errorf("job %s: no wanted state within %s", id, timeout)
		case <-ctx.Done():
			return event{}, ctx.Err()
		}
	}
}

func isRunning(s api.JobState) bool { return s == api.JobRunning }
func isStarting(s api.JobState) bool {
	return s == api.JobStarting || s == api.JobRunning
}
func isTerminal(s api.JobState) bool { return s.Terminal() }

// jobKey is where the job record of id lives for the benchmark's host.
func jobKey(id string) string {
	k, err := store.Key(store.JobsPrefix, hostID, id)
	if err != nil {
		panic(err) // ids are made by the benchmark
	}
	return k
}

func statusKey(id string) string {
	k, err := store.Key(store.JobStatusPrefix, id)
	if err != nil {
		panic(err)
	}
	return k
}

// newJob is the job every measurement runs: a shell that exits at once
// on SIGTERM (pid 1 in a container ignores SIGTERM without a handler),
// waiting in `wait` so that the trap runs as soon as the signal comes.
func newJob(id string) api.Job {
	return api.Job{
		ID: id, HostID: hostID,
		Args:      []string{"sh", "-c", `trap "exit 0" TERM; while :; do sleep 1 & wait $!; done`},
		Resources: api.Resources{MemoryMB: jobMemoryMB},
		StopGrace: api.Duration(time.Second),
		Desired:   api.DesiredRunning,
		CreatedAt: time.Now(),
	}
}

// putJob writes a job record, remembering it for the cleanup.
func (b *bench) putJob(ctx context.Context, job api.Job) error {
	b.mu.Lock()
	b.jobs[job.ID] = job
	b.mu.Unlock()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := store.Put(wctx, b.cl.Etcd, jobKey(job.ID), job)
	return err
}

// stopJob sets a job's desired state to shutdown.
func (b *bench) stopJob(ctx context.Context, id string) error {
	b.mu.Lock()
	job, ok := b.jobs[id]
	b.mu.Unlock()
	if !ok {
		return fmt.Errorf("unknown job %s", id)
	}
	job.Desired = api.DesiredShutdown
	return b.putJob(ctx, job)
}

// removeJob deletes the records of a job that has ended; the agent then
// forgets it and removes its files.
func (b *bench) removeJob(ctx context.Context, id string) error {
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := store.Delete(wctx, b.cl.Etcd, jobKey(id)); err != nil {
		return err
	}
	if err := store.Delete(wctx, b.cl.Etcd, statusKey(id)); err != nil {
		return err
	}
	b.mu.Lock()
	delete(b.jobs, id)
	b.mu.Unlock()
	return nil
}

// startSample is one job's way to running.
type startSample struct {
	total    time.Duration // put issued → running seen
	put      time.Duration // the put's own round trip
	starting time.Duration // put issued → starting seen (the agent noticed)
	started  time.Duration // put issued → the shim saw the container's process (its StartedAt)
}

// startJob writes a job and waits until it is seen running.
func (b *bench) startJob(ctx context.Context, id string) (startSample, error) {
	ch := b.tr.expect(id)
	defer b.tr.forget(id)
	job := newJob(id)
	t0 := time.Now()
	if err := b.putJob(ctx, job); err != nil {
		return startSample{}, err
	}
	s := startSample{put: time.Since(t0)}
	ev, err := b.tr.waitState(ctx, ch, id, isStarting, time.Minute)
	if err != nil {
		return s, err
	}
	s.starting = ev.at.Sub(t0)
	if ev.st.State != api.JobRunning {
		if ev, err = b.tr.waitState(ctx, ch, id, isRunning, time.Minute); err != nil {
			return s, err
		}
	}
	s.total = ev.at.Sub(t0)
	s.started = ev.st.StartedAt.Sub(t0)
	return s, nil
}

// stopAndRemove stops a running job, waits for its end and removes it; it
// returns how long the stop took (desired shutdown put → terminal status).
func (b *bench) stopAndRemove(ctx context.Context, id string) (time.Duration, error) {
	ch := b.tr.expect(id)
	defer b.tr.forget(id)
	t0 := time.Now()
	if err := b.stopJob(ctx, id); err != nil {
		return 0, err
	}
	ev, err := b.tr.waitState(ctx, ch, id, isTerminal, time.Minute)
	if err != nil {
		return 0, err
	}
	d := ev.at.Sub(t0)
	if ev.st.State != api.JobShutdown {
		return d, fmt.Errorf("job %s ended %s, want shutdown: %s", id, ev.st.State, ev.st.Error)
	}
	return d, b.removeJob(ctx, id)
}
