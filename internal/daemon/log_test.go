package daemon

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

func TestNewLoggerJSONWhenNotTerminal(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := new(bytes.Buffer)

	tests := []struct {
		name string
		w    io.Writer
		read func() ([]byte, error)
	}{
		{"buffer", buf, func() ([]byte, error) { return buf.Bytes(), nil }},
		// An *os.File that is not a terminal (journald, a log file) must get
		// JSON too, not just non-file writers.
		{"regular file", f, func() ([]byte, error) { return os.ReadFile(f.Name()) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log := NewLogger(tt.w, slog.LevelInfo)
			log.Debug("hidden")
			log.Info("hello", "k", "v")

			out, err := tt.read()
			if err != nil {
				t.Fatal(err)
			}
			var rec map[string]any
			if err := json.Unmarshal(bytes.TrimSpace(out), &rec); err != nil {
				t.Fatalf("want exactly one JSON line (debug filtered out), got %q: %v", out, err)
			}
			if rec["msg"] != "hello" || rec["k"] != "v" || rec["level"] != "INFO" {
				t.Errorf("unexpected record %v", rec)
			}
		})
	}
}

func TestIsTerminalFalseForPipe(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if isTerminal(w) {
		t.Error("a pipe reported as a terminal")
	}
}
