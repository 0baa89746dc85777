package api

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The controller's log endpoints (see controller.go for the conventions):
//
//	GET    /v1/apps/{app}/logs?follow=true&lines=N&type=T&job=J   AppLogLine, one JSON per line
//	GET    /v1/apps/{app}/drains                 []Drain
//	POST   /v1/apps/{app}/drains                 CreateDrainRequest → Drain (201)
//	DELETE /v1/apps/{app}/drains/{id}            (204)
//
// The log aggregator's internal endpoints, on the servers' API port, for
// cluster certificates only (host agents ship, controllers read):
//
//	GET  /v1/logs/cursors?host=H      LogCursors
//	POST /v1/logs/ingest              LogBatch → LogCursors
//	POST /v1/logs/platform            []AppLogLine (204): platform lines, e.g. routers' access lines
//	GET  /v1/logs/apps/{app}?follow=true&lines=N&type=T&job=J   AppLogLine, one JSON per line

// Sources of an app's log lines: its own jobs, or the platform (deploys,
// scaling, crashes, the router), like Heroku's app[web.1] and heroku[router].
const (
	LogSourceApp  = "app"
	LogSourcePier = "pier"
)

// AppLogLine is one line of an app's log stream.
type AppLogLine struct {
	// ID numbers the lines of the app's stream as the aggregator received
	// them. It restarts when the aggregator does (or moves).
	ID     uint64    `json:"id"`
	Time   time.Time `json:"time"`
	App    string    `json:"app"`
	Source string    `json:"source"` // LogSourceApp or LogSourcePier
	// Process is the job's process type ("web", "run" for a one-off), or
	// for a platform line what speaks: "api" (deploys, scaling), "router",
	// "logs" (lines lost on the way), or a process type about its job.
	Process string `json:"process"`
	Job     string `json:"job,omitempty"`
	Release string `json:"release,omitempty"`
	Host    string `json:"host,omitempty"`
	Stream  string `json:"stream,omitempty"` // "stdout", "stderr"
	// Seq is the line's number in its job's output (host/joblog).
	Seq  uint64 `json:"seq,omitempty"`
	Text string `json:"text"`
}

// Dyno names where a line comes from as Heroku does: "web.JOBID" for a
// job's line, the process alone ("router", "api") otherwise.
func (l *AppLogLine) Dyno() string {
	p := l.Process
	if p == "" {
		p = "run"
	}
	if l.Job != "" {
		return p + "." + l.Job
	}
	return p
}

// Drain is a syslog destination of an app's log lines, stored by the
// controller under /pier/drains/<app>/<id>.
type Drain struct {
	ID        string    `json:"id"`
	App       string    `json:"app"`
	URL       string    `json:"url"`
	CreatedAt time.Time `json:"created_at"`
}

// CreateDrainRequest adds a drain: syslog://HOST:PORT (RFC 5424 over TCP,
// octet-counted framing) or syslog+tls://HOST:PORT (the same over TLS).
type CreateDrainRequest struct {
	URL string `json:"url"`
}

// ParseDrainURL checks a drain URL and returns its scheme and address.
func ParseDrainURL(s string) (scheme, addr string, err error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", "", fmt.Errorf("drain URL %q: %v", s, err)
	}
	switch u.Scheme {
	case "syslog", "syslog+tls":
	default:
		return "", "", fmt.Errorf("drain URL %q: scheme must be syslog:// (TCP) or syslog+tls://", s)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil || host == "" || strings.ContainsAny(host, " /") {
		return "", "", fmt.Errorf("drain URL %q: want %s://HOST:PORT", s, u.Scheme)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", "", fmt.Errorf("drain URL %q: bad port", s)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil || u.Fragment != "" {
		return "", "", fmt.Errorf("drain URL %q: want %s://HOST:PORT and nothing more", s, u.Scheme)
	}
	return u.Scheme, u.Host, nil
}

// LogBatch is what a host agent ships to the log aggregator: new lines of
// some of its jobs, each job's in order.
type LogBatch struct {
	Host string        `json:"host"`
	Jobs []JobLogLines `json:"jobs"`
}

// JobLogLines are lines of one job. A line's Gap counts the lines before
// it that the host lost (rotated away before they were shipped).
type JobLogLines struct {
	Job         string    `json:"job"`
	App         string    `json:"app"`
	Release     string    `json:"release,omitempty"`
	ProcessType string    `json:"process_type,omitempty"`
	Lines       []LogLine `json:"lines"`
}

// LogCursors is the highest line number the aggregator holds of each job
// of a host: where the host resumes shipping. Instance changes whenever
// the aggregator starts afresh (restarted, or moved to another server),
// so a host knows to ask again.
type LogCursors struct {
	Instance string            `json:"instance"`
	Jobs     map[string]uint64 `json:"jobs,omitempty"`
}
