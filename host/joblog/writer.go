package joblog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
	"unicode/utf8"
)

// Defaults for the zero Options.
const (
	DefaultMaxLine      = 64 << 10
	DefaultMaxFileBytes = 4 << 20
	DefaultMaxFiles     = 3
)

// ErrClosed is returned by writes to a closed Writer or stream.
var ErrClosed = errors.New("joblog: closed")

// Options bound a Writer. Zero fields take the defaults.
type Options struct {
	// MaxLine is the most bytes of text one line carries; a longer line
	// becomes several, cut at a UTF-8 boundary where there is one. It also
	// bounds the memory a stream holds for an unfinished line.
	MaxLine int
	// MaxFileBytes is the size at which the current file is rotated. A
	// file only exceeds it when a single line does.
	MaxFileBytes int64
	// MaxFiles is how many files, the current one included, are kept;
	// the job's disk use is about MaxFiles*MaxFileBytes.
	MaxFiles int
	// Now stamps lines; tests inject a clock.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.MaxLine <= 0 {
		o.MaxLine = DefaultMaxLine
	}
	if o.MaxFileBytes <= 0 {
		o.MaxFileBytes = DefaultMaxFileBytes
	}
	if o.MaxFiles <= 0 {
		o.MaxFiles = DefaultMaxFiles
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Writer appends a job's lines to the files in one directory. Only one
// Writer may have a directory open at a time (the job's shim); any number
// of readers may read it meanwhile.
type Writer struct {
	dir  string
	opts Options

	mu       sync.Mutex
	f        *os.File // nil once closed
	size     int64    // bytes of complete records in f
	torn     bool     // f may end in a partial record: rotate before the next line
	next     uint64   // sequence number of the next line
	buf      bytes.Buffer
	enc      *json.Encoder
	streams  map[string]*stream
	closing  bool
	dropped  uint64
	lastErr  error
	closeErr error
}

// NewWriter opens the log in dir, creating dir if needed. If an earlier
// writer left files there, it appends to the newest one and continues its
// sequence numbers, first cutting off a record that a crash left half
// written.
func NewWriter(dir string, opts Options) (*Writer, error) {
	w := &Writer{dir: dir, opts: opts.withDefaults(), streams: map[string]*stream{}}
	w.enc = json.NewEncoder(&w.buf)
	// Logs are text, and "<" shown as \u003c helps nobody.
	w.enc.SetEscapeHTML(false)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("joblog: %w", err)
	}
	files, err := listFiles(dir)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		w.next = 1
		if err := w.openFile(1); err != nil {
			return nil, err
		}
		return w, nil
	}
	cur := files[len(files)-1]
	size, last, err := recoverTail(cur.path)
	if err != nil {
		return nil, fmt.Errorf("joblog: recover %s: %w", cur.path, err)
	}
	// A file with no valid line (created just before a crash) still
	// reserves the numbers from its name on.
	w.next = max(last+1, cur.first, 1)
	if err := os.Truncate(cur.path, size); err != nil {
		return nil, fmt.Errorf("joblog: %w", err)
	}
	if err := w.openFile(cur.first); err != nil {
		return nil, err
	}
	return w, nil
}

// openFile makes the file starting at first the current one and prunes the
// oldest files beyond MaxFiles. It does not close the previous file: the
// caller does, after it is done with it.
func (w *Writer) openFile(first uint64) error {
	path := filepath.Join(w.dir, fileName(first))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("joblog: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("joblog: %w", err)
	}
	w.f, w.size, w.torn = f, st.Size(), false
	w.prune(first)
	return nil
}

// prune deletes the oldest files until MaxFiles are left. Readers that have
// one of them open keep reading it; the disk space returns when they close.
func (w *Writer) prune(current uint64) {
	files, err := listFiles(w.dir)
	if err != nil {
		w.lastErr = err
		return
	}
	for i := 0; len(files)-i > w.opts.MaxFiles && files[i].first != current; i++ {
		if err := os.Remove(files[i].path); err != nil && !errors.Is(err, os.ErrNotExist) {
			w.lastErr = err
		}
	}
}

// Stream returns the writer for one of the job's output streams, usually
// "stdout" or "stderr"; asking twice for the same name gives the same
// stream. Its writes never fail for lack of disk (the line is dropped and
// counted instead, so the job is not stalled), only after Close.
func (w *Writer) Stream(name string) io.WriteCloser {
	w.mu.Lock()
	defer w.mu.Unlock()
	if s := w.streams[name]; s != nil && !s.closed {
		return s
	}
	s := &stream{w: w, name: name, buf: make([]byte, 0, w.opts.MaxLine), closed: w.closing}
	if !w.closing {
		w.streams[name] = s
	}
	return s
}

// Dropped returns how many lines could not be written.
func (w *Writer) Dropped() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.dropped
}

// Err returns the last error met writing or rotating, if any; writing goes
// on regardless, so this is for reporting.
func (w *Writer) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastErr
}

// Close flushes every stream's unfinished line as a line of its own and
// closes the file. It is safe to call more than once.
func (w *Writer) Close() error {
	w.mu.Lock()
	w.closing = true
	streams := make([]*stream, 0, len(w.streams))
	for _, s := range w.streams {
		streams = append(streams, s)
	}
	w.mu.Unlock()
	for _, s := range streams {
		s.Close()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f != nil {
		w.closeErr = w.f.Close()
		w.f = nil
	}
	return w.closeErr
}

// writeLine appends one line. Numbering, stamping and writing happen under
// one lock, so the files hold lines in sequence order, each record whole.
func (w *Writer) writeLine(streamName string, text []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return ErrClosed
	}
	seq := w.next
	w.next++
	w.buf.Reset()
	// Encoding a record of strings, a time and a number cannot fail.
	_ = w.enc.Encode(record{T: w.opts.Now().UTC(), S: streamName, M: string(text), N: seq})
	rec := w.buf.Bytes()
	if w.torn || (w.size > 0 && w.size+int64(len(rec)) > w.opts.MaxFileBytes) {
		// The new file is created only after the last line of the old
		// one is written: a reader that sees the new file knows the old
		// one is complete.
		old := w.f
		if err := w.openFile(seq); err != nil {
			w.drop(err)
			return nil
		}
		old.Close()
	}
	n, err := w.f.Write(rec)
	if err != nil {
		// A partial record would glue itself to the next one; cut it
		// off, or if even that fails start a fresh file next time.
		if n > 0 && w.f.Truncate(w.size) != nil {
			w.torn = true
		}
		w.drop(err)
		return nil
	}
	w.size += int64(n)
	return nil
}

// drop counts a line that was not written. Its sequence number stays
// used, so readers see the loss as a gap.
func (w *Writer) drop(err error) {
	w.dropped++
	w.lastErr = err
}

// stream cuts one output stream into lines.
type stream struct {
	w    *Writer
	name string

	mu     sync.Mutex
	buf    []byte // the unfinished line, at most MaxLine bytes
	closed bool
}

func (s *stream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, ErrClosed
	}
	n := len(p)
	maxLine := s.w.opts.MaxLine
	for len(p) > 0 {
		seg, rest, complete := bytes.Cut(p, []byte{'\n'})
		for len(seg) > 0 {
			if len(s.buf) == maxLine {
				// More of this line is coming and the buffer is full:
				// cut here. A line of exactly MaxLine bytes followed by
				// '\n' is thus still one line.
				if err := s.emitPart(); err != nil {
					return n - len(p), err
				}
			}
			k := min(maxLine-len(s.buf), len(seg))
			s.buf = append(s.buf, seg[:k]...)
			seg = seg[k:]
		}
		if complete {
			// Terminal output ends lines with "\r\n".
			line := bytes.TrimSuffix(s.buf, []byte{'\r'})
			s.buf = s.buf[:0]
			if err := s.w.writeLine(s.name, line); err != nil {
				return n - len(p), err
			}
		}
		p = rest
	}
	return n, nil
}

// emitPart writes the full buffer as a line, keeping back the start of a
// UTF-8 character cut in half so it is not mangled into two U+FFFD.
func (s *stream) emitPart() error {
	cut := len(s.buf)
	for i := len(s.buf) - 1; i >= 0 && i >= len(s.buf)-utf8.UTFMax; i-- {
		if utf8.RuneStart(s.buf[i]) {
			if !utf8.FullRune(s.buf[i:]) && i > 0 {
				cut = i
			}
			break
		}
	}
	if err := s.w.writeLine(s.name, s.buf[:cut]); err != nil {
		return err
	}
	s.buf = s.buf[:copy(s.buf, s.buf[cut:])]
	return nil
}

// Close writes an unfinished line, if any, as a line.
func (s *stream) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if len(s.buf) == 0 {
		return nil
	}
	err := s.w.writeLine(s.name, s.buf)
	s.buf = s.buf[:0]
	return err
}
