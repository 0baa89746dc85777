package main

import (
	"testing"
	"time"
)

func TestParseWrk(t *testing.T) {
	out := `Running 10s test @ http://127.0.0.1:41234/
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.10ms    2.52ms  41.21ms   88.83%
    Req/Sec    11.14k     1.20k   14.03k    71.00%
  Latency Distribution
     50%    2.49ms
     75%    3.55ms
     90%    5.46ms
     99%   11.06ms
  221584 requests in 10.00s, 38.04MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  22157.41
Transfer/sec:      3.80MB
`
	r, err := parseWrk(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.rps != 22157.41 || r.p50 != 2490*time.Microsecond || r.p99 != 11060*time.Microsecond ||
		r.requests != 221584 || r.errors != 7 {
		t.Errorf("got %+v", r)
	}
	us := "  Latency Distribution\n     50%  410.00us\n     99%    1.02s\nRequests/sec:  1.5\n"
	if r, err := parseWrk(us); err != nil || r.p50 != 410*time.Microsecond || r.p99 != 1020*time.Millisecond {
		t.Errorf("got %+v, %v", r, err)
	}
	if _, err := parseWrk("Requests/sec: 1\n"); err == nil {
		t.Error("no latency distribution: want an error")
	}
}
