package server

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

// Metrics are the Prometheus series of /metrics, on a registry of their own
// (no global state, so several servers can run in one test process). The
// App builds them, feeds them the service's audit events (ObserveAudit)
// and registers the tunnel driver's counters (Register).
type Metrics struct {
	reg         *prometheus.Registry
	requests    *prometheus.HistogramVec
	enrollments *prometheus.CounterVec
	codeFailed  prometheus.Counter
	rateLimited prometheus.Counter
	events      *prometheus.CounterVec
	approval    prometheus.Histogram
	tunnelUp    prometheus.Histogram
}

// StateSource is what the gauges read at scrape time: the service
// (*enroll.Service), whose Active list carries each key's standing under
// the key expiry policy.
type StateSource interface {
	Enrollments(ctx context.Context, f enroll.EnrollmentFilter) ([]enroll.Enrollment, error)
	Active(ctx context.Context) ([]enroll.Connection, error)
}

// NewMetrics builds the series, with gauges read from state at scrape time.
func NewMetrics(state StateSource) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "oma_enroll_http_request_duration_seconds",
			Help:    "HTTP request duration by listener, route and status code.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"listener", "route", "code"}),
		enrollments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oma_enroll_enrollments_total",
			Help: "Enrollment operations by step and result.",
		}, []string{"step", "result"}),
		codeFailed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "oma_enroll_pairing_code_failures_total",
			Help: "Enroll requests refused because the pairing code was wrong, used or expired.",
		}),
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "oma_enroll_rate_limited_requests_total",
			Help: "Requests answered 429 by the per-IP rate limits.",
		}),
	}
	m.events = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "oma_enroll_audit_events_total",
		Help: "Audit events written, by event type (enrollment, verification, approval, rejection, connection, ...).",
	}, []string{"event_type"})
	latency := []float64{1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600}
	m.approval = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "oma_enroll_approval_latency_seconds",
		Help:    "Time from a VMA's enrollment request to its approval.",
		Buckets: latency,
	})
	m.tunnelUp = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "oma_enroll_tunnel_establishment_seconds",
		Help:    "Time from approval to the VMA's first tunnel connection.",
		Buckets: []float64{.1, .25, .5, 1, 2, 5, 10, 30, 60, 300, 1800},
	})
	m.reg.MustRegister(m.requests, m.enrollments, m.codeFailed, m.rateLimited, m.events, m.approval, m.tunnelUp,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newStateCollector(state))
	return m
}

// Register adds collectors (the tunnel endpoint's limit counters). Call it
// before the server runs.
func (m *Metrics) Register(cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := m.reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

func (m *Metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// observeRequest records one request under its route pattern (never the raw
// path, whose ids would explode the label space).
func (m *Metrics) observeRequest(listener string, r *http.Request, status int, d time.Duration) {
	route := r.Pattern
	if route == "" {
		route = "unmatched"
	}
	m.requests.WithLabelValues(listener, route, strconv.Itoa(status)).Observe(d.Seconds())
}

// ObserveAudit derives counters and latencies from committed audit events
// (the service's OnAudit).
func (m *Metrics) ObserveAudit(ev *enroll.AuditEvent) {
	m.events.WithLabelValues(string(ev.EventType)).Inc()
	d := ev.Details()
	switch ev.EventType {
	case enroll.EventApproval:
		if v, ok := d["waited_seconds"].(float64); ok {
			m.approval.Observe(v)
		}
	case enroll.EventConnection:
		if first, _ := d["first_connection"].(bool); first {
			if v, ok := d["since_approval_seconds"].(float64); ok {
				m.tunnelUp.Observe(v)
			}
		}
	}
}

// stateCollector reports gauges read from the database at scrape time, so
// that every instance sharing a database reports the same numbers.
type stateCollector struct {
	state                      StateSource
	pending, active, connected *prometheus.Desc
	// keys counts approved VMAs by key status; oldestKey is the age of
	// the oldest key (the key expiry policy, docs/rotation.md).
	keys, oldestKey *prometheus.Desc
}

func newStateCollector(state StateSource) *stateCollector {
	return &stateCollector{
		state:     state,
		pending:   prometheus.NewDesc("oma_enroll_pending_enrollments", "Enrollments awaiting approval.", nil, nil),
		active:    prometheus.NewDesc("oma_enroll_active_vmas", "Approved VMAs.", nil, nil),
		connected: prometheus.NewDesc("oma_enroll_connected_vmas", "Approved VMAs with a live tunnel.", nil, nil),
		keys: prometheus.NewDesc("oma_enroll_vma_keys", "Approved VMAs by the status of their key under the key expiry policy: ok, due (inside the rotation window), overdue (past --key-max-age), expired (refused).",
			[]string{"status"}, nil),
		oldestKey: prometheus.NewDesc("oma_enroll_vma_oldest_key_age_seconds", "Age of the oldest key of an approved VMA (since its approval or last rotation); 0 with no VMA.", nil, nil),
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pending
	ch <- c.active
	ch <- c.connected
	ch <- c.keys
	ch <- c.oldestKey
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if list, err := c.state.Enrollments(ctx, enroll.EnrollmentFilter{Statuses: []enroll.Status{enroll.StatusAwaitingApproval}}); err == nil {
		ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(len(list)))
	}
	if conns, err := c.state.Active(ctx); err == nil {
		connected := 0
		for _, cn := range conns {
			if cn.ConnectionStatus == enroll.ConnConnected {
				connected++
			}
		}
		ch <- prometheus.MustNewConstMetric(c.active, prometheus.GaugeValue, float64(len(conns)))
		ch <- prometheus.MustNewConstMetric(c.connected, prometheus.GaugeValue, float64(connected))
		byStatus := map[enroll.KeyStatus]int{}
		var oldest time.Duration
		for _, cn := range conns {
			if cn.Key != nil {
				byStatus[cn.Key.Status]++
				oldest = max(oldest, cn.Key.Age)
			}
		}
		for _, st := range enroll.KeyStatuses {
			ch <- prometheus.MustNewConstMetric(c.keys, prometheus.GaugeValue, float64(byStatus[st]), string(st))
		}
		ch <- prometheus.MustNewConstMetric(c.oldestKey, prometheus.GaugeValue, oldest.Seconds())
	}
}

func (m *Metrics) step(step string, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.enrollments.WithLabelValues(step, result).Inc()
}
