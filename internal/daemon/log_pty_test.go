//go:build linux

package daemon

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// openPTY returns both ends of a fresh pseudo-terminal so the terminal branch
// of NewLogger can be tested without a real console.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("ptsname: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open pts: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

func TestNewLoggerTextOnTerminal(t *testing.T) {
	master, slave := openPTY(t)
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
