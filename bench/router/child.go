package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/pierpaas/pier/internal/pki"
	"github.com/pierpaas/pier/router"
	"github.com/pierpaas/pier/store"
)

// childEnv marks this program re-executed as the router under test. The
// router runs in a process of its own so that its memory and CPU are its
// own, not shared with etcd and the backends, which stay in the benchmark
// process.
const childEnv = "PIER_BENCH_ROUTER_CHILD"

// startRouterChild runs this program again as a router reading routes from
// the store at endpoint with the client credentials in credsDir, and
// returns the process and the address the router listens on.
//
// bin, when not "", is another build of this program to run instead (the
// -baseline router).
func startRouterChild(ctx context.Context, bin, logPath, endpoint, credsDir, cpuProfile string) (*proc, string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	if bin != "" {
		self = bin
	}
	if cpuProfile != "" {
		if cpuProfile, err = filepath.Abs(cpuProfile); err != nil {
			return nil, "", err
		}
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), childEnv+"=1", "PIER_BENCH_ETCD="+endpoint, "PIER_BENCH_CREDS="+credsDir,
		"PIER_BENCH_CPUPROFILE="+cpuProfile)
	// The child exits when its stdin closes: when this process dies, however
	// it dies. cmd keeps the pipe's write end open until then.
	if _, err := cmd.StdinPipe(); err != nil {
		return nil, "", err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	name := "pier router"
	if bin != "" {
		name = "baseline pier router"
	}
	p, err := startProc(name, logPath, cmd)
	if err != nil {
		return nil, "", err
	}
	addr := make(chan string, 1)
	go func() {
		br := bufio.NewReader(out)
		line, _ := br.ReadString('\n')
		addr <- strings.TrimPrefix(strings.TrimSpace(line), "listening ")
		io.Copy(io.Discard, br)
	}()
	select {
	case a := <-addr:
		if a == "" {
			return p, "", fmt.Errorf("router child did not start:\n%s", p.tail(20))
		}
		return p, a, nil
	case <-p.done:
		return p, "", fmt.Errorf("router child exited: %v\n%s", p.err, p.tail(20))
	case <-time.After(60 * time.Second):
		return p, "", fmt.Errorf("router child not listening after 60s:\n%s", p.tail(20))
	case <-ctx.Done():
		return p, "", ctx.Err()
	}
}

// routerChild is main in the re-executed router process: it starts the
// router, says where it listens on stdout, and serves until its stdin
// closes or it gets SIGTERM.
func routerChild() int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "router child:", err)
		return 1
	}
	creds, err := pki.LoadCredentials(os.Getenv("PIER_BENCH_CREDS"))
	if err != nil {
		return fail(err)
	}
	cli, err := store.Dial([]string{os.Getenv("PIER_BENCH_ETCD")}, creds)
	if err != nil {
		return fail(err)
	}
	defer cli.Close()
	// Warnings would be one line per 503 while the registration latency is
	// measured (the service has no instance between samples); errors only.
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	srv, err := router.Start(ctx, router.ServerConfig{
		Client:          cli,
		HTTPAddr:        "127.0.0.1:0",
		Log:             log,
		ShutdownTimeout: 2 * time.Second,
	})
	cancel()
	if err != nil {
		return fail(err)
	}
	defer srv.Close()
	if path := os.Getenv("PIER_BENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return fail(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fail(err)
		}
		defer pprof.StopCPUProfile()
	}
	fmt.Printf("listening %s\n", srv.Addr())

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	eof := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(eof)
	}()
	select {
	case <-sigs:
	case <-eof:
	case <-srv.Done():
		return fail(fmt.Errorf("listener stopped: %v", srv.Err()))
	}
	return 0
}
