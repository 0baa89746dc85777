package api

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// Attach connects a client to a running job's stdio. The client sends
// GET /v1/jobs/{id}/attach?rows=R&cols=C over HTTP/1.1 with the headers
// "Connection: Upgrade" and "Upgrade: pier-attach"; the agent answers
// "101 Switching Protocols" and from then on the connection carries
// frames both ways, each a type byte, a big-endian uint32 length and that
// many bytes of payload:
//
//	client → job   FrameStdin (data), FrameCloseStdin (end of input),
//	               FrameResize (rows, cols: two big-endian uint16)
//	job → client   FrameStdout, FrameStderr (data; with a TTY all output is
//	               stdout), then FrameExit (AttachExit as JSON), the last
//	               frame, after which the job's side closes
//
// rows and cols, optional, are the terminal's size from the start. Output
// is also written to the job's log as always; an attach receives what the
// job writes while it is attached. A job with TTY or Stdin waits for its
// first attach (up to AttachWait) before it starts, so that attach misses
// nothing. One client is attached to a job at a time (409 for another).
//
// Input ends with FrameCloseStdin, or when the client that attached goes
// away: a job reading its stdin is not left waiting for someone who will
// never write. A TTY has no end of input of its own: FrameCloseStdin types
// the terminal's end-of-file character (^D), and a client going away
// leaves the terminal to the next attach.
const (
	FrameStdin      byte = 0
	FrameStdout     byte = 1
	FrameStderr     byte = 2
	FrameExit       byte = 3
	FrameResize     byte = 4
	FrameCloseStdin byte = 5
)

// AttachUpgrade is the protocol name in the Upgrade header.
const AttachUpgrade = "pier-attach"

// AttachWait is how long a job with TTY or Stdin waits for its first
// attach before it starts anyway; a job that nobody attached to in time
// gets an empty stdin (a TTY stays attachable).
const AttachWait = 10 * time.Second

// MaxFramePayload bounds a frame; writers split data into frames of at
// most this size.
const MaxFramePayload = 1 << 20

// AttachExit is how the job ended, the payload of FrameExit.
type AttachExit struct {
	ExitCode  int    `json:"exit_code"`
	Signal    string `json:"signal,omitempty"`
	OOMKilled bool   `json:"oom_killed,omitempty"`
	// Error says why the job could not be started or observed, if so.
	Error      string    `json:"error,omitempty"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
}

// ErrFrameTooLarge is returned by ReadFrame for a frame over
// MaxFramePayload: the stream is not what it should be.
var ErrFrameTooLarge = errors.New("api: attach frame too large")

// WriteFrame writes one frame. It is not safe for concurrent use on one
// writer; callers serialise.
func WriteFrame(w io.Writer, typ byte, payload []byte) error {
	if len(payload) > MaxFramePayload {
		return ErrFrameTooLarge
	}
	b := make([]byte, 5+len(payload))
	b[0] = typ
	binary.BigEndian.PutUint32(b[1:5], uint32(len(payload)))
	copy(b[5:], payload)
	_, err := w.Write(b)
	return err
}

// ReadFrame reads one frame. The payload is freshly allocated. A stream
// that ends between frames gives io.EOF; one that ends inside a frame
// io.ErrUnexpectedEOF.
func ReadFrame(r io.Reader) (typ byte, payload []byte, err error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(h[1:])
	if n > MaxFramePayload {
		return 0, nil, fmt.Errorf("%w: %d bytes", ErrFrameTooLarge, n)
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return h[0], payload, nil
}

// ResizePayload encodes a terminal size for FrameResize.
func ResizePayload(rows, cols uint16) []byte {
	b := make([]byte, 4)
	binary.BigEndian.PutUint16(b, rows)
	binary.BigEndian.PutUint16(b[2:], cols)
	return b
}

// ParseResize decodes FrameResize's payload.
func ParseResize(p []byte) (rows, cols uint16, ok bool) {
	if len(p) != 4 {
		return 0, 0, false
	}
	return binary.BigEndian.Uint16(p), binary.BigEndian.Uint16(p[2:]), true
}
