package replica

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are a replicator's Prometheus metrics.
type Metrics struct {
	copied  prometheus.Counter
	failed  prometheus.Counter
	missing prometheus.Gauge
}

// NewMetrics makes a replicator's metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		copied: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pier_blobs_copied_total", Help: "Blobs this server copied from the other servers.",
		}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pier_blobs_copy_failures_total", Help: "Copies of a blob from the other servers that failed (no live server had it, or none answered).",
		}),
		missing: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pier_blobs_missing", Help: "Kept blobs this server lacks and no live server has, at the last replication pass: lost unless a server that has them comes back.",
		}),
	}
	for _, c := range []prometheus.Collector{m.copied, m.failed, m.missing} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
