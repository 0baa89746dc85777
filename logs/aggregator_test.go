package logs

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
)

func batch(host, job string, seqs ...uint64) *api.LogBatch {
	jl := api.JobLogLines{Job: job, App: "app1", ProcessType: "web", Release: "app1-v1"}
	for _, s := range seqs {
		jl.Lines = append(jl.Lines, api.LogLine{Seq: s, Time: time.Now(), Stream: "stdout", Text: fmt.Sprintf("%s line %d", job, s)})
	}
	return &api.LogBatch{Host: host, Jobs: []api.JobLogLines{jl}}
}

func texts(ls []api.AppLogLine) string {
	var s []string
	for _, l := range ls {
		s = append(s, l.Text)
	}
	return strings.Join(s, "|")
}

func TestAggregatorInactiveRefuses(t *testing.T) {
	a := NewAggregator(Config{})
	if _, err := a.Ingest(batch("h1", "j1", 1)); !errors.Is(err, ErrInactive) {
		t.Fatalf("Ingest on an inactive aggregator: %v", err)
	}
	if _, err := a.Cursors("h1"); !errors.Is(err, ErrInactive) {
		t.Fatalf("Cursors on an inactive aggregator: %v", err)
	}
}

func TestAggregatorDedupsReplay(t *testing.T) {
	a := NewAggregator(Config{})
	a.Activate()
	if _, err := a.Ingest(batch("h1", "j1", 1, 2, 3)); err != nil {
		t.Fatal(err)
	}
	// A host that did not get the answer sends again, overlapping.
	cur, err := a.Ingest(batch("h1", "j1", 2, 3, 4, 5))
	if err != nil {
		t.Fatal(err)
	}
	if cur.Jobs["j1"] != 5 {
		t.Fatalf("cursor %d, want 5", cur.Jobs["j1"])
	}
	v, _ := a.tail("app1", 100, filter{})
	if got := texts(v.lines); got != "j1 line 1|j1 line 2|j1 line 3|j1 line 4|j1 line 5" {
		t.Fatalf("lines %s", got)
	}
	if s := a.Stats(); s.Duplicates != 2 || s.Ingested != 5 {
		t.Fatalf("stats %+v", s)
	}
	c, _ := a.Cursors("h1")
	if c.Jobs["j1"] != 5 || c.Instance == "" {
		t.Fatalf("cursors %+v", c)
	}
	if c, _ := a.Cursors("h2"); len(c.Jobs) != 0 {
		t.Fatalf("another host's cursors %+v", c)
	}
}

func TestAggregatorReportsGaps(t *testing.T) {
	a := NewAggregator(Config{})
	a.Activate()
	a.Ingest(batch("h1", "j1", 1, 2))
	// Lines 3..9 were rotated away on the host before being shipped.
	b := batch("h1", "j1", 10, 11)
	b.Jobs[0].Lines[0].Gap = 7
	a.Ingest(b)
	v, _ := a.tail("app1", 100, filter{job: "j1"})
	if len(v.lines) != 5 || v.lines[2].Source != api.LogSourcePier || !strings.Contains(v.lines[2].Text, "7 lines lost") {
		t.Fatalf("lines %s", texts(v.lines))
	}
	if a.Stats().Lost != 7 {
		t.Fatalf("lost %d", a.Stats().Lost)
	}
}

func TestAggregatorKeepsOrderPerJob(t *testing.T) {
	a := NewAggregator(Config{})
	a.Activate()
	// Two hosts' batches interleave; each job's lines stay in order.
	for i := uint64(1); i <= 50; i += 5 {
		a.Ingest(batch("h1", "j1", i, i+1, i+2, i+3, i+4))
		a.Ingest(batch("h2", "j2", i, i+1, i+2, i+3, i+4))
	}
	v, _ := a.tail("app1", 1000, filter{})
	next := map[string]uint64{"j1": 1, "j2": 1}
	for _, l := range v.lines {
		if l.Seq != next[l.Job] {
			t.Fatalf("job %s: line %d after %d", l.Job, l.Seq, next[l.Job]-1)
		}
		next[l.Job]++
	}
	if next["j1"] != 51 || next["j2"] != 51 {
		t.Fatalf("got %v", next)
	}
}

func TestAggregatorDeactivateForgets(t *testing.T) {
	a := NewAggregator(Config{})
	a.Activate()
	a.Ingest(batch("h1", "j1", 1, 2))
	c1, _ := a.Cursors("h1")
	v, _ := a.tail("app1", 1, filter{})
	a.Deactivate()
	select {
	case <-v.term:
	default:
		t.Fatal("followers not cut off")
	}
	a.Activate()
	c2, _ := a.Cursors("h1")
	if c2.Instance == c1.Instance || len(c2.Jobs) != 0 {
		t.Fatalf("after a new term: %+v (was %+v)", c2, c1)
	}
}

func TestAggregatorForgetsOldestJobs(t *testing.T) {
	a := NewAggregator(Config{MaxJobs: 10})
	a.Activate()
	for i := range 20 {
		a.Ingest(batch("h1", fmt.Sprintf("j%d", i), 1))
	}
	c, _ := a.Cursors("h1")
	if len(c.Jobs) > 10 || c.Jobs["j19"] != 1 {
		t.Fatalf("cursors kept: %v", c.Jobs)
	}
}

func TestAggregatorForwards(t *testing.T) {
	a := NewAggregator(Config{})
	var got []string
	a.SetForwarder(func(l *api.AppLogLine) { got = append(got, fmt.Sprintf("%d:%s", l.ID, l.Text)) })
	a.Activate()
	a.Ingest(batch("h1", "j1", 1, 2))
	a.Emit(api.AppLogLine{App: "app1", Process: "api", Text: "Deploy v2 finished"})
	if strings.Join(got, "|") != "1:j1 line 1|2:j1 line 2|3:Deploy v2 finished" {
		t.Fatalf("forwarded %q", got)
	}
}

func TestAggregatorBoundsAllRings(t *testing.T) {
	const total = 100 * (lineOverhead + 120)
	a := NewAggregator(Config{MaxBytes: total, MaxTotalBytes: total})
	a.Activate()
	text := strings.Repeat("x", 100)
	// A quiet app first, then a noisy one: the noisy one pays.
	for i := range 10 {
		a.Emit(api.AppLogLine{App: "quiet", Process: "web", Text: fmt.Sprint(i, text)})
	}
	for i := range 1000 {
		a.Emit(api.AppLogLine{App: "noisy", Process: "web", Text: fmt.Sprint(i, text)})
		if st := a.Stats(); st.Bytes > total {
			t.Fatalf("rings hold %d bytes, over %d", st.Bytes, total)
		}
	}
	if v, _ := a.tail("quiet", 100, filter{}); len(v.lines) != 10 {
		t.Fatalf("the quiet app kept %d lines of 10", len(v.lines))
	}
	// Many apps: the biggest are cut, total stays bounded.
	for i := range 500 {
		a.Emit(api.AppLogLine{App: fmt.Sprintf("app%d", i), Process: "web", Text: text})
	}
	if st := a.Stats(); st.Bytes > total {
		t.Fatalf("rings hold %d bytes, over %d", st.Bytes, total)
	}
	var sum int
	for _, r := range a.apps {
		sum += r.bytes
	}
	if sum != a.total {
		t.Fatalf("total %d, rings add up to %d", a.total, sum)
	}
}
