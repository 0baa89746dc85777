package joblog

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"math"
	"os"
	"slices"
	"time"
)

// Line is one line of a job's output.
type Line struct {
	Seq    uint64 // from 1, one higher for each line of the job
	Time   time.Time
	Stream string // "stdout", "stderr"
	Text   string // without the '\n'; invalid UTF-8 is replaced by U+FFFD
	// Gap is how many lines the reader expected before this one and will
	// never see: rotated away before it read them, or dropped by the
	// writer. A follower shows it as a notice; a shipper reports it.
	Gap uint64
}

// pollInterval is how often Follow looks for new lines when it has read
// everything; a line reaches a follower within about this long.
var pollInterval = 50 * time.Millisecond

// Read calls fn for every line in dir with a sequence number of at least
// from (0 or 1 means the oldest kept), in order, and returns the number to
// pass as from to continue after them. If fn returns an error, Read stops
// and returns it with the number of the line fn refused. A directory that
// does not exist holds no lines.
func Read(dir string, from uint64, fn func(Line) error) (next uint64, err error) {
	r := newReader(dir, from, fn)
	defer r.close()
	if ok, err := r.start(); !ok || err != nil {
		return r.next(), err
	}
	for {
		if err := r.drain(); err != nil {
			return r.next(), err
		}
		moved, err := r.advance()
		if err != nil || !moved {
			return r.next(), err
		}
	}
}

// Follow is Read that does not stop at the end: it waits for new lines,
// across rotations and restarts of the writer, until ctx ends, and then
// returns ctx's error with the number to continue from. It never delivers a
// line twice or out of order; lines it could not read show as Line.Gap.
func Follow(ctx context.Context, dir string, from uint64, fn func(Line) error) (next uint64, err error) {
	r := newReader(dir, from, fn)
	defer r.close()
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		started, err := r.start()
		if err != nil {
			return r.next(), err
		}
		if started {
			if err := r.drain(); err != nil {
				return r.next(), err
			}
			moved, err := r.advance()
			if err != nil {
				return r.next(), err
			}
			if moved {
				// The next file may already hold lines: read it before
				// sleeping, so a follower that lags catches up at disk
				// speed.
				if ctx.Err() != nil {
					return r.next(), ctx.Err()
				}
				continue
			}
		}
		select {
		case <-ctx.Done():
			return r.next(), ctx.Err()
		case <-t.C:
		}
	}
}

// Tail returns the last n lines in dir, oldest first. Gap counts lines
// missing between the ones returned; the first has none.
func Tail(dir string, n int) ([]Line, error) {
	if n <= 0 {
		return nil, nil
	}
	files, err := listFiles(dir)
	if err != nil {
		return nil, err
	}
	// Newest file first, and within it from the end, until n lines: a
	// tail reads only the files it needs.
	var out []Line
	for i := len(files) - 1; i >= 0 && len(out) < n; i-- {
		data, err := os.ReadFile(files[i].path)
		if errors.Is(err, fs.ErrNotExist) {
			continue // rotated away since the listing
		}
		if err != nil {
			return nil, err
		}
		// Drop a partial last line: it is still being written.
		data = data[:bytes.LastIndexByte(data, '\n')+1]
		for len(data) > 0 && len(out) < n {
			data = data[:len(data)-1] // the '\n'
			j := bytes.LastIndexByte(data, '\n') + 1
			if l, ok := parseRecord(data[j:]); ok {
				out = append(out, l)
			}
			data = data[:j]
		}
	}
	slices.SortFunc(out, func(a, b Line) int {
		switch {
		case a.Seq < b.Seq:
			return -1
		case a.Seq > b.Seq:
			return 1
		}
		return 0
	})
	for i := 1; i < len(out); i++ {
		out[i].Gap = out[i].Seq - out[i-1].Seq - 1
	}
	return out, nil
}

// reader walks the files of one log in order. It holds the current file
// open, so a file deleted by rotation while it is being read is still read
// to its end. Offsets only ever land just after a '\n', so a partial record
// at the end of the file is read again, whole, on the next pass.
type reader struct {
	dir  string
	want uint64 // sequence number of the next line to deliver; 0: any
	fn   func(Line) error

	f       *os.File
	first   uint64 // the current file's first sequence number
	off     int64
	br      *bufio.Reader
	scratch []byte
}

func newReader(dir string, from uint64, fn func(Line) error) *reader {
	return &reader{dir: dir, want: from, fn: fn, br: bufio.NewReaderSize(nil, 64<<10)}
}

func (r *reader) next() uint64 { return r.want }

func (r *reader) close() {
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
}

// start opens the file holding line want, or the oldest file if that line
// is gone, unless a file is open already. It reports false if there is no
// file yet.
func (r *reader) start() (bool, error) {
	if r.f != nil {
		return true, nil
	}
	for {
		files, err := listFiles(r.dir)
		if err != nil || len(files) == 0 {
			return false, err
		}
		pick := files[0]
		for _, lf := range files[1:] {
			if lf.first <= r.want {
				pick = lf
			}
		}
		ok, err := r.open(pick)
		if ok || err != nil {
			return ok, err
		}
		// Deleted since the listing: look again.
	}
}

// open makes lf the current file, reporting false if it no longer exists.
func (r *reader) open(lf logFile) (bool, error) {
	f, err := os.Open(lf.path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	r.close()
	r.f, r.first, r.off = f, lf.first, 0
	return true, nil
}

// drain delivers the complete lines written to the current file so far.
func (r *reader) drain() error {
	r.br.Reset(io.NewSectionReader(r.f, r.off, math.MaxInt64-r.off))
	for {
		b, err := readLine(r.br, &r.scratch)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		r.off += int64(len(b))
		// A line that does not parse (damaged on disk) is skipped; the
		// next good one shows it as a gap.
		l, ok := parseRecord(b[:len(b)-1])
		if !ok || l.Seq < r.want {
			continue
		}
		if r.want != 0 {
			l.Gap = l.Seq - r.want
		}
		if err := r.fn(l); err != nil {
			r.want = l.Seq
			return err
		}
		r.want = l.Seq + 1
	}
}

// advance moves on to the next file if the writer has started one. The
// writer finishes a file before it creates the next, so once a newer file
// exists, one more drain reads the current file to its true end.
func (r *reader) advance() (bool, error) {
	for {
		files, err := listFiles(r.dir)
		if err != nil {
			return false, err
		}
		i := slices.IndexFunc(files, func(lf logFile) bool { return lf.first > r.first })
		if i < 0 {
			return false, nil
		}
		if err := r.drain(); err != nil {
			return false, err
		}
		ok, err := r.open(files[i])
		if ok || err != nil {
			return ok, err
		}
		// Rotated away before we got to it: its lines are lost to this
		// reader (they show as a gap); try the next one.
	}
}
