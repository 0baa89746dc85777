package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/pierpaas/pier/discovery"
)

// regTimes measures, through the router at addr, how long a new instance
// takes to get its first request and how long a removed one keeps
// getting them. A client sends requests for lateDomain one after another
// (a few microseconds apart) the whole time; the route's service has no
// instance between samples, so the router answers 503 then. Each sample:
//
//   - up: from calling Register to the moment the instance's backend
//     starts serving its first request (stamped by the backend);
//   - down: from calling Close on the registration (its lease revoked) to
//     the first 503 the client gets for a request sent after that call.
func regTimes(ctx context.Context, reg *discovery.Registry, addr string, samples int) (up, down []time.Duration, err error) {
	var firstServed atomic.Pointer[chan time.Time]
	late, err := startBackends(1, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ch := firstServed.Swap(nil); ch != nil {
			*ch <- time.Now()
		}
		fixed(w, r)
	}))
	if err != nil {
		return nil, nil, err
	}
	defer late.close()

	// A 503 whose request was sent after `after` is reported on ch.
	type want struct {
		after time.Time
		ch    chan time.Time
	}
	var wantGone atomic.Pointer[want]
	pctx, stop := context.WithCancel(ctx)
	pollerDone := make(chan error, 1)
	go func() {
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
		for pctx.Err() == nil {
			req, _ := http.NewRequestWithContext(pctx, "GET", "http://"+addr+"/", nil)
			req.Host = lateDomain
			sent := time.Now()
			resp, err := c.Do(req)
			if err != nil {
				if pctx.Err() == nil {
					pollerDone <- err
				}
				break
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable {
				if w := wantGone.Load(); w != nil && sent.After(w.after) && wantGone.CompareAndSwap(w, nil) {
					w.ch <- time.Now()
				}
			}
		}
		close(pollerDone)
	}()
	defer func() {
		stop()
		<-pollerDone
	}()

	wait := func(ch chan time.Time, what string) (time.Time, error) {
		select {
		case t := <-ch:
			return t, nil
		case err := <-pollerDone:
			return time.Time{}, fmt.Errorf("client of %s: %v", lateDomain, err)
		case <-time.After(10 * time.Second):
			return time.Time{}, fmt.Errorf("%s: nothing after 10s", what)
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}

	// The router's watch of the service starts with its first request:
	// wait for a 503 before the first sample.
	gone := make(chan time.Time, 1)
	wantGone.Store(&want{after: time.Now(), ch: gone})
	if _, err := wait(gone, "first 503 of "+lateDomain); err != nil {
		return nil, nil, err
	}
	for i := range samples {
		served := make(chan time.Time, 1)
		firstServed.Store(&served)
		start := time.Now()
		g, err := reg.Register(ctx, lateService, discovery.Instance{
			ID: fmt.Sprintf("late-%d", i), Addr: late.addrs[0], Proto: "http"})
		if err != nil {
			return nil, nil, err
		}
		t, err := wait(served, "a request to a new instance")
		if err != nil {
			g.Close()
			return nil, nil, err
		}
		up = append(up, t.Sub(start))

		gone := make(chan time.Time, 1)
		start = time.Now()
		wantGone.Store(&want{after: start, ch: gone})
		if err := g.Close(); err != nil {
			return nil, nil, err
		}
		if t, err = wait(gone, "a 503 after the instance's removal"); err != nil {
			return nil, nil, err
		}
		down = append(down, t.Sub(start))
	}
	return up, down, nil
}
