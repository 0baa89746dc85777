package tarball

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// redrawEvery bounds how often a Progress redraws: often enough to look
// live, rarely enough that a fast upload is not slowed by the terminal.
const redrawEvery = 100 * time.Millisecond

// Progress draws "label 1.2 MiB / 3.4 MiB (35%)" on one line of w,
// redrawn in place with '\r' at most every 100ms, as bytes are counted.
// It is an io.Writer so that it can count an upload through
// io.TeeReader(file, p); Set takes an absolute count, which is the shape
// of Options.Progress. Whether w is a terminal is the caller's question:
// on anything else the '\r's make a mess, so pass io.Discard there.
// Safe for concurrent use (an HTTP transport reads the body on its own
// goroutine).
type Progress struct {
	mu     sync.Mutex
	w      io.Writer
	label  string
	total  int64 // <= 0: unknown
	n      int64
	last   time.Time // of the last redraw
	width  int       // of the last line drawn, to blank what a shorter one leaves
	done   bool
	now    func() time.Time
	redraw time.Duration
}

// NewProgress returns a Progress for total bytes (<= 0 if not known).
// Nothing is drawn until the first byte is counted.
func NewProgress(w io.Writer, total int64, label string) *Progress {
	return &Progress{w: w, label: label, total: total, now: time.Now, redraw: redrawEvery}
}

// Write counts len(b) bytes. It never fails: a broken terminal must not
// fail the upload it reports on.
func (p *Progress) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n += int64(len(b))
	p.maybeDraw()
	return len(b), nil
}

// Set makes n the count of bytes so far.
func (p *Progress) Set(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n = n
	p.maybeDraw()
}

// Done draws the final count and ends the line. Later calls do nothing,
// and later counts are not drawn, so Done can be deferred.
func (p *Progress) Done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return
	}
	p.draw()
	fmt.Fprint(p.w, "\n")
	p.done = true
}

func (p *Progress) maybeDraw() {
	if p.done {
		return
	}
	if now := p.now(); p.last.IsZero() || now.Sub(p.last) >= p.redraw {
		p.last = now
		p.draw()
	}
}

func (p *Progress) draw() {
	line := p.label + " " + HumanSize(p.n)
	if p.total > 0 {
		pct := p.n * 100 / p.total
		line += fmt.Sprintf(" / %s (%d%%)", HumanSize(p.total), min(pct, 100))
	}
	pad := max(p.width-len(line), 0)
	p.width = len(line)
	fmt.Fprint(p.w, "\r"+line+strings.Repeat(" ", pad))
}

// HumanSize formats a byte count in binary units: "512 B", "1.2 KiB",
// "3.4 MiB".
func HumanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	// Move up a unit before "%.1f" would round to 1024.0 of this one.
	v, exp := float64(n)/unit, 0
	for v >= unit-0.05 && exp < 5 {
		v /= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTPE"[exp])
}
