package health

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Kinds of check.
const (
	KindTCP  = "tcp"  // the port accepts a connection
	KindHTTP = "http" // GET Path answers with the expected status
)

// Defaults that WithDefaults fills in.
const (
	DefaultInterval  = 5 * time.Second
	DefaultTimeout   = 2 * time.Second
	DefaultThreshold = 3
)

// ErrInvalid marks a check that cannot be run; the message says why.
var ErrInvalid = errors.New("health: invalid check")

// Check says how to tell that one port of a job is serving.
type Check struct {
	Kind string
	Addr string // host:port to probe, e.g. 127.0.0.1:31000
	Path string // http only: the request path, with any query
	// Interval is the time from the start of one probe to the start of
	// the next, except while the state is Unknown (see Run).
	Interval time.Duration
	// Timeout bounds one probe: connecting, and for http the whole
	// exchange, redirects included.
	Timeout time.Duration
	// StartGrace is how long after Run starts failures do not count, for
	// jobs that take a while to boot.
	StartGrace time.Duration
	// Threshold is how many failures in a row make a job Unhealthy, and
	// how many successes in a row make an Unhealthy job Healthy again.
	Threshold int
	// ExpectStatus is the HTTP status that counts as success; 0 means any
	// 2xx or 3xx.
	ExpectStatus int
}

// WithDefaults returns c with zero Interval, Timeout and Threshold, and an
// empty http Path, set to the defaults, and an empty Kind set to http if
// there is a Path and tcp if not; a spec may leave them out, but Run takes
// only explicit values.
func (c Check) WithDefaults() Check {
	if c.Kind == "" {
		c.Kind = KindTCP
		if c.Path != "" {
			c.Kind = KindHTTP
		}
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Threshold == 0 {
		c.Threshold = DefaultThreshold
	}
	if c.Kind == KindHTTP && c.Path == "" {
		c.Path = "/"
	}
	return c
}

// Validate reports why c cannot be run, as an error wrapping ErrInvalid.
func Validate(c Check) error {
	if c.Kind != KindTCP && c.Kind != KindHTTP {
		return invalid("kind %q is not %q or %q", c.Kind, KindTCP, KindHTTP)
	}
	if c.Addr == "" {
		return invalid("missing addr")
	}
	host, port, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return invalid("addr %q: %v", c.Addr, err)
	}
	if n, err := strconv.Atoi(port); host == "" || err != nil || n < 1 || n > 65535 {
		return invalid("addr %q is not host:port", c.Addr)
	}
	switch {
	case c.Interval <= 0:
		return invalid("interval %v is not positive", c.Interval)
	case c.Timeout <= 0:
		return invalid("timeout %v is not positive", c.Timeout)
	case c.StartGrace < 0:
		return invalid("start grace %v is negative", c.StartGrace)
	case c.Threshold < 1:
		return invalid("threshold %d is less than 1", c.Threshold)
	}
	if c.Kind == KindTCP {
		if c.Path != "" || c.ExpectStatus != 0 {
			return invalid("path and expected status are for http checks")
		}
		return nil
	}
	if c.ExpectStatus != 0 && (c.ExpectStatus < 100 || c.ExpectStatus > 599) {
		return invalid("expected status %d is not an HTTP status", c.ExpectStatus)
	}
	// "//host/x" would parse as a path here, but is a URL with another
	// host to anyone who resolves it as a reference; refuse it outright.
	if !strings.HasPrefix(c.Path, "/") || strings.HasPrefix(c.Path, "//") {
		return invalid("path %q does not start with a single '/'", c.Path)
	}
	u, err := url.Parse(probeURL(c))
	if err != nil || u.Host != c.Addr {
		return invalid("path %q: not a valid request path", c.Path)
	}
	return nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

func probeURL(c Check) string { return "http://" + c.Addr + c.Path }
