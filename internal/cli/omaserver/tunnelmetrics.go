package omaserver

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/oma-enroll/oma-enroll/internal/tunnel/endpoint"
)

// tunnelLimitMetrics exports the embedded SSH endpoint's limit counters:
// what unauthenticated peers and logged-in VMAs had refused, counted
// instead of logged line by line.
func tunnelLimitMetrics(ep *endpoint.Endpoint) []prometheus.Collector {
	refused := func(reason string, get func(endpoint.Stats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "oma_enroll_tunnel_connections_refused_total",
			Help:        "Public-port connections closed by a per-address limit before authentication, by reason.",
			ConstLabels: prometheus.Labels{"reason": reason},
		}, func() float64 { return float64(get(ep.Stats())) })
	}
	counter := func(name, help string, get func(endpoint.Stats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(get(ep.Stats())) })
	}
	return []prometheus.Collector{
		refused("connection_rate", func(s endpoint.Stats) uint64 { return s.ConnRateLimited }),
		refused("failed_logins", func(s endpoint.Stats) uint64 { return s.AuthLocked }),
		refused("unauthenticated_cap", func(s endpoint.Stats) uint64 { return s.PreAuthCapped }),
		counter("oma_enroll_tunnel_login_failures_total", "Refused SSH login attempts on the embedded endpoint (wrong user, key type or key).",
			func(s endpoint.Stats) uint64 { return s.AuthFailures }),
		counter("oma_enroll_tunnel_requests_refused_total", "Refused forwards and channels of logged-in VMAs.",
			func(s endpoint.Stats) uint64 { return s.RequestsRefused }),
		counter("oma_enroll_tunnel_closed_for_refusals_total", "Tunnels closed after too many refused requests.",
			func(s endpoint.Stats) uint64 { return s.ClosedForRefusals }),
	}
}
