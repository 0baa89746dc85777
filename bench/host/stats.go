package main

import (
	"math"
	"slices"
	"time"
)

type summary struct {
	p50, p90, p99, mean time.Duration
}

// summarize returns nearest-rank percentiles and the mean of d.
func summarize(d []time.Duration) summary {
	if len(d) == 0 {
		return summary{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	var total time.Duration
	for _, v := range s {
		total += v
	}
	return summary{p50: rank(s, 0.50), p90: rank(s, 0.90), p99: rank(s, 0.99), mean: total / time.Duration(len(s))}
}

// rank is the nearest-rank percentile of sorted s.
func rank(s []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(float64(len(s))*p-1e-9)) - 1
	return s[max(0, min(i, len(s)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}
