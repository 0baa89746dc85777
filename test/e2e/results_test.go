package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// result is one scenario's line in the results file, which
// docs/benchmarks.md is written from.
type result struct {
	Scenario string    `json:"scenario"`
	Time     time.Time `json:"time"`
	Passed   bool      `json:"passed"`
	Requests int       `json:"requests"`
	Failed   int       `json:"failed_requests"`
	// RecoveryMS is the scenario's recovery time (what it measures is
	// said in Recovery), in milliseconds.
	RecoveryMS float64 `json:"recovery_ms,omitempty"`
	Recovery   string  `json:"recovery,omitempty"`
	// Extra holds figures particular to a scenario.
	Extra map[string]any `json:"extra,omitempty"`

	// loads are summed into Requests and Failed if the scenario ends
	// before it reports its load itself.
	loads []*load
}

func resultsPath() string {
	if p := os.Getenv("PIER_E2E_RESULTS"); p != "" {
		return p
	}
	return filepath.Join("results", "results.jsonl")
}

// report logs a scenario's figures and, when the test ends, appends them
// to the results file with whether the scenario passed. It returns the
// result for the scenario to fill in as it goes.
func report(t *testing.T, scenario string) *result {
	r := &result{Scenario: scenario, Time: time.Now().UTC(), Extra: map[string]any{}}
	t.Cleanup(func() {
		r.Passed = !t.Failed()
		if r.Requests == 0 && len(r.loads) > 0 {
			// The scenario stopped before reporting its load: a failed
			// one's requests count all the more.
			for _, l := range r.loads {
				s := l.summary()
				r.Requests += s.Requests
				r.Failed += s.Failed
			}
		}
		t.Logf("result: %s passed=%v requests=%d failed=%d recovery=%s (%s) %v",
			r.Scenario, r.Passed, r.Requests, r.Failed,
			(time.Duration(r.RecoveryMS) * time.Millisecond).Round(time.Millisecond), r.Recovery, r.Extra)
		b, err := json.Marshal(r)
		if err != nil {
			t.Error(err)
			return
		}
		p := resultsPath()
		os.MkdirAll(filepath.Dir(p), 0o755)
		f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			t.Errorf("results: %v", err)
			return
		}
		defer f.Close()
		f.Write(append(b, '\n'))
	})
	return r
}

// track makes the load count in the result even if the scenario fails
// before it calls setLoad.
func (r *result) track(l *load) *load {
	r.loads = append(r.loads, l)
	return l
}

// setLoad copies a load summary into the result.
func (r *result) setLoad(s summary) {
	r.Requests, r.Failed = s.Requests, s.Failed
	r.Extra["latency_p50_ms"] = ms(s.P50)
	r.Extra["latency_p99_ms"] = ms(s.P99)
	if s.Failed > 0 {
		r.Extra["errors"] = s.Errors
		r.Extra["failed_span_ms"] = ms(s.FailedSpan)
	}
}

func (r *result) setRecovery(d time.Duration, what string) {
	r.RecoveryMS, r.Recovery = ms(d), what
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
