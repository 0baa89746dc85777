package joblog

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock advances a millisecond per reading, so every line gets a
// distinct, predictable time.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Millisecond)
	return c.t
}

func readAll(t *testing.T, dir string, from uint64) []Line {
	t.Helper()
	var lines []Line
	if _, err := Read(dir, from, func(l Line) error {
		lines = append(lines, l)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return lines
}

func texts(lines []Line) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l.Text
	}
	return out
}

func TestStreamSplitsLines(t *testing.T) {
	const maxLine = 8
	tests := []struct {
		name   string
		writes []string
		want   []string
	}{
		{"one line", []string{"hello\n"}, []string{"hello"}},
		{"several in one write", []string{"a\nb\nc\n"}, []string{"a", "b", "c"}},
		{"line across writes", []string{"he", "ll", "o\nwor", "ld\n"}, []string{"hello", "world"}},
		{"empty lines kept", []string{"\n\na\n"}, []string{"", "", "a"}},
		{"crlf", []string{"a\r\nb\r", "\n"}, []string{"a", "b"}},
		{"lone cr kept mid-line", []string{"a\rb\n"}, []string{"a\rb"}},
		{"exactly max", []string{"12345678\n"}, []string{"12345678"}},
		{"max plus one", []string{"123456789\n"}, []string{"12345678", "9"}},
		{"long line", []string{strings.Repeat("x", 20) + "\n"}, []string{"xxxxxxxx", "xxxxxxxx", "xxxx"}},
		{"long line across writes", []string{"1234", "5678", "9abc", "\n"}, []string{"12345678", "9abc"}},
		{"partial flushed on close", []string{"a\nunfin"}, []string{"a", "unfin"}},
		{"long partial on close", []string{"123456789"}, []string{"12345678", "9"}},
		// "é" is 2 bytes: the cut moves back rather than split it.
		{"utf8 boundary", []string{"1234567é\n"}, []string{"1234567", "é"}},
		{"utf8 4-byte", []string{"12345😀\n"}, []string{"12345", "😀"}},
		{"invalid utf8 cut anyway", []string{"12345678\xff\n"}, []string{"12345678", "\ufffd"}},
		{"html not escaped", []string{"<a & b>\n"}, []string{"<a & b>"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			w, err := NewWriter(dir, Options{MaxLine: maxLine})
			if err != nil {
				t.Fatal(err)
			}
			s := w.Stream("stdout")
			for _, p := range tt.writes {
				if n, err := s.Write([]byte(p)); err != nil || n != len(p) {
					t.Fatalf("Write(%q) = %d, %v", p, n, err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			lines := readAll(t, dir, 0)
			if got := texts(lines); strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
				t.Fatalf("lines = %q, want %q", got, tt.want)
			}
			for i, l := range lines {
				if l.Seq != uint64(i+1) || l.Stream != "stdout" || l.Gap != 0 {
					t.Errorf("line %d = %+v", i, l)
				}
			}
		})
	}
}

func TestHTMLUnescapedOnDisk(t *testing.T) {
	dir := t.TempDir()
	w, _ := NewWriter(dir, Options{Now: newFakeClock().Now})
	w.Stream("stdout").Write([]byte("<b>\n"))
	w.Close()
	data, err := os.ReadFile(filepath.Join(dir, fileName(1)))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"t":"2024-05-01T12:00:00.001Z","s":"stdout","m":"<b>","n":1}` + "\n"
	if string(data) != want {
		t.Fatalf("file = %s, want %s", data, want)
	}
}

func TestBothStreamsInOrder(t *testing.T) {
	dir := t.TempDir()
	clock := newFakeClock()
	w, err := NewWriter(dir, Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	out, errs := w.Stream("stdout"), w.Stream("stderr")
	if w.Stream("stdout") != out {
		t.Fatal("Stream returned a second writer for the same name")
	}
	out.Write([]byte("o1\no2 "))
	errs.Write([]byte("e1\n"))
	out.Write([]byte("cont\n"))
	errs.Write([]byte("e2"))
	out.Close()
	w.Close() // flushes e2
	if _, err := out.Write([]byte("late\n")); err != ErrClosed {
		t.Errorf("write after close: %v", err)
	}
	want := []struct{ stream, text string }{
		{"stdout", "o1"}, {"stderr", "e1"}, {"stdout", "o2 cont"}, {"stderr", "e2"},
	}
	lines := readAll(t, dir, 0)
	if len(lines) != len(want) {
		t.Fatalf("got %d lines: %+v", len(lines), lines)
	}
	for i, l := range lines {
		if l.Stream != want[i].stream || l.Text != want[i].text || l.Seq != uint64(i+1) {
			t.Errorf("line %d = %+v, want %v", i, l, want[i])
		}
		if i > 0 && !l.Time.After(lines[i-1].Time) {
			t.Errorf("line %d time %v not after %v", i, l.Time, lines[i-1].Time)
		}
	}
}

func TestConcurrentStreamsNeverInterleave(t *testing.T) {
	dir := t.TempDir()
	w, err := NewWriter(dir, Options{MaxFileBytes: 32 << 10, MaxFiles: 1000})
	if err != nil {
		t.Fatal(err)
	}
	const perStream = 2000
	var wg sync.WaitGroup
	for _, name := range []string{"stdout", "stderr"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := w.Stream(name)
			var all strings.Builder
			for i := range perStream {
				fmt.Fprintf(&all, "%s line %d %s\n", name, i, strings.Repeat("z", i%50))
			}
			// Writes of random sizes, cutting lines anywhere.
			data := []byte(all.String())
			for len(data) > 0 {
				k := min(len(data), 1+rand.IntN(300))
				s.Write(data[:k])
				data = data[k:]
			}
		}()
	}
	wg.Wait()
	w.Close()
	lines := readAll(t, dir, 0)
	if len(lines) != 2*perStream {
		t.Fatalf("got %d lines, want %d", len(lines), 2*perStream)
	}
	next := map[string]int{}
	for i, l := range lines {
		if l.Seq != uint64(i+1) {
			t.Fatalf("line %d has seq %d", i, l.Seq)
		}
		want := fmt.Sprintf("%s line %d %s", l.Stream, next[l.Stream], strings.Repeat("z", next[l.Stream]%50))
		if l.Text != want {
			t.Fatalf("line %d = %q, want %q", i, l.Text, want)
		}
		next[l.Stream]++
	}
}

func TestRotationBoundsDisk(t *testing.T) {
	tests := []struct {
		name     string
		maxBytes int64
		maxFiles int
		lines    int
	}{
		{"three small files", 1024, 3, 2000},
		{"one file", 512, 1, 500},
		{"many files", 4096, 10, 5000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			w, err := NewWriter(dir, Options{MaxFileBytes: tt.maxBytes, MaxFiles: tt.maxFiles})
			if err != nil {
				t.Fatal(err)
			}
			s := w.Stream("stdout")
			for i := range tt.lines {
				fmt.Fprintf(s, "line %d\n", i+1)
			}
			w.Close()
			files, _ := listFiles(dir)
			if len(files) > tt.maxFiles {
				t.Errorf("%d files, want at most %d", len(files), tt.maxFiles)
			}
			var total int64
			for _, f := range files {
				st, _ := os.Stat(f.path)
				if st.Size() > tt.maxBytes {
					t.Errorf("%s is %d bytes, over %d", f.path, st.Size(), tt.maxBytes)
				}
				total += st.Size()
			}
			if total > tt.maxBytes*int64(tt.maxFiles) {
				t.Errorf("total %d bytes", total)
			}
			// What is left is the newest lines, contiguous, ending at the
			// last one; reading from 1 reports the rotated-away start.
			lines := readAll(t, dir, 1)
			if len(lines) == 0 || lines[len(lines)-1].Seq != uint64(tt.lines) {
				t.Fatalf("kept %d lines, last %+v", len(lines), lines[len(lines)-1])
			}
			if lines[0].Gap != lines[0].Seq-1 || lines[0].Gap == 0 {
				t.Errorf("first kept line %+v: want a gap of %d", lines[0], lines[0].Seq-1)
			}
			for i, l := range lines {
				if l.Text != fmt.Sprintf("line %d", l.Seq) || (i > 0 && (l.Seq != lines[i-1].Seq+1 || l.Gap != 0)) {
					t.Fatalf("line %d = %+v", i, l)
				}
			}
			// Each file is named by its first line.
			for _, f := range files {
				var first []Line
				Read(dir, f.first, func(l Line) error { first = append(first, l); return errStop })
				if len(first) != 1 || first[0].Seq != f.first {
					t.Errorf("file %s starts with %+v", f.path, first)
				}
			}
		})
	}
}

func TestReopenContinuesSeq(t *testing.T) {
	dir := t.TempDir()
	opts := Options{MaxFileBytes: 300, MaxFiles: 3}
	for round := range 5 {
		w, err := NewWriter(dir, opts)
		if err != nil {
			t.Fatal(err)
		}
		s := w.Stream("stdout")
		for i := range 7 {
			fmt.Fprintf(s, "round %d line %d\n", round, i)
		}
		fmt.Fprintf(s, "round %d partial", round)
		w.Close()
	}
	lines := readAll(t, dir, 0)
	if last := lines[len(lines)-1]; last.Seq != 40 || last.Text != "round 4 partial" {
		t.Fatalf("last line %+v, want seq 40", last)
	}
	for i := 1; i < len(lines); i++ {
		if lines[i].Seq != lines[i-1].Seq+1 {
			t.Fatalf("seq jumps from %d to %d", lines[i-1].Seq, lines[i].Seq)
		}
	}
}

func TestReopenCutsTornRecord(t *testing.T) {
	dir := t.TempDir()
	w, _ := NewWriter(dir, Options{})
	fmt.Fprintf(w.Stream("stdout"), "one\ntwo\n")
	w.Close()
	// A crash in the middle of a record.
	f, _ := os.OpenFile(filepath.Join(dir, fileName(1)), os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"t":"2024-05-01T12:00:00Z","s":"stdout","m":"thr`)
	f.Close()

	w, err := NewWriter(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(w.Stream("stderr"), "three\n")
	w.Close()
	lines := readAll(t, dir, 0)
	if got := strings.Join(texts(lines), ","); got != "one,two,three" || lines[2].Seq != 3 {
		t.Fatalf("lines = %+v", lines)
	}
}

func TestReopenEmptyNewestFile(t *testing.T) {
	// A writer that crashed right after rotating leaves an empty file
	// whose name still reserves its first number.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, fileName(1)), []byte(`{"t":"2024-05-01T12:00:00Z","s":"stdout","m":"a","n":1}`+"\n"), 0o640)
	os.WriteFile(filepath.Join(dir, fileName(5)), nil, 0o640)
	w, err := NewWriter(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(w.Stream("stdout"), "b\n")
	w.Close()
	lines := readAll(t, dir, 0)
	if len(lines) != 2 || lines[1].Seq != 5 || lines[1].Gap != 3 {
		t.Fatalf("lines = %+v", lines)
	}
}

func TestWriteFailureDropsNotBlocks(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "job")
	w, err := NewWriter(dir, Options{MaxFileBytes: 200})
	if err != nil {
		t.Fatal(err)
	}
	s := w.Stream("stdout")
	// With the directory gone, rotation cannot create a file: lines are
	// dropped and counted, and the producer is never told to stop.
	os.RemoveAll(dir)
	for i := range 20 {
		if _, err := fmt.Fprintf(s, "line %d\n", i); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if w.Dropped() == 0 || w.Err() == nil {
		t.Fatalf("dropped %d, err %v", w.Dropped(), w.Err())
	}
	// Once the disk is back, writing resumes, and the numbers lost show
	// as a gap.
	os.MkdirAll(dir, 0o750)
	before := w.Dropped()
	fmt.Fprintf(s, "back\n")
	if w.Dropped() != before {
		t.Fatal("still dropping")
	}
	w.Close()
	lines := readAll(t, dir, 1)
	if len(lines) != 1 || lines[0].Text != "back" || lines[0].Seq != 21 || lines[0].Gap != 20 {
		t.Fatalf("lines = %+v", lines)
	}
}

func TestFileNames(t *testing.T) {
	tests := []struct {
		name  string
		first uint64
		ok    bool
	}{
		{fileName(1), 1, true},
		{fileName(18446744073709551615), 18446744073709551615, true},
		{"log.12.jsonl", 12, true},
		{"log..jsonl", 0, false},
		{"log.x.jsonl", 0, false},
		{"log.1.jsonl.tmp", 0, false},
		{"other", 0, false},
	}
	for _, tt := range tests {
		first, ok := parseFileName(tt.name)
		if first != tt.first || ok != tt.ok {
			t.Errorf("parseFileName(%q) = %d, %v", tt.name, first, ok)
		}
	}
	if fileName(2) >= fileName(10) {
		t.Error("file names do not sort in order")
	}
}
