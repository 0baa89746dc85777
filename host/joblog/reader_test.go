package joblog

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var errStop = errors.New("stop")

// writeLines writes "line N" for N in [from, to] to a fresh or reopened log.
func writeLines(t *testing.T, dir string, opts Options, from, to int) {
	t.Helper()
	w, err := NewWriter(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	s := w.Stream("stdout")
	for i := from; i <= to; i++ {
		fmt.Fprintf(s, "line %d\n", i)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func seqs(lines []Line) string {
	var b strings.Builder
	for i, l := range lines {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprint(&b, l.Seq)
		if l.Gap > 0 {
			fmt.Fprintf(&b, "(gap %d)", l.Gap)
		}
	}
	return b.String()
}

func TestRead(t *testing.T) {
	// 30 lines of ~70 bytes in files of at most 500 bytes, 3 kept: lines
	// 1..~10 are gone.
	dir := t.TempDir()
	writeLines(t, dir, Options{MaxFileBytes: 500, MaxFiles: 3}, 1, 30)
	files, _ := listFiles(dir)
	oldest := files[0].first
	tests := []struct {
		name      string
		from      uint64
		wantFirst uint64
		wantGap   uint64
	}{
		{"zero is oldest", 0, oldest, 0},
		{"one reports the loss", 1, oldest, oldest - 1},
		{"first kept", oldest, oldest, 0},
		{"middle of a file", oldest + 2, oldest + 2, 0},
		{"start of the newest file", files[2].first, files[2].first, 0},
		{"last", 30, 30, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lines := readAll(t, dir, tt.from)
			if len(lines) == 0 || lines[0].Seq != tt.wantFirst || lines[0].Gap != tt.wantGap {
				t.Fatalf("from %d: %s", tt.from, seqs(lines))
			}
			if last := lines[len(lines)-1].Seq; last != 30 || len(lines) != int(31-tt.wantFirst) {
				t.Fatalf("from %d: %s", tt.from, seqs(lines))
			}
		})
	}
	t.Run("past the end", func(t *testing.T) {
		next, err := Read(dir, 31, func(Line) error { t.Fatal("line delivered"); return nil })
		if next != 31 || err != nil {
			t.Fatalf("Read = %d, %v", next, err)
		}
	})
	t.Run("missing dir", func(t *testing.T) {
		next, err := Read(filepath.Join(dir, "nope"), 0, func(Line) error { return nil })
		if next != 0 || err != nil {
			t.Fatalf("Read = %d, %v", next, err)
		}
	})
	t.Run("resume", func(t *testing.T) {
		next, err := Read(dir, 0, func(l Line) error { return nil })
		if next != 31 || err != nil {
			t.Fatalf("Read = %d, %v", next, err)
		}
	})
	t.Run("callback error stops at the refused line", func(t *testing.T) {
		var n int
		next, err := Read(dir, 0, func(l Line) error {
			if n++; n == 3 {
				return errStop
			}
			return nil
		})
		if !errors.Is(err, errStop) || next != oldest+2 {
			t.Fatalf("Read = %d, %v; want %d", next, err, oldest+2)
		}
	})
}

func TestTail(t *testing.T) {
	dir := t.TempDir()
	writeLines(t, dir, Options{MaxFileBytes: 500, MaxFiles: 3}, 1, 30)
	files, _ := listFiles(dir)
	kept := 31 - int(files[0].first)
	tests := []struct {
		n    int
		want int
	}{
		{0, 0}, {-1, 0}, {1, 1}, {5, 5}, {15, min(15, kept)}, {1000, kept},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.n), func(t *testing.T) {
			lines, err := Tail(dir, tt.n)
			if err != nil {
				t.Fatal(err)
			}
			if len(lines) != tt.want {
				t.Fatalf("Tail(%d) = %s", tt.n, seqs(lines))
			}
			for i, l := range lines {
				if want := uint64(30 - tt.want + 1 + i); l.Seq != want || l.Text != fmt.Sprintf("line %d", want) || l.Gap != 0 {
					t.Fatalf("Tail(%d)[%d] = %+v", tt.n, i, l)
				}
			}
		})
	}
	t.Run("missing dir", func(t *testing.T) {
		if lines, err := Tail(filepath.Join(dir, "nope"), 3); len(lines) != 0 || err != nil {
			t.Fatalf("Tail = %v, %v", lines, err)
		}
	})
}

func withPollInterval(t *testing.T, d time.Duration) {
	old := pollInterval
	pollInterval = d
	t.Cleanup(func() { pollInterval = old })
}

// follower runs Follow in the background and collects what it delivers;
// each delivery first waits on gate, if set.
type follower struct {
	mu    sync.Mutex
	lines []Line
	gate  chan struct{}
	done  chan struct{}
	next  uint64
	err   error
	stop  context.CancelFunc
}

func startFollower(dir string, from uint64, gate chan struct{}) *follower {
	ctx, cancel := context.WithCancel(context.Background())
	f := &follower{gate: gate, done: make(chan struct{}), stop: cancel}
	go func() {
		defer close(f.done)
		f.next, f.err = Follow(ctx, dir, from, func(l Line) error {
			if f.gate != nil {
				<-f.gate
			}
			f.mu.Lock()
			f.lines = append(f.lines, l)
			f.mu.Unlock()
			return nil
		})
	}()
	return f
}

// waitFor waits until the follower has seen line seq.
func (f *follower) waitFor(t *testing.T, seq uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		f.mu.Lock()
		n := len(f.lines)
		last := uint64(0)
		if n > 0 {
			last = f.lines[n-1].Seq
		}
		f.mu.Unlock()
		if last >= seq {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("follower did not see line %d", seq)
}

func (f *follower) finish(t *testing.T) []Line {
	t.Helper()
	f.stop()
	<-f.done
	if !errors.Is(f.err, context.Canceled) {
		t.Fatalf("Follow returned %v", f.err)
	}
	return f.lines
}

// checkOrder fails unless lines are in strictly increasing order, each
// line's gap accounts for exactly the numbers skipped, and the texts match.
func checkOrder(t *testing.T, lines []Line, from uint64) (gaps uint64) {
	t.Helper()
	want := from
	for i, l := range lines {
		if l.Seq < want || l.Seq-want != l.Gap {
			t.Fatalf("line %d: seq %d gap %d, expected seq %d", i, l.Seq, l.Gap, want)
		}
		if l.Text != fmt.Sprintf("line %d", l.Seq) {
			t.Fatalf("line %d = %+v", i, l)
		}
		gaps += l.Gap
		want = l.Seq + 1
	}
	return gaps
}

func TestFollowHeavyWritingWithRotation(t *testing.T) {
	withPollInterval(t, 10*time.Millisecond)
	dir := t.TempDir()
	const total = 20000
	opts := Options{MaxFileBytes: 16 << 10, MaxFiles: 16}
	f := startFollower(dir, 1, nil)
	w, err := NewWriter(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	out, errs := w.Stream("stdout"), w.Stream("stderr")
	for i := 1; i <= total; i++ {
		s := out
		if i%3 == 0 {
			s = errs
		}
		fmt.Fprintf(s, "line %d\n", i)
		// Slow enough that the follower (which catches up at disk
		// speed) never lags by the 256 KiB the files keep.
		if i%50 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	w.Close()
	if files, _ := listFiles(dir); len(files) > opts.MaxFiles || files[0].first == 1 {
		t.Fatalf("no rotation: %d files, oldest %d", len(files), files[0].first)
	}
	f.waitFor(t, total)
	lines := f.finish(t)
	if gaps := checkOrder(t, lines, 1); gaps != 0 || len(lines) != total {
		t.Fatalf("%d lines, %d lost", len(lines), gaps)
	}
	if f.next != total+1 {
		t.Fatalf("Follow returned next %d", f.next)
	}
}

func TestFollowReportsGapWhenLaggingBehindRotation(t *testing.T) {
	withPollInterval(t, 5*time.Millisecond)
	dir := t.TempDir()
	opts := Options{MaxFileBytes: 1024, MaxFiles: 2}
	writeLines(t, dir, opts, 1, 5)
	gate := make(chan struct{})
	f := startFollower(dir, 1, gate)
	gate <- struct{}{} // the follower is now inside the first file
	f.waitFor(t, 1)
	// Meanwhile the writer rotates through many files.
	writeLines(t, dir, opts, 6, 500)
	close(gate)
	f.waitFor(t, 500)
	lines := f.finish(t)
	gaps := checkOrder(t, lines, 1)
	if gaps == 0 {
		t.Fatalf("no gap reported: %s", seqs(lines))
	}
	if uint64(len(lines))+gaps != 500 {
		t.Fatalf("%d lines + %d lost != 500", len(lines), gaps)
	}
	// The file the follower held open was read to its end although it
	// was deleted meanwhile.
	if lines[5].Seq != 6 {
		t.Fatalf("open file not read to its end: %s", seqs(lines))
	}
}

func TestFollowAcrossWriterRestarts(t *testing.T) {
	withPollInterval(t, 5*time.Millisecond)
	dir := filepath.Join(t.TempDir(), "job") // does not exist yet
	opts := Options{MaxFileBytes: 400, MaxFiles: 100}
	f := startFollower(dir, 0, nil)
	time.Sleep(20 * time.Millisecond)
	for round := range 4 {
		writeLines(t, dir, opts, round*25+1, round*25+25)
		f.waitFor(t, uint64(round*25+25))
	}
	lines := f.finish(t)
	if gaps := checkOrder(t, lines, 1); gaps != 0 || len(lines) != 100 {
		t.Fatalf("%s", seqs(lines))
	}
}

func TestFollowResumes(t *testing.T) {
	withPollInterval(t, 5*time.Millisecond)
	dir := t.TempDir()
	writeLines(t, dir, Options{}, 1, 10)
	f := startFollower(dir, 0, nil)
	f.waitFor(t, 10)
	first := f.finish(t)
	if f.next != 11 || len(first) != 10 {
		t.Fatalf("next %d after %s", f.next, seqs(first))
	}
	writeLines(t, dir, Options{}, 11, 15)
	g := startFollower(dir, f.next, nil)
	g.waitFor(t, 15)
	if rest := g.finish(t); seqs(rest) != "11,12,13,14,15" {
		t.Fatalf("resumed with %s", seqs(rest))
	}
}

func TestFollowTailThenFollow(t *testing.T) {
	// The way `pier host logs -f -n 3` uses the package.
	withPollInterval(t, 5*time.Millisecond)
	dir := t.TempDir()
	writeLines(t, dir, Options{}, 1, 10)
	tail, err := Tail(dir, 3)
	if err != nil || seqs(tail) != "8,9,10" {
		t.Fatalf("Tail = %s, %v", seqs(tail), err)
	}
	f := startFollower(dir, tail[len(tail)-1].Seq+1, nil)
	writeLines(t, dir, Options{}, 11, 12)
	f.waitFor(t, 12)
	if rest := f.finish(t); seqs(rest) != "11,12" {
		t.Fatalf("followed %s", seqs(rest))
	}
}

func TestRecordLongerThanReadBuffer(t *testing.T) {
	// A full-length line of control characters is escaped to six bytes
	// each: a record several times the readers' 64 KiB buffer.
	withPollInterval(t, 5*time.Millisecond)
	dir := t.TempDir()
	w, err := NewWriter(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("\x01", DefaultMaxLine)
	fmt.Fprintf(w.Stream("stdout"), "before\n%s\nafter\n", long)
	w.Close()
	check := func(how string, lines []Line) {
		t.Helper()
		if len(lines) != 3 || lines[0].Text != "before" || lines[1].Text != long || lines[2].Text != "after" {
			t.Fatalf("%s: %d lines", how, len(lines))
		}
	}
	check("Read", readAll(t, dir, 0))
	tail, err := Tail(dir, 3)
	if err != nil {
		t.Fatal(err)
	}
	check("Tail", tail)
	f := startFollower(dir, 0, nil)
	f.waitFor(t, 3)
	check("Follow", f.finish(t))
}
