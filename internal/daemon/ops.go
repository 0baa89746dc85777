package daemon

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewRegistry returns a fresh Prometheus registry holding the Go runtime and
// process collectors. Daemons use their own registry rather than the global
// default so that several of them can live in one test process (the
// in-process test cluster) without duplicate-registration panics.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// Handler returns the ops HTTP handler: /livez, /readyz and /metrics for reg
// (a NewRegistry when nil). It carries no authentication of its own:
// probes and scrapers must reach it without cluster credentials, and nothing
// it serves is secret or changes state.
func (h *Health) Handler(reg *prometheus.Registry) http.Handler {
	if reg == nil {
		reg = NewRegistry()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", serveLive)
	mux.HandleFunc("GET /readyz", h.serveReady)
	// ContinueOnError: one broken collector should cost its own series, not
	// blank the whole scrape during the incident you need metrics for.
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		Registry:      reg,
		ErrorHandling: promhttp.ContinueOnError,
	})
	mux.Handle("GET /metrics", promhttp.InstrumentMetricHandler(reg, metrics))
	return mux
}

// serveLive answers 200 whenever the process can serve HTTP at all. It runs
// no dependency checks on purpose: supervisors restart on liveness failure,
// and restarting every daemon because etcd is briefly unreachable turns a
// blip into an outage. Dependencies belong in /readyz.
func serveLive(w http.ResponseWriter, _ *http.Request) {
	plainHeaders(w)
	fmt.Fprintln(w, "ok")
}

// serveReady runs the checks and answers 200 or 503. The body follows the
// Kubernetes convention ("[+]name ok", "[-]name failed: reason") so operators
// and existing tooling can read it without learning a new format.
func (h *Health) serveReady(w http.ResponseWriter, r *http.Request) {
	results := h.Check(r.Context())
	verbose := r.URL.Query().Has("verbose")

	var b strings.Builder
	failed := false
	for _, res := range results {
		if res.Err != nil {
			failed = true
			fmt.Fprintf(&b, "[-]%s failed: %v\n", res.Name, res.Err)
		} else if verbose {
			fmt.Fprintf(&b, "[+]%s ok\n", res.Name)
		}
	}

	plainHeaders(w)
	switch {
	case failed:
		w.WriteHeader(http.StatusServiceUnavailable)
		b.WriteString("readyz check failed\n")
	case verbose:
		b.WriteString("readyz check passed\n")
	default:
		b.WriteString("ok\n")
	}
	fmt.Fprint(w, b.String())
}

func plainHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	// Probes must see the current state, never a proxy's cached copy.
	h.Set("Cache-Control", "no-store")
}
