package joblog

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A log file is named by the sequence number of its first line, zero-padded
// so that a plain `ls` or `cat log.*.jsonl` already lists them in order. A
// file is never renamed: a reader holding it open keeps reading the same
// lines even after it is rotated away and deleted.
const (
	filePrefix = "log."
	fileSuffix = ".jsonl"
	seqDigits  = 20 // enough for any uint64
)

func fileName(first uint64) string {
	return fmt.Sprintf("%s%0*d%s", filePrefix, seqDigits, first, fileSuffix)
}

// parseFileName returns the first sequence number a log file holds, or
// false for anything else in the directory (temp files, an operator's
// notes).
func parseFileName(name string) (uint64, bool) {
	s, ok := strings.CutPrefix(name, filePrefix)
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, fileSuffix)
	if !ok || s == "" {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}

// logFile is one file of a job's log.
type logFile struct {
	first uint64
	path  string
}

// listFiles returns the log files in dir, oldest first. A missing directory
// holds no files: a job that has not started yet has printed nothing.
func listFiles(dir string) ([]logFile, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("joblog: %w", err)
	}
	var files []logFile
	for _, e := range ents {
		if first, ok := parseFileName(e.Name()); ok && e.Type().IsRegular() {
			files = append(files, logFile{first: first, path: filepath.Join(dir, e.Name())})
		}
	}
	slices.SortFunc(files, func(a, b logFile) int {
		switch {
		case a.first < b.first:
			return -1
		case a.first > b.first:
			return 1
		}
		return 0
	})
	return files, nil
}

// record is a line as stored: short keys, because they repeat on every
// line, and the field order fixed by the struct.
type record struct {
	T time.Time `json:"t"`
	S string    `json:"s"`
	M string    `json:"m"`
	N uint64    `json:"n"`
}

func parseRecord(b []byte) (Line, bool) {
	var r record
	if err := json.Unmarshal(b, &r); err != nil || r.N == 0 {
		return Line{}, false
	}
	return Line{Seq: r.N, Time: r.T, Stream: r.S, Text: r.M}, true
}

// readLine returns the next complete line of br including its '\n', or
// io.EOF if only a partial line (one still being written, or torn by a
// crash) is left. The slice is valid until the next call.
func readLine(br *bufio.Reader, scratch *[]byte) ([]byte, error) {
	b, err := br.ReadSlice('\n')
	if err == nil {
		return b, nil
	}
	if !errors.Is(err, bufio.ErrBufferFull) {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, err
	}
	// A line longer than the buffer: rare (a long line full of escapes),
	// so it may allocate.
	*scratch = append((*scratch)[:0], b...)
	for {
		b, err = br.ReadSlice('\n')
		*scratch = append(*scratch, b...)
		switch {
		case err == nil:
			return *scratch, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			return nil, io.EOF
		default:
			return nil, err
		}
	}
}

// recoverTail scans the newest file of a log left by an earlier writer. It
// returns the length of its complete lines, so a record torn by a crash can
// be cut off before new ones are appended after it, and the highest
// sequence number in it (0 if it holds no valid line).
func recoverTail(path string) (size int64, last uint64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	var scratch []byte
	for {
		b, err := readLine(br, &scratch)
		if errors.Is(err, io.EOF) {
			return size, last, nil
		}
		if err != nil {
			return 0, 0, err
		}
		size += int64(len(b))
		if l, ok := parseRecord(bytes.TrimSuffix(b, []byte("\n"))); ok && l.Seq > last {
			last = l.Seq
		}
	}
}
