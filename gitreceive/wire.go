package gitreceive

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// The hook and the Receiver talk over the hook socket in frames: a type
// byte, a big-endian uint32 length, then that many bytes. Frames rather
// than a raw stream because both directions carry two things: the archive
// and whether it is complete, the build's output and its result.
const (
	frameHeader = 'h' // hook → receiver: hookHeader as JSON, first
	frameData   = 'd' // hook → receiver: a piece of the archive
	frameEnd    = 'e' // hook → receiver: the archive is complete
	frameAbort  = 'x' // hook → receiver: the archive failed; why
	frameOutput = 'o' // receiver → hook: build output
	frameResult = 'r' // receiver → hook: hookResult as JSON, last
)

// maxFrame bounds a frame, so a confused peer cannot make us allocate
// gigabytes.
const maxFrame = 64 << 10

// hookHeader is what the hook says first.
type hookHeader struct {
	Token  string `json:"token"`
	Ref    string `json:"ref"`
	Old    string `json:"old"`
	Commit string `json:"commit"`
}

// hookResult is the Receiver's last word: OK, or why the push must fail.
type hookResult struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

func writeFrame(w io.Writer, typ byte, p []byte) error {
	if len(p) > maxFrame {
		return fmt.Errorf("gitreceive: frame of %d bytes", len(p))
	}
	buf := make([]byte, 5+len(p))
	buf[0] = typ
	binary.BigEndian.PutUint32(buf[1:5], uint32(len(p)))
	copy(buf[5:], p)
	_, err := w.Write(buf)
	return err
}

// readFrame reads one frame; p is only valid until the next call.
func readFrame(r *bufio.Reader, buf *[]byte) (typ byte, p []byte, err error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > maxFrame {
		return 0, nil, fmt.Errorf("gitreceive: frame of %d bytes", n)
	}
	if cap(*buf) < int(n) {
		*buf = make([]byte, n)
	}
	p = (*buf)[:n]
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, err
	}
	return hdr[0], p, nil
}

// frameWriter sends everything written to it as frames of one type, at
// once: each Write of the build's output goes out as it is made, which is
// what keeps the pusher's terminal live. It is safe for concurrent use,
// since a Builder may write from several goroutines.
type frameWriter struct {
	mu     sync.Mutex
	w      io.Writer
	typ    byte
	closed bool
}

var errFinished = errors.New("gitreceive: the push is over")

func (f *frameWriter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return 0, errFinished
	}
	n := 0
	for len(p) > 0 {
		c := min(len(p), maxFrame)
		if err := writeFrame(f.w, f.typ, p[:c]); err != nil {
			return n, err
		}
		n += c
		p = p[c:]
	}
	return n, nil
}

// finish sends one last frame of another type and refuses later writes.
func (f *frameWriter) finish(typ byte, p []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return writeFrame(f.w, typ, p)
}
