package router

import (
	"errors"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pierpaas/pier/api"
)

// metrics are the proxy's Prometheus series: per http route (by route
// ID, which stays put while its domain or path change) and per service.
// A route's series are made when it enters the table and deleted when it
// leaves, so the set of series follows the routes; requests look their
// route's up in a map swapped with the table instead of hashing label
// values on every request.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inflight *prometheus.GaugeVec
	backends *prometheus.GaugeVec
	unrouted prometheus.Counter

	routes atomic.Pointer[map[string]*routeMetrics] // written under Proxy.swap
}

// statusClasses are the values of the "code" label.
var statusClasses = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

type routeMetrics struct {
	codes    [len(statusClasses)]prometheus.Counter
	duration prometheus.Observer
	inflight prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	return &metrics{
		requests: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pier_router_requests_total",
			Help: "HTTP requests the router answered, by route and status class (1xx counts upgraded connections).",
		}, []string{"route", "code"})),
		duration: register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "pier_router_request_duration_seconds",
			Help: "Time from a request's arrival to the end of its response, by route; upgraded connections are left out.",
			// 0.5ms to about 16s: backends on the same network answer
			// in well under a millisecond.
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"route"})),
		inflight: register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pier_router_requests_in_flight",
			Help: "Requests the router is answering, by route.",
		}, []string{"route"})),
		backends: register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pier_router_backends",
			Help: "Instances discovery lists for a service some route names.",
		}, []string{"service"})),
		unrouted: register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pier_router_unrouted_requests_total",
			Help: "HTTP requests no route matched (answered 404).",
		})),
	}
}

// register registers c, or returns the collector already registered in
// its place: two proxies on one registry (tests, a restarted router in
// one process) then share series rather than fail.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		// A clash with a different metric of the same name: keep
		// counting, unexported, rather than fail the router.
	}
	return c
}

// setRoutes makes the series of t's http routes and deletes those of
// routes it no longer has.
func (m *metrics) setRoutes(t *Table) {
	prev := m.routes.Load()
	next := make(map[string]*routeMetrics, t.Len())
	for _, r := range t.Routes() {
		if r.Type != api.RouteHTTP {
			continue
		}
		if prev != nil && (*prev)[r.ID] != nil {
			next[r.ID] = (*prev)[r.ID]
			continue
		}
		rm := &routeMetrics{
			duration: m.duration.WithLabelValues(r.ID),
			inflight: m.inflight.WithLabelValues(r.ID),
		}
		for i, class := range statusClasses {
			rm.codes[i] = m.requests.WithLabelValues(r.ID, class)
		}
		next[r.ID] = rm
	}
	if prev != nil {
		for id := range *prev {
			if next[id] != nil {
				continue
			}
			// Requests still in flight on the route hold their
			// routeMetrics, now detached: they cannot bring the series
			// back.
			m.duration.DeleteLabelValues(id)
			m.inflight.DeleteLabelValues(id)
			for _, class := range statusClasses {
				m.requests.DeleteLabelValues(id, class)
			}
		}
	}
	m.routes.Store(&next)
}

// route is a route's series; nil if the route is not in the table the
// metrics last saw.
func (m *metrics) route(id string) *routeMetrics {
	if rs := m.routes.Load(); rs != nil {
		return (*rs)[id]
	}
	return nil
}

// setBackends is Backends.count: n backends of service, or -1 when the
// service's watch stopped.
func (m *metrics) setBackends(service string, n int) {
	if n < 0 {
		m.backends.DeleteLabelValues(service)
		return
	}
	m.backends.WithLabelValues(service).Set(float64(n))
}

// statusClass is the index of a status code's class in statusClasses.
func statusClass(code int) int {
	return min(max(code/100, 1), 5) - 1
}
