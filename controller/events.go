package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/store"
)

// eventKinds maps the prefixes the events stream reports to their event
// type and how to read an object there.
var eventKinds = []struct {
	prefix string
	typ    string
	decode func([]byte) (any, string, error) // object and its app
}{
	{store.AppsPrefix, "app", decodeAs(func(a api.App) string { return a.Name })},
	{store.ReleasesPrefix, "release", decodeAs(func(r api.Release) string { return r.App })},
	{store.FormationsPrefix, "scale", decodeAs(func(f api.Formation) string { return f.App })},
	{store.DeploymentsPrefix, "deployment", decodeAs(func(d api.Deployment) string { return d.App })},
	{store.JobStatusPrefix, "job", decodeAs(func(s api.JobStatus) string { return "" })},
}

func decodeAs[T any](app func(T) string) func([]byte) (any, string, error) {
	return func(b []byte) (any, string, error) {
		var v T
		if err := json.Unmarshal(b, &v); err != nil {
			return nil, "", err
		}
		return v, app(v), nil
	}
}

// heartbeat keeps idle event streams alive through proxies.
const heartbeat = 15 * time.Second

// events streams changes as server-sent events. It is one etcd watch from
// the revision the client last saw, so a client that reconnects with
// Last-Event-ID misses nothing and sees nothing twice, across servers
// (the revision is the cluster's, not this server's). Only when etcd has
// compacted the history it asks for does a client get a "gap" event.
func (c *Controller) events(w http.ResponseWriter, r *http.Request) error {
	app := r.URL.Query().Get("app")
	// The app need not exist: a client may wait for it to be created.
	if app != "" && api.ValidateAppName(app) != nil {
		return invalid("%q is not an app name", app)
	}
	fromRev, skipIdx, err := parseEventID(r.Header.Get("Last-Event-ID"))
	if err != nil {
		return err
	}
	// ?since=TIME replays the history the store still keeps (an hour)
	// from that time on: changes up to now whose objects are older are
	// left out, and the stream goes on live from there.
	var since time.Time
	var headRev int64
	if v := r.URL.Query().Get("since"); v != "" && fromRev == 0 {
		if since, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return badRequest("since %q is not a time (RFC 3339, like 2026-01-02T15:04:05Z)", v)
		}
		resp, err := c.Client.Get(r.Context(), store.Root, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			return err
		}
		headRev, fromRev = resp.Header.Revision, 1
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		return fmt.Errorf("events: response cannot be flushed")
	}
	opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithPrevKV()}
	if fromRev > 0 {
		opts = append(opts, clientv3.WithRev(fromRev))
	}
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(r.Context()))
	defer cancel()
	// A watcher of its own, so that a replay can start over on another.
	watcher := clientv3.NewWatcher(c.Client)
	defer func() { watcher.Close() }()
	wch := watcher.Watch(ctx, store.Root, opts...)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": connected\n\n")
	flusher.Flush()
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			fmt.Fprint(w, ": keep-alive\n\n")
			flusher.Flush()
		case resp, ok := <-wch:
			if !ok {
				return nil
			}
			if resp.CompactRevision > 0 && !since.IsZero() && fromRev == 1 {
				// The replay asked for all the history there is: start it
				// at the oldest revision kept.
				watcher.Close()
				fromRev = resp.CompactRevision
				watcher = clientv3.NewWatcher(c.Client)
				wch = watcher.Watch(ctx, store.Root, clientv3.WithPrefix(), clientv3.WithPrevKV(), clientv3.WithRev(fromRev))
				continue
			}
			if resp.CompactRevision > 0 || resp.Err() == rpctypes.ErrCompacted {
				// The history asked for is gone: say so, and go on from
				// the oldest revision still kept.
				writeEvent(w, api.Event{ID: eventID(resp.CompactRevision, 0), Type: "gap", Time: time.Now().UTC()})
				flusher.Flush()
				return nil
			}
			if err := resp.Err(); err != nil {
				return nil
			}
			// The index counts the changes within one revision, which
			// etcd never splits across responses.
			lastRev, i := int64(0), 0
			for _, ev := range resp.Events {
				rev := ev.Kv.ModRevision
				if rev != lastRev {
					lastRev, i = rev, 0
				} else {
					i++
				}
				if rev == fromRev && i <= skipIdx {
					continue
				}
				e, ok := c.toEvent(ev, i)
				if !ok || (app != "" && e.App != app) {
					continue
				}
				if rev <= headRev {
					// History: when it happened is the object's own time.
					at, known := objectTime(e.Object)
					if !known || at.Before(since) {
						continue
					}
					e.Time = at
				}
				writeEvent(w, e)
			}
			flusher.Flush()
		}
	}
}

// toEvent turns a store change into an event, if it is one clients see.
func (c *Controller) toEvent(ev *clientv3.Event, idx int) (api.Event, bool) {
	key := string(ev.Kv.Key)
	for _, k := range eventKinds {
		if !strings.HasPrefix(key, k.prefix) {
			continue
		}
		e := api.Event{ID: eventID(ev.Kv.ModRevision, idx), Type: k.typ, Time: time.Now().UTC()}
		raw := ev.Kv.Value
		switch {
		case ev.Type == mvccpb.DELETE:
			e.Op = "delete"
			if ev.PrevKv == nil {
				return e, false
			}
			raw = ev.PrevKv.Value
		case ev.IsCreate():
			e.Op = "create"
		default:
			e.Op = "update"
		}
		obj, app, err := k.decode(raw)
		if err != nil {
			return e, false
		}
		if st, ok := obj.(api.JobStatus); ok {
			job, found := c.jobs.Get(store.JobsPrefix + st.HostID + "/" + st.ID)
			if !found {
				return e, false
			}
			app = job.Value.App
		}
		e.App = app
		if e.Op != "delete" {
			e.Object = obj
		}
		return e, app != ""
	}
	return api.Event{}, false
}

func writeEvent(w http.ResponseWriter, e api.Event) {
	b, _ := json.Marshal(e)
	fmt.Fprintf(w, "id: %s\nevent: %s\ndata: %s\n\n", e.ID, e.Type, b)
}

// eventID is "<revision>-<index>": the index tells apart the changes of
// one transaction.
func eventID(rev int64, idx int) string { return fmt.Sprintf("%d-%d", rev, idx) }

// parseEventID reads a Last-Event-ID: the stream resumes at its revision,
// skipping the changes of that revision up to and including its index.
func parseEventID(s string) (int64, int, error) {
	if s == "" {
		return 0, -1, nil
	}
	revS, idxS, _ := strings.Cut(s, "-")
	rev, err1 := strconv.ParseInt(revS, 10, 64)
	idx, err2 := strconv.Atoi(idxS)
	if err1 != nil || err2 != nil || rev < 1 || idx < 0 {
		return 0, 0, badRequest("%q is not an event id (pier events prints them, like 1234-0)", s)
	}
	return rev, idx, nil
}

// objectTime is when a changed object last changed, by its own record.
func objectTime(obj any) (time.Time, bool) {
	var t time.Time
	switch o := obj.(type) {
	case api.App:
		t = o.UpdatedAt
	case api.Release:
		t = o.CreatedAt
	case api.Formation:
		t = o.UpdatedAt
	case api.Deployment:
		t = o.UpdatedAt
	case api.JobStatus:
		t = o.UpdatedAt
	}
	return t, !t.IsZero()
}
