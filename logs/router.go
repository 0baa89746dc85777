package logs

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/discovery"
	"github.com/pierpaas/pier/store"
)

// RouterLinesConfig configures RouterLines.
type RouterLinesConfig struct {
	// Client reads the routes, to tell which app a request was for.
	Client *clientv3.Client
	// Leader and HTTP reach the active aggregator (see ShipperConfig). A
	// nil Leader follows discovery through Client; a nil HTTP is made
	// with TLS, the node's client certificate.
	Leader func() (string, <-chan struct{})
	HTTP   *http.Client
	TLS    *tls.Config
	// MaxQueue bounds the access lines waiting to be sent (10,000);
	// beyond it they are dropped and counted.
	MaxQueue int
	Log      *slog.Logger
}

// RouterLines turns a router's access log (router.Config.AccessLog: one
// JSON object per request) into platform lines of the apps' streams, as
// Heroku's heroku[router] lines:
//
//	pier[router]: at=info method=GET path="/x" host=hello.example.com request_id=… fwd="203.0.113.7" backend=10.0.0.5:41000 service=1.234ms status=200 bytes=1234
//
// Write only queues (the router calls it on every request), and a
// goroutine sends the lines in batches; when the aggregator is slow or
// gone, lines beyond MaxQueue are dropped and counted.
type RouterLines struct {
	cfg    RouterLinesConfig
	routes *store.Cache[api.Route]
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	queue   [][]byte
	dropped uint64
	wake    chan struct{}
}

// NewRouterLines starts sending; Close stops.
func NewRouterLines(cfg RouterLinesConfig) *RouterLines {
	if cfg.MaxQueue <= 0 {
		cfg.MaxQueue = 10000
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	if cfg.Leader == nil {
		loc := NewLocator(discovery.New(cfg.Client, discovery.WithLogger(cfg.Log)), cfg.Log)
		go loc.Run(ctx)
		cfg.Leader = loc.Leader
	}
	if cfg.HTTP == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = cfg.TLS
		tr.ForceAttemptHTTP2 = true
		cfg.HTTP = &http.Client{Transport: tr}
	}
	rl := &RouterLines{cfg: cfg, routes: store.NewCache[api.Route](cfg.Client, store.RoutesPrefix),
		cancel: cancel, done: make(chan struct{}), wake: make(chan struct{}, 1)}
	go rl.routes.Run(ctx)
	go func() {
		defer close(rl.done)
		rl.run(ctx)
	}()
	return rl
}

// Write queues one access line (the router writes one per call).
func (rl *RouterLines) Write(p []byte) (int, error) {
	rl.mu.Lock()
	if len(rl.queue) >= rl.cfg.MaxQueue {
		rl.dropped++
	} else {
		rl.queue = append(rl.queue, append([]byte(nil), p...))
	}
	rl.mu.Unlock()
	select {
	case rl.wake <- struct{}{}:
	default:
	}
	return len(p), nil
}

// Dropped is how many access lines were dropped.
func (rl *RouterLines) Dropped() uint64 {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	return rl.dropped
}

// Close stops sending.
func (rl *RouterLines) Close() error {
	rl.cancel()
	<-rl.done
	return nil
}

// accessLine is what the router logs of a request (router/accesslog.go).
type accessLine struct {
	Time       time.Time `json:"time"`
	RequestID  string    `json:"request_id"`
	Method     string    `json:"method"`
	Host       string    `json:"host"`
	Path       string    `json:"path"`
	Status     int       `json:"status"`
	Bytes      int64     `json:"bytes"`
	DurationMS float64   `json:"duration_ms"`
	Route      string    `json:"route"`
	Backend    string    `json:"backend"`
	ClientIP   string    `json:"client_ip"`
}

// appOf tells which app a request was for: the app of its route's service
// ("web.hello"), or for an app's automatic route ("auto-hello") the first
// label of the host it answers on.
func (rl *RouterLines) appOf(a *accessLine) string {
	if a.Route == "" {
		return ""
	}
	if it, ok := rl.routes.Get(store.RoutesPrefix + a.Route); ok {
		if _, app, ok := strings.Cut(it.Value.Service, "."); ok && !strings.Contains(app, ".") {
			return app
		}
		return ""
	}
	if strings.HasPrefix(a.Route, "auto-") {
		host := a.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		app, _, _ := strings.Cut(host, ".")
		if api.ValidateAppName(app) == nil {
			return app
		}
	}
	return ""
}

// RouterText formats an access line Heroku's way.
func routerText(a *accessLine) string {
	at := "info"
	if a.Status >= 500 {
		at = "error"
	}
	return fmt.Sprintf("at=%s method=%s path=%q host=%s request_id=%s fwd=%q backend=%s service=%.3fms status=%d bytes=%d",
		at, a.Method, a.Path, a.Host, a.RequestID, a.ClientIP, a.Backend, a.DurationMS, a.Status, a.Bytes)
}

func (rl *RouterLines) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-rl.wake:
		}
		rl.mu.Lock()
		q, dropped := rl.queue, rl.dropped
		rl.queue = nil
		rl.mu.Unlock()
		lines := make([]api.AppLogLine, 0, len(q))
		for _, b := range q {
			var a accessLine
			if json.Unmarshal(b, &a) != nil {
				continue
			}
			if app := rl.appOf(&a); app != "" {
				lines = append(lines, api.AppLogLine{Time: a.Time, App: app, Source: api.LogSourcePier, Process: "router", Text: routerText(&a)})
			}
		}
		if len(lines) == 0 {
			continue
		}
		if err := rl.send(ctx, lines); err != nil {
			rl.mu.Lock()
			rl.dropped += uint64(len(lines))
			rl.mu.Unlock()
			rl.cfg.Log.Debug("router access lines not sent", "lines", len(lines), "dropped_so_far", dropped, "err", err)
			select { // do not hammer an aggregator that is not there
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}
}

func (rl *RouterLines) send(ctx context.Context, lines []api.AppLogLine) error {
	addr, _ := rl.cfg.Leader()
	if addr == "" {
		return ErrInactive
	}
	b, err := json.Marshal(lines)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+addr+"/v1/logs/platform", strings.NewReader(string(b)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := rl.cfg.HTTP.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("logs: platform lines: %s", resp.Status)
	}
	return nil
}
