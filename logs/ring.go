package logs

import (
	"slices"

	"github.com/pierpaas/pier/api"
)

// lineOverhead approximates what a line costs in memory beyond its text
// (the struct and its short strings), so that a flood of empty lines is
// bounded too.
const lineOverhead = 128

func lineSize(l *api.AppLogLine) int {
	return lineOverhead + len(l.Text) + len(l.Job) + len(l.Process) + len(l.Release) + len(l.Host) + len(l.App)
}

// ring is the newest lines of one app, bounded by count and by bytes.
// Lines are numbered (AppLogLine.ID) in the order they came, so a reader
// can continue after the last line it saw and learn how many it missed
// when the ring moved past it. It is not safe for concurrent use: the
// aggregator guards it.
type ring struct {
	maxLines, maxBytes int

	buf   []api.AppLogLine // circular; grows up to maxLines
	head  int              // index of the oldest line
	n     int
	bytes int
	next  uint64 // ID the next line gets; IDs start at 1

	// notify is closed and replaced on every append: followers wait on it
	// instead of on a channel of their own, so a slow follower costs
	// nothing and never holds ingestion back.
	notify chan struct{}
}

func newRing(maxLines, maxBytes int) *ring {
	return &ring{maxLines: maxLines, maxBytes: maxBytes, next: 1, notify: make(chan struct{})}
}

// first is the ID of the oldest line held (next when empty).
func (r *ring) first() uint64 { return r.next - uint64(r.n) }

func (r *ring) at(i int) *api.AppLogLine { return &r.buf[(r.head+i)%len(r.buf)] }

// add appends a line, numbering it, and evicts the oldest lines beyond
// the bounds. It returns how many lines it evicted.
func (r *ring) add(l api.AppLogLine) (evicted int) {
	l.ID = r.next
	r.next++
	if r.n == len(r.buf) {
		r.grow()
	}
	if r.n == len(r.buf) { // full at maxLines: overwrite the oldest
		r.evictOldest()
		evicted++
	}
	*r.at(r.n) = l
	r.n++
	r.bytes += lineSize(&l)
	// Keep at least the new line, whatever its size.
	for r.n > 1 && r.bytes > r.maxBytes {
		r.evictOldest()
		evicted++
	}
	close(r.notify)
	r.notify = make(chan struct{})
	return evicted
}

// grow doubles the buffer up to maxLines: most apps log little, and a
// ring allocated at full size for each would cost megabytes of nothing.
func (r *ring) grow() {
	size := min(max(2*len(r.buf), 64), r.maxLines)
	if size <= len(r.buf) {
		return
	}
	buf := make([]api.AppLogLine, size)
	for i := range r.n {
		buf[i] = *r.at(i)
	}
	r.buf, r.head = buf, 0
}

func (r *ring) evictOldest() {
	l := r.at(0)
	r.bytes -= lineSize(l)
	*l = api.AppLogLine{} // let the text go
	r.head = (r.head + 1) % len(r.buf)
	r.n--
}

// filter selects lines by process type and job; empty fields match all.
type filter struct {
	process string
	job     string
}

func (f filter) match(l *api.AppLogLine) bool {
	return (f.process == "" || l.Process == f.process) && (f.job == "" || l.Job == f.job)
}

// tail returns the last n matching lines, oldest first, and the ID of the
// newest line held (0 when none), to continue after.
func (r *ring) tail(n int, f filter) ([]api.AppLogLine, uint64) {
	var out []api.AppLogLine
	for i := r.n - 1; i >= 0 && len(out) < n; i-- {
		if l := r.at(i); f.match(l) {
			out = append(out, *l)
		}
	}
	// Oldest first by time: hosts ship on their own schedules, so a job's
	// lines can arrive after the platform's lines about it. The sort is
	// stable and a job's lines are stamped in order, so each job's order
	// holds. (Followers get lines as they arrive.)
	slices.Reverse(out)
	slices.SortStableFunc(out, func(a, b api.AppLogLine) int { return a.Time.Compare(b.Time) })
	return out, r.next - 1
}

// after returns up to max matching lines with IDs above id, the ID to
// continue after, and how many lines past id the ring no longer holds
// (evicted before the reader got to them).
func (r *ring) after(id uint64, max int, f filter) (out []api.AppLogLine, last uint64, skipped uint64) {
	first := r.first()
	if id >= r.next { // from another ring (a previous aggregator): start anew
		id = r.next - 1
	}
	if id+1 < first {
		skipped = first - (id + 1)
		id = first - 1
	}
	last = id
	for i := int(id + 1 - first); i < r.n && len(out) < max; i++ {
		l := r.at(i)
		last = l.ID
		if f.match(l) {
			out = append(out, *l)
		}
	}
	return out, last, skipped
}
