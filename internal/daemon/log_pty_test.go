//go:build linux

package daemon

import (
	"bytes"
	"log/slog"
	"testing"

	"github.com/pierpaas/pier/internal/testutil"
)

func TestNewLoggerTextOnTerminal(t *testing.T) {
	master, slave := testutil.OpenPTY(t)
	NewLogger(slave, slog.LevelInfo).Info("hello", "k", "v")

	buf := make([]byte, 512)
	n, err := master.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	out := buf[:n]
	if bytes.HasPrefix(bytes.TrimSpace(out), []byte("{")) {
		t.Fatalf("got JSON on a terminal: %q", out)
	}
	if !bytes.Contains(out, []byte("msg=hello")) || !bytes.Contains(out, []byte("k=v")) {
		t.Errorf("want text handler output, got %q", out)
	}
}
