package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the server's Prometheus series, on a registry of its own (no
// global state, so several servers can run in one test process).
type metrics struct {
	reg         *prometheus.Registry
	requests    *prometheus.HistogramVec
	enrollments *prometheus.CounterVec
	codeFailed  prometheus.Counter
	rateLimited prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
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
	m.reg.MustRegister(m.requests, m.enrollments, m.codeFailed, m.rateLimited,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// observeRequest records one request under its route pattern (never the raw
// path, whose ids would explode the label space).
func (m *metrics) observeRequest(listener string, r *http.Request, status int, d time.Duration) {
	route := r.Pattern
	if route == "" {
		route = "unmatched"
	}
	m.requests.WithLabelValues(listener, route, strconv.Itoa(status)).Observe(d.Seconds())
}

func (m *metrics) step(step string, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.enrollments.WithLabelValues(step, result).Inc()
}
