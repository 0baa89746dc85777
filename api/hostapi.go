package api

import (
	"fmt"
	"time"
)

// The host agent's HTTP API (HTTPS with cluster client certificates):
//
//	GET  /v1/status                  HostStatus
//	GET  /v1/jobs                    []HostJob
//	POST /v1/jobs                    RunJobRequest → Job (201)
//	GET  /v1/jobs/{id}               HostJob
//	POST /v1/jobs/{id}/stop          HostJob (202)
//	POST /v1/jobs/{id}/signal?signal=N       (204)
//	GET  /v1/jobs/{id}/logs?follow=true&lines=N|from=SEQ   LogLine, one JSON per line
//	GET  /v1/jobs/{id}/attach?rows=R&cols=C  101, then attach frames (attach.go)
//
// Errors are an Error body with a 4xx or 5xx status.

// HostJob is a job as the host agent that runs it sees it.
type HostJob struct {
	Job Job `json:"job"`
	// Status is the job's last reported status (with its pid and host
	// ports); nil before the agent first reports one.
	Status *JobStatus `json:"status,omitempty"`
	// StatusFrom says where Status was read: "store", or "local" (the
	// agent's own record, when the store could not be reached).
	StatusFrom string `json:"status_from,omitempty"`
	// Supervised is true while the agent watches a live process for it.
	Supervised bool `json:"supervised"`
	// Assigned is true while the job's record is in the store; a job whose
	// record was removed is listed until the agent has cleaned it up.
	Assigned bool `json:"assigned"`
}

// HostStatus describes a host agent.
type HostStatus struct {
	ID        string            `json:"id"`
	Addr      string            `json:"addr"`
	APIAddr   string            `json:"api_addr"`
	Runtime   string            `json:"runtime"`
	Version   string            `json:"version"`
	Tags      map[string]string `json:"tags,omitempty"`
	CPUMillis int64             `json:"cpu_millis"`
	MemoryMB  int64             `json:"memory_mb"`
	// Jobs counts the jobs the agent knows; Supervised those it watches a
	// live process for, whose resources add up to the Used figures.
	Jobs          int       `json:"jobs"`
	Supervised    int       `json:"supervised"`
	UsedCPUMillis int64     `json:"used_cpu_millis"`
	UsedMemoryMB  int64     `json:"used_memory_mb"`
	StartedAt     time.Time `json:"started_at"`
	Uptime        Duration  `json:"uptime"`
	// Disk is the agent's data disk (nil when not watched);
	// MemAvailableMB and MemTotalMB the machine's memory (0 when
	// unknown).
	Disk           *DiskStatus `json:"disk,omitempty"`
	MemAvailableMB int64       `json:"mem_available_mb,omitempty"`
	MemTotalMB     int64       `json:"mem_total_mb,omitempty"`
}

// RunJobRequest asks a host agent to run an ad-hoc job on its own host
// (`pier host run`).
type RunJobRequest struct {
	Args      []string          `json:"args"`
	Env       map[string]string `json:"env,omitempty"`
	MemoryMB  int64             `json:"memory_mb,omitempty"`
	CPUMillis int64             `json:"cpu_millis,omitempty"`
	// TTY asks for an interactive terminal and Stdin for an input stream
	// (see Job); the job waits for its first attach before it starts.
	TTY   bool `json:"tty,omitempty"`
	Stdin bool `json:"stdin,omitempty"`
}

// LogLine is one line of a job's output.
type LogLine struct {
	Seq    uint64    `json:"seq"`
	Time   time.Time `json:"time"`
	Stream string    `json:"stream"` // "stdout" or "stderr"
	Text   string    `json:"text"`
	// Gap counts the lines before this one that are lost (rotated away).
	Gap uint64 `json:"gap,omitempty"`
}

// Error codes of API errors.
const (
	ErrCodeUnauthenticated = "unauthenticated"
	ErrCodeBadRequest      = "bad_request"
	ErrCodeNotFound        = "not_found"
	ErrCodeConflict        = "conflict"
	ErrCodeInvalid         = "invalid" // well-formed but unacceptable (422)
	ErrCodeTooLarge        = "too_large"
	ErrCodeUnavailable     = "unavailable"
	ErrCodeNotImplemented  = "not_implemented"
	ErrCodeInternal        = "internal"
	// ErrCodeInsufficientStorage (507): a disk low on space refused the
	// work; the message names it.
	ErrCodeInsufficientStorage = "insufficient_storage"
)

// Error is an API error: a stable code for programs and a message for
// people. Clients fill in the HTTP status it came with.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Status  int    `json:"-"`
}

func (e *Error) Error() string {
	if e.Message == "" {
		return e.Code
	}
	return e.Message
}

// Is lets errors.Is match on the code: errors.Is(err, &api.Error{Code: api.ErrCodeNotFound}).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Errorf makes an Error with a code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}
