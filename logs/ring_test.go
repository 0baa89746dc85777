package logs

import (
	"fmt"
	"strings"
	"testing"

	"github.com/pierpaas/pier/api"
)

func appLine(job, proc string, text string) api.AppLogLine {
	return api.AppLogLine{App: "a", Source: api.LogSourceApp, Job: job, Process: proc, Text: text}
}

func TestRingBoundsLines(t *testing.T) {
	r := newRing(10, 1<<20)
	for i := range 25 {
		r.add(appLine("j", "web", fmt.Sprint(i)))
		if r.n > 10 {
			t.Fatalf("ring holds %d lines, over 10", r.n)
		}
	}
	lines, last := r.tail(100, filter{})
	if len(lines) != 10 || lines[0].Text != "15" || lines[9].Text != "24" || last != 25 {
		t.Fatalf("tail = %d lines %q..%q, last %d", len(lines), lines[0].Text, lines[len(lines)-1].Text, last)
	}
	for i, l := range lines {
		if l.ID != uint64(16+i) {
			t.Fatalf("line %d has id %d", i, l.ID)
		}
	}
}

func TestRingBoundsBytes(t *testing.T) {
	const maxBytes = 10 * (lineOverhead + 100)
	r := newRing(1000, maxBytes)
	text := strings.Repeat("x", 99) // + "j" + "web" + "a" ≈ 104 bytes of strings
	for range 100 {
		r.add(appLine("j", "web", text))
		if r.bytes > maxBytes {
			t.Fatalf("ring holds %d bytes, over %d", r.bytes, maxBytes)
		}
	}
	if r.n != 9 {
		t.Fatalf("ring holds %d lines, want 9", r.n)
	}
	// A line bigger than the whole budget is still kept, alone.
	r.add(appLine("j", "web", strings.Repeat("y", 2*maxBytes)))
	if r.n != 1 {
		t.Fatalf("ring holds %d lines after a huge one", r.n)
	}
	var sum int
	for i := range r.n {
		sum += lineSize(r.at(i))
	}
	if sum != r.bytes {
		t.Fatalf("byte count %d, lines add up to %d", r.bytes, sum)
	}
}

func TestRingTailFilters(t *testing.T) {
	r := newRing(100, 1<<20)
	for i := range 20 {
		proc := "web"
		if i%2 == 1 {
			proc = "worker"
		}
		r.add(appLine(fmt.Sprintf("%s-%d", proc, i%4), proc, fmt.Sprint(i)))
	}
	got := func(ls []api.AppLogLine) string {
		var s []string
		for _, l := range ls {
			s = append(s, l.Text)
		}
		return strings.Join(s, ",")
	}
	tests := []struct {
		n    int
		f    filter
		want string
	}{
		{3, filter{}, "17,18,19"},
		{3, filter{process: "worker"}, "15,17,19"},
		{3, filter{job: "web-2"}, "10,14,18"},
		{100, filter{job: "worker-3"}, "3,7,11,15,19"},
		{0, filter{}, ""},
		{3, filter{process: "nope"}, ""},
	}
	for _, tt := range tests {
		lines, _ := r.tail(tt.n, tt.f)
		if g := got(lines); g != tt.want {
			t.Errorf("tail(%d, %+v) = %s, want %s", tt.n, tt.f, g, tt.want)
		}
	}
}

func TestRingAfterReportsSkipped(t *testing.T) {
	r := newRing(5, 1<<20)
	for i := range 3 {
		r.add(appLine("j", "web", fmt.Sprint(i)))
	}
	lines, last, skipped := r.after(1, 100, filter{})
	if len(lines) != 2 || last != 3 || skipped != 0 {
		t.Fatalf("after(1) = %d lines, last %d, skipped %d", len(lines), last, skipped)
	}
	for i := 3; i < 12; i++ {
		r.add(appLine("j", "web", fmt.Sprint(i)))
	}
	// The reader saw up to 3; the ring now holds 8..12.
	lines, last, skipped = r.after(3, 100, filter{})
	if skipped != 4 || len(lines) != 5 || lines[0].ID != 8 || last != 12 {
		t.Fatalf("after(3) = %d lines from %d, last %d, skipped %d", len(lines), lines[0].ID, last, skipped)
	}
	// Caught up: nothing, and the same place.
	lines, last, skipped = r.after(12, 100, filter{})
	if len(lines) != 0 || last != 12 || skipped != 0 {
		t.Fatalf("after(12) = %d lines, last %d, skipped %d", len(lines), last, skipped)
	}
	// An id from some other ring starts from now.
	if _, last, _ = r.after(1000, 100, filter{}); last != 12 {
		t.Fatalf("after(1000): last %d", last)
	}
	// A filter moves the reader past lines it does not want.
	r.add(appLine("k", "worker", "x"))
	lines, last, _ = r.after(12, 100, filter{process: "web"})
	if len(lines) != 0 || last != 13 {
		t.Fatalf("filtered after = %d lines, last %d", len(lines), last)
	}
}

func TestRingNotifies(t *testing.T) {
	r := newRing(5, 1<<20)
	ch := r.notify
	select {
	case <-ch:
		t.Fatal("notified before any line")
	default:
	}
	r.add(appLine("j", "web", "x"))
	select {
	case <-ch:
	default:
		t.Fatal("not notified of a line")
	}
}
