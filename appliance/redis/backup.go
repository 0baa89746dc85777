package redis

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pierpaas/pier/api"
)

// Backups are RDB snapshots of the whole server (Redis has one keyspace,
// which every attached app shares): what redis-cli --rdb fetches over
// the replication protocol, and what any redis-server 7 loads from its
// dir.

// RestoreCommand is the pier subcommand a restore job runs.
const RestoreCommand = "redis-restore"

// restoreAddrEnv carries the member's address to the restore job.
const restoreAddrEnv = "PIER_REDIS_RESTORE_ADDR"

// Dump runs redis-cli --rdb - as the default user: the snapshot on its
// stdout. database is ignored: the snapshot holds every key.
func (p Provider) Dump(addr string, sec *api.ResourceSecret, database string) ([]string, map[string]string) {
	args, env := p.Client(addr, sec, nil, "")
	return append(args, "--rdb", "-"), env
}

// Restore runs `pier redis-restore`, which loads the snapshot on its
// stdin into the member: the snapshot's keys replace those of the same
// names, the others are left alone.
func (p Provider) Restore(addr string, sec *api.ResourceSecret, a *api.Attachment) ([]string, map[string]string) {
	_, env := p.Client(addr, sec, nil, "")
	env[restoreAddrEnv] = addr
	return []string{api.PierBinary, RestoreCommand}, env
}

// RunRestore writes the snapshot on stdin to a temporary dir, starts a
// private redis-server on it, and copies every key it holds to the
// member with MIGRATE ... COPY REPLACE (dumps and loads in Redis's own
// serialization: every type, TTLs kept), a batch of keys at a time.
func RunRestore(ctx context.Context, stdin io.Reader) error {
	addr, pw := os.Getenv(restoreAddrEnv), os.Getenv("REDISCLI_AUTH")
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("redis restore: $%s: %v", restoreAddrEnv, err)
	}
	dir, err := os.MkdirTemp("", "pier-redis-restore-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	f, err := os.Create(filepath.Join(dir, "dump.rdb"))
	if err != nil {
		return err
	}
	n, err := io.Copy(f, stdin)
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		return fmt.Errorf("redis restore: write the snapshot: %w", err)
	}
	fmt.Fprintf(os.Stderr, "snapshot of %d bytes received\n", n)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	local := ln.Addr().String()
	ln.Close()
	_, lport, _ := net.SplitHostPort(local)
	srv := exec.CommandContext(ctx, ServerBin, "--port", lport, "--bind", "127.0.0.1", "--dir", dir,
		"--dbfilename", "dump.rdb", "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", "")
	srv.Stdout, srv.Stderr = os.Stderr, os.Stderr
	if err := srv.Start(); err != nil {
		return err
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()

	// The private server answers -LOADING until the snapshot is in.
	var c *conn
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if c == nil {
			if nc, err := net.DialTimeout("tcp", local, time.Second); err == nil {
				c = newConn(nc)
			}
		}
		if c != nil {
			if _, err = c.do(ctx, "PING"); err == nil {
				break
			}
			var er errReply
			if !errors.As(err, &er) {
				c.Close()
				c = nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis restore: the snapshot did not load: %v", err)
		}
	}
	defer c.Close()

	total := 0
	cursor := "0"
	for {
		var keys []string
		cursor, keys, err = c.scan(ctx, cursor)
		if err != nil {
			return fmt.Errorf("redis restore: scan: %w", err)
		}
		if len(keys) > 0 {
			args := []string{"MIGRATE", host, port, "", "0", "60000", "COPY", "REPLACE", "AUTH2", AdminUser, pw, "KEYS"}
			if _, err := c.do(ctx, append(args, keys...)...); err != nil {
				return fmt.Errorf("redis restore: migrate to %s: %w", addr, err)
			}
			total += len(keys)
		}
		if cursor == "0" {
			break
		}
	}
	fmt.Fprintf(os.Stderr, "%d keys restored\n", total)
	return nil
}

func newConn(c net.Conn) *conn { return &conn{c: c, r: bufio.NewReader(c)} }

// scan is one SCAN step: the next cursor and the keys of this batch.
func (c *conn) scan(ctx context.Context, cursor string) (string, []string, error) {
	deadline := time.Now().Add(dialTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.c.SetDeadline(deadline)
	args := []string{"SCAN", cursor, "COUNT", "500"}
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.c.Write([]byte(b.String())); err != nil {
		return "", nil, err
	}
	if err := c.header('*', 2); err != nil {
		return "", nil, err
	}
	next, err := c.reply()
	if err != nil {
		return "", nil, err
	}
	line, err := c.r.ReadString('\n')
	if err != nil {
		return "", nil, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if !strings.HasPrefix(line, "*") {
		return "", nil, fmt.Errorf("redis: unexpected SCAN reply %q", line)
	}
	n, err := strconv.Atoi(line[1:])
	if err != nil {
		return "", nil, err
	}
	keys := make([]string, 0, max(n, 0))
	for range n {
		k, err := c.reply()
		if err != nil {
			return "", nil, err
		}
		keys = append(keys, k)
	}
	return next, keys, nil
}

// header reads an aggregate's header line and checks its length.
func (c *conn) header(kind byte, n int) error {
	line, err := c.r.ReadString('\n')
	if err != nil {
		return err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" || line[0] != kind || line[1:] != strconv.Itoa(n) {
		if strings.HasPrefix(line, "-") {
			return errReply(line[1:])
		}
		return fmt.Errorf("redis: unexpected reply %q", line)
	}
	return nil
}
