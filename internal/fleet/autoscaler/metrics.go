package autoscaler

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the fleet's Prometheus metrics.
type metrics struct {
	provisioning  *prometheus.HistogramVec
	bootFailures  *prometheus.CounterVec
	interruptions *prometheus.CounterVec
	events        *prometheus.CounterVec
	idleSeconds   *prometheus.CounterVec
}

// newMetrics makes the metrics and registers them with r (none when r is
// nil); the instance gauges are read from a's last pass at each scrape.
func newMetrics(r prometheus.Registerer, a *Autoscaler) (*metrics, error) {
	m := &metrics{
		provisioning: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hangar_fleet_provisioning_seconds",
			Help:    "Time from an instance being created to its agent registering, by class.",
			Buckets: prometheus.ExponentialBuckets(0.5, 2, 12),
		}, []string{"class"}),
		bootFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hangar_fleet_boot_failures_total",
			Help: "Instances deleted because their agent did not register within boot_timeout, by class.",
		}, []string{"class"}),
		interruptions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hangar_fleet_interruptions_total",
			Help: "Notices of instances going away on their own (spot reclaims, crashes), by class and kind.",
		}, []string{"class", "kind"}),
		idleSeconds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hangar_fleet_idle_instance_seconds_total",
			Help: "Instance-seconds spent ready and running nothing, by class: what warm pools cost.",
		}, []string{"class"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hangar_fleet_instance_events_total",
			Help: "Instance transitions (created, ready, draining, deleted, lost, boot_failed, interrupted, adopted), by class.",
		}, []string{"class", "kind"}),
	}
	if r == nil {
		return m, nil
	}
	instances := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hangar_fleet_classes", Help: "Runner classes configured."},
		func() float64 { return float64(len(a.cfg.Fleet.Classes)) })
	byState := &instanceCollector{a: a, desc: prometheus.NewDesc("hangar_fleet_instances",
		"Instances by class and state (booting, ready, draining), as the last reconcile saw them.", []string{"class", "state"}, nil)}
	for _, c := range []prometheus.Collector{m.provisioning, m.bootFailures, m.interruptions, m.events, m.idleSeconds, instances, byState} {
		if err := r.Register(c); err != nil {
			return nil, fmt.Errorf("register fleet metrics: %w", err)
		}
	}
	return m, nil
}

// instanceCollector reports the instances by class and state.
type instanceCollector struct {
	a    *Autoscaler
	desc *prometheus.Desc
}

func (c *instanceCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *instanceCollector) Collect(ch chan<- prometheus.Metric) {
	for _, cl := range c.a.Classes() {
		counts := map[string]int{"booting": 0, "ready": 0, "draining": 0}
		for _, in := range cl.Instances {
			counts[in.State]++
		}
		for state, n := range counts {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), cl.Name, state)
		}
	}
}
