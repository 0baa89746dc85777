package redis

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// conn is the least of a Redis client the controller needs: commands as
// arrays of bulk strings, replies read back as text. Arguments are never
// spliced into a command line, so no value can become another command.
type conn struct {
	c net.Conn
	r *bufio.Reader
}

// dialTimeout bounds a connection and each command.
const dialTimeout = 5 * time.Second

func dial(ctx context.Context, addr, user, password string) (*conn, error) {
	d := net.Dialer{Timeout: dialTimeout}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	rc := &conn{c: c, r: bufio.NewReader(c)}
	if _, err := rc.do(ctx, "AUTH", user, password); err != nil {
		c.Close()
		return nil, fmt.Errorf("redis: auth as %s: %w", user, err)
	}
	return rc, nil
}

func (c *conn) Close() error { return c.c.Close() }

// do sends one command and reads its reply: a status, an integer or a
// bulk string as text, an array as its elements joined by newlines.
func (c *conn) do(ctx context.Context, args ...string) (string, error) {
	deadline := time.Now().Add(dialTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.c.SetDeadline(deadline)
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.c.Write([]byte(b.String())); err != nil {
		return "", err
	}
	return c.reply()
}

// errReply is an error the server answered.
type errReply string

func (e errReply) Error() string { return string(e) }

func (c *conn) reply() (string, error) {
	line, err := c.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", errors.New("redis: empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", errReply(line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", err // -1: nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(c.r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", err
		}
		parts := make([]string, 0, max(n, 0))
		for range n {
			s, err := c.reply()
			if err != nil {
				return "", err
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, "\n"), nil
	}
	return "", fmt.Errorf("redis: unexpected reply %q", line)
}
