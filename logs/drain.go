package logs

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/store"
)

// DrainsPrefix is where the controller keeps drains: <app>/<id>.
const DrainsPrefix = "/pier/drains/"

// DefaultDrainQueueBytes bounds the lines waiting for one drain.
const DefaultDrainQueueBytes = 1 << 20

// DrainsConfig configures the drains.
type DrainsConfig struct {
	// Client, if set, is where the drains are read (DrainsPrefix) by Run.
	Client *clientv3.Client
	// TLS is the base config of syslog+tls drains (RootCAs: nil trusts
	// the system's); the server name comes from the drain URL.
	TLS *tls.Config
	// QueueBytes bounds each drain's queue (DefaultDrainQueueBytes).
	QueueBytes int
	Log        *slog.Logger
	Registry   prometheus.Registerer
}

// Drains forwards app lines to the apps' syslog drains. Each drain has a
// bounded queue and a connection of its own that reconnects with
// backoff; a drain that is down or slow loses lines (counted, and said in
// a notice once it is back) rather than hold anything else up.
type Drains struct {
	cfg     DrainsConfig
	sent    *prometheus.CounterVec
	dropped *prometheus.CounterVec

	mu    sync.Mutex
	byApp map[string][]*drain
	all   map[string]*drain // by app/id
}

// NewDrains returns drains with none configured.
func NewDrains(cfg DrainsConfig) *Drains {
	if cfg.QueueBytes <= 0 {
		cfg.QueueBytes = DefaultDrainQueueBytes
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	d := &Drains{cfg: cfg, byApp: map[string][]*drain{}, all: map[string]*drain{},
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pier_logs_drain_lines_sent_total", Help: "Log lines written to syslog drains, by app.",
		}, []string{"app"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pier_logs_drain_lines_dropped_total", Help: "Log lines dropped for syslog drains that were down or slow, by app.",
		}, []string{"app"}),
	}
	register(cfg.Registry, d.sent, d.dropped)
	return d
}

// Forward queues a line for its app's drains; it never blocks.
func (d *Drains) Forward(l *api.AppLogLine) {
	d.mu.Lock()
	ds := d.byApp[l.App]
	d.mu.Unlock()
	if len(ds) == 0 {
		return
	}
	msg := frame(SyslogMessage(l))
	for _, dr := range ds {
		dr.enqueue(msg)
	}
}

// Set makes the drains these: new ones start, removed ones stop.
func (d *Drains) Set(ctx context.Context, drains []api.Drain) {
	d.mu.Lock()
	defer d.mu.Unlock()
	want := map[string]api.Drain{}
	for _, dr := range drains {
		want[dr.App+"/"+dr.ID] = dr
	}
	for k, dr := range d.all {
		if w, ok := want[k]; !ok || w.URL != dr.url {
			dr.stop()
			delete(d.all, k)
		}
	}
	for k, w := range want {
		if d.all[k] != nil {
			continue
		}
		scheme, addr, err := api.ParseDrainURL(w.URL)
		if err != nil {
			d.cfg.Log.Warn("ignoring a bad drain", "app", w.App, "drain", w.ID, "err", err)
			continue
		}
		dr := &drain{d: d, app: w.App, id: w.ID, url: w.URL, scheme: scheme, addr: addr,
			wake: make(chan struct{}, 1)}
		dctx, cancel := context.WithCancel(ctx)
		dr.cancel = cancel
		d.all[k] = dr
		go dr.run(dctx)
	}
	d.byApp = map[string][]*drain{}
	for _, dr := range d.all {
		d.byApp[dr.app] = append(d.byApp[dr.app], dr)
	}
}

// Run keeps the drains as the store says until ctx ends, then stops them.
func (d *Drains) Run(ctx context.Context) {
	defer d.Set(ctx, nil)
	cache := store.NewCache[api.Drain](d.cfg.Client, DrainsPrefix)
	changed, cancel := cache.Subscribe()
	defer cancel()
	go cache.Run(ctx)
	select {
	case <-cache.Synced():
	case <-ctx.Done():
		return
	}
	for {
		var all []api.Drain
		for _, it := range cache.List() {
			all = append(all, it.Value)
		}
		d.Set(ctx, all)
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}

// drain is one syslog destination.
type drain struct {
	d                          *Drains
	app, id, url, scheme, addr string
	cancel                     context.CancelFunc
	wake                       chan struct{}

	mu      sync.Mutex
	queue   [][]byte
	bytes   int
	dropped uint64 // since the last notice
}

func (dr *drain) stop() {
	dr.cancel()
}

func (dr *drain) enqueue(msg []byte) {
	dr.mu.Lock()
	if dr.bytes+len(msg) > dr.d.cfg.QueueBytes {
		dr.dropped++
		dr.mu.Unlock()
		dr.d.dropped.WithLabelValues(dr.app).Inc()
		return
	}
	dr.queue = append(dr.queue, msg)
	dr.bytes += len(msg)
	dr.mu.Unlock()
	select {
	case dr.wake <- struct{}{}:
	default:
	}
}

// take empties the queue, with a notice first of what was dropped.
func (dr *drain) take() ([][]byte, uint64) {
	dr.mu.Lock()
	defer dr.mu.Unlock()
	q, dropped := dr.queue, dr.dropped
	dr.queue, dr.bytes, dr.dropped = nil, 0, 0
	return q, dropped
}

func (dr *drain) dial(ctx context.Context) (net.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if dr.scheme == "syslog+tls" {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if dr.d.cfg.TLS != nil {
			cfg = dr.d.cfg.TLS.Clone()
		}
		host, _, _ := net.SplitHostPort(dr.addr)
		cfg.ServerName = host
		return (&tls.Dialer{Config: cfg}).DialContext(dctx, "tcp", dr.addr)
	}
	var nd net.Dialer
	return nd.DialContext(dctx, "tcp", dr.addr)
}

// run connects and writes until ctx ends, reconnecting with backoff.
func (dr *drain) run(ctx context.Context) {
	log := dr.d.cfg.Log.With("app", dr.app, "drain", dr.id)
	backoff := time.Duration(0)
	for ctx.Err() == nil {
		conn, err := dr.dial(ctx)
		if err != nil {
			backoff = min(max(2*backoff, 500*time.Millisecond), 30*time.Second)
			log.Debug("drain unreachable", "url", dr.url, "err", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
		err = dr.write(ctx, conn)
		conn.Close()
		if ctx.Err() == nil {
			log.Debug("drain connection lost", "url", dr.url, "err", err)
		}
	}
}

// write sends queued lines on conn until it fails or ctx ends. Lines of a
// failed write are lost and counted: resending them could duplicate
// lines the drain did take.
func (dr *drain) write(ctx context.Context, conn net.Conn) error {
	connDone := make(chan struct{})
	defer close(connDone)
	go func() {
		select {
		case <-ctx.Done():
			conn.SetDeadline(time.Now()) // unblock a write in progress
		case <-connDone:
		}
	}()
	bw := bufio.NewWriterSize(conn, 64<<10)
	select { // lines queued while disconnected go out at once
	case dr.wake <- struct{}{}:
	default:
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-dr.wake:
		}
		q, dropped := dr.take()
		if dropped > 0 {
			notice := api.AppLogLine{Time: time.Now(), App: dr.app, Source: api.LogSourcePier, Process: "logs",
				Text: fmt.Sprintf("Error L10 (output buffer overflow): %d lines dropped: this drain was unreachable or too slow", dropped)}
			q = append([][]byte{frame(SyslogMessage(&notice))}, q...)
		}
		conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
		for i, msg := range q {
			if _, err := bw.Write(msg); err != nil {
				dr.lost(len(q) - i)
				return err
			}
		}
		if err := bw.Flush(); err != nil {
			dr.lost(len(q))
			return err
		}
		dr.d.sent.WithLabelValues(dr.app).Add(float64(len(q)))
	}
}

func (dr *drain) lost(n int) {
	dr.mu.Lock()
	dr.dropped += uint64(n)
	dr.mu.Unlock()
	dr.d.dropped.WithLabelValues(dr.app).Add(float64(n))
}
