package daemon

import (
	"io"
	"log/slog"

	"golang.org/x/term"
)

// NewLogger returns a logger writing to w at the given minimum level.
//
// A person watching a terminal reads text; anything else (journald, a file, a
// pipe into a log shipper, a test buffer) gets one JSON object per line, which
// is what machines parse reliably. The choice is made once, here, so every
// daemon behaves the same and no flag is needed for the common cases.
func NewLogger(w io.Writer, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if isTerminal(w) {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// isTerminal reports whether w is a file descriptor attached to a terminal.
// It accepts anything with an Fd method rather than only *os.File so that
// wrappers which expose the underlying descriptor are detected too. Calling
// Fd on an *os.File switches it to blocking mode; that is harmless for
// stdout and stderr, the only files a logger is normally given.
func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	if !ok {
		return false
	}
	return term.IsTerminal(int(f.Fd()))
}
