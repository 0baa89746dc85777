package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/internal/pki"
	"github.com/pierpaas/pier/store"
)

const (
	benchDomain  = "bench.local"
	benchService = "bench-web"
	// The registration latency is measured on a service of its own, with
	// its own route, that has no instance between samples.
	lateDomain  = "late.bench.local"
	lateService = "bench-late"
)

// body is what every backend answers: small and fixed, so that the
// figures measure the proxies, not the backends.
var body = []byte("Hello from a pier benchmark backend.\n")

// backends are plain Go HTTP servers on loopback, as cheap as a handler
// can be: a fixed body, its length set, no logging, no allocation of our
// own per request.
type backends struct {
	servers []*http.Server
	addrs   []string
}

func startBackends(n int, h http.Handler) (*backends, error) {
	return startBackendsOn(n, h, loopbackListener)
}

func loopbackListener() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

func startBackendsOn(n int, h http.Handler, listen func() (net.Listener, error)) (*backends, error) {
	if h == nil {
		h = http.HandlerFunc(fixed)
	}
	b := &backends{}
	for range n {
		ln, err := listen()
		if err != nil {
			b.close()
			return nil, err
		}
		s := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second}
		go s.Serve(ln)
		b.servers = append(b.servers, s)
		b.addrs = append(b.addrs, ln.Addr().String())
	}
	return b, nil
}

var (
	contentLength = []string{strconv.Itoa(len(body))}
	contentType   = []string{"text/plain; charset=utf-8"}
)

func fixed(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h["Content-Length"] = contentLength
	h["Content-Type"] = contentType
	w.Write(body)
}

func (b *backends) close() {
	for _, s := range b.servers {
		s.Close()
	}
}

// putRoute stores an http route from domain to service, as the controller
// would.
func putRoute(ctx context.Context, cli *clientv3.Client, id, domain, service string) error {
	r := api.Route{ID: id, Type: api.RouteHTTP, Domain: domain, Service: service}
	if err := r.Validate(); err != nil {
		return err
	}
	_, err := store.Put(ctx, cli, store.RoutesPrefix+id, r)
	return err
}

// etcdMember is one embedded etcd member secured by a throwaway CA, as
// store/storetest (and bench/scheduler) start it, with client credentials
// on disk for the router child.
type etcdMember struct {
	cli      *clientv3.Client
	endpoint string
	credsDir string
	close    func()
}

func startEtcd(ctx context.Context, dir string) (*etcdMember, error) {
	ca, err := pki.NewCA("bench")
	if err != nil {
		return nil, err
	}
	serverDir, clientDir := filepath.Join(dir, "server"), filepath.Join(dir, "client")
	if err := ca.Issue(serverDir, pki.Request{CommonName: "m0", Role: "server",
		DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}); err != nil {
		return nil, err
	}
	if err := ca.Issue(clientDir, pki.Request{CommonName: "bench", Role: "client"}); err != nil {
		return nil, err
	}
	serverCreds, err := pki.LoadCredentials(serverDir)
	if err != nil {
		return nil, err
	}
	clientCreds, err := pki.LoadCredentials(clientDir)
	if err != nil {
		return nil, err
	}
	clientURL, peerURL := "https://"+freeAddr(), "https://"+freeAddr()
	m, err := store.StartMember(ctx, store.MemberConfig{Name: "m0", DataDir: filepath.Join(dir, "etcd"),
		Creds: serverCreds, ClientURL: clientURL, PeerURL: peerURL})
	if err != nil {
		return nil, err
	}
	cli, err := store.Dial([]string{clientURL}, clientCreds)
	if err != nil {
		m.Close()
		return nil, err
	}
	var once sync.Once
	return &etcdMember{cli: cli, endpoint: clientURL, credsDir: clientDir,
		close: func() { once.Do(func() { cli.Close(); m.Close() }) }}, nil
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitServing waits until a GET of http://addr/ with Host host answers
// 200 with the backends' body.
func waitServing(ctx context.Context, addr, host string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c := &http.Client{Timeout: 2 * time.Second}
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/", nil)
		req.Host = host
		resp, err := c.Do(req)
		if err == nil {
			buf := make([]byte, len(body)+1)
			n, _ := readFull(resp, buf)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && string(buf[:n]) == string(body) {
				return nil
			}
			err = fmt.Errorf("status %d, body %q", resp.StatusCode, buf[:n])
		}
		last = err
		select {
		case <-ctx.Done():
			if errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
				return fmt.Errorf("%s (Host %s) not serving after %s: %v", addr, host, timeout, last)
			}
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func readFull(resp *http.Response, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := resp.Body.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// mkdirs creates dir and the named subdirectories.
func mkdirs(dir string, subs ...string) error {
	for _, s := range append([]string{""}, subs...) {
		if err := os.MkdirAll(filepath.Join(dir, s), 0o755); err != nil {
			return err
		}
	}
	return nil
}
