package runtime

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkRuncRun sets the time of Run for `true` beside the time of a
// bare `runc run` of the same bundle, so that what pier adds to a container
// start is visible:
//
//	go test -run '^$' -bench RuncRun -benchtime 50x ./runtime/
func BenchmarkRuncRun(b *testing.B) {
	r := newTestRunc(b)
	ctx := context.Background()
	spec := Spec{ID: testID(b), Args: []string{"true"}}
	expectClean(b, r, spec.ID)

	bare, err := r.BareRun(ctx, spec, b.N)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		s := spec
		s.ID = fmt.Sprintf("%s-%d", spec.ID, i)
		ex, err := r.Run(ctx, s, IO{}, nil)
		if err != nil || ex.Code != 0 {
			b.Fatalf("Run: %+v %v", ex, err)
		}
	}
	b.StopTimer()
	b.ReportMetric(msPerOp(b, b.Elapsed()), "pier-ms/op")
	var total time.Duration
	for _, d := range bare {
		total += d
	}
	b.ReportMetric(msPerOp(b, total), "bare-ms/op")
}

func msPerOp(b *testing.B, d time.Duration) float64 {
	return float64(d) / float64(time.Millisecond) / float64(b.N)
}
