package server

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/hangar-ci/hangar/internal/fleet"
	"github.com/hangar-ci/hangar/internal/store"
)

// Metrics are the server's Prometheus metrics, in a registry of their own.
type Metrics struct {
	registry *prometheus.Registry
	queued   prometheus.Histogram
	duration *prometheus.HistogramVec
	lost     prometheus.Counter
	// pickup and poolJobs are by fleet class: the agents of a class carry
	// its class label.
	pickup   *prometheus.HistogramVec
	poolJobs *prometheus.CounterVec
}

// NewMetrics registers the server's metrics; the job and agent gauges are
// read from s at each scrape.
func NewMetrics(s store.Store, agentFresh time.Duration) *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		queued: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "hangar_job_queue_seconds",
			Help:    "Time from a job becoming pending to an attempt starting.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hangar_job_duration_seconds",
			Help:    "Time from a job's first attempt starting to the job finishing, by final status.",
			Buckets: prometheus.ExponentialBuckets(0.01, 3, 12),
		}, []string{"status"}),
		lost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hangar_attempts_lost_total",
			Help: "Attempts whose agent was lost (lease expired) or handed them back.",
		}),
		pickup: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hangar_fleet_pickup_seconds",
			Help:    "Time from a job becoming pending to an instance of a fleet class starting it, by class.",
			Buckets: []float64{.01, .1, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900},
		}, []string{"class"}),
		poolJobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hangar_fleet_pool_jobs_total",
			Help: "Jobs started on a fleet class, by whether they found a warm runner (an instance there before the job was pending): warm/(all) is the pool hit rate.",
		}, []string{"class", "warm"}),
	}
	m.registry.MustRegister(m.queued, m.duration, m.lost, m.pickup, m.poolJobs,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&storeCollector{store: s, fresh: agentFresh})
	return m
}

// JobStarted observes a job's wait in the queue.
func (m *Metrics) JobStarted(queued time.Duration, agentLabels []string, warm bool) {
	m.queued.Observe(queued.Seconds())
	for _, l := range agentLabels {
		if class, ok := strings.CutPrefix(l, fleet.ClassLabelPrefix); ok {
			m.pickup.WithLabelValues(class).Observe(queued.Seconds())
			m.poolJobs.WithLabelValues(class, fmt.Sprint(warm)).Inc()
		}
	}
}

// JobFinished observes a job's duration.
func (m *Metrics) JobFinished(status store.JobStatus, took time.Duration) {
	m.duration.WithLabelValues(string(status)).Observe(took.Seconds())
}

// AttemptLost counts a lost attempt.
func (m *Metrics) AttemptLost() { m.lost.Inc() }

// storeCollector reads the queue depth and the connected agents from the
// store at scrape time, so every replica reports the same truth.
type storeCollector struct {
	store store.Store
	fresh time.Duration
}

var (
	jobsDesc   = prometheus.NewDesc("hangar_jobs", "Jobs by status (pending is the queue depth).", []string{"status"}, nil)
	agentsDesc = prometheus.NewDesc("hangar_agents_connected", "Active agents heard from within the last lease.", nil, nil)
)

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- jobsDesc
	ch <- agentsDesc
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var (
		counts map[store.JobStatus]int
		agents int
	)
	err := c.store.Read(ctx, func(tx store.Tx) error {
		var err error
		if counts, err = tx.Jobs().CountByStatus(ctx); err != nil {
			return err
		}
		list, err := tx.Agents().List(ctx, false)
		for _, a := range list {
			if a.Status == store.AgentActive && time.Since(a.LastSeenAt) < c.fresh {
				agents++
			}
		}
		return err
	})
	if err != nil {
		ch <- prometheus.NewInvalidMetric(jobsDesc, err)
		return
	}
	for _, st := range []store.JobStatus{store.JobCreated, store.JobPending, store.JobRunning, store.JobManual} {
		ch <- prometheus.MustNewConstMetric(jobsDesc, prometheus.GaugeValue, float64(counts[st]), string(st))
	}
	ch <- prometheus.MustNewConstMetric(agentsDesc, prometheus.GaugeValue, float64(agents))
}

// Registerer is where other parts of the control plane (the fleet)
// register their metrics, to be served with the server's.
func (m *Metrics) Registerer() prometheus.Registerer { return m.registry }
