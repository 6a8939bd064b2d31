package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/handoffbroker/handoff/shared"
)

// metrics are SERVER1's series: the common HTTP ones, and the issuer's.
type metrics struct {
	*shared.Metrics
	// TokensMinted counts tokens signed, by audience.
	TokensMinted *prometheus.CounterVec
	// JWKSServed counts answers on the JWKS endpoint.
	JWKSServed prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		TokensMinted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "handoff_tokens_minted_total", Help: "Handoff tokens signed, by audience.",
		}, []string{"audience"}),
		JWKSServed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "handoff_jwks_served_total", Help: "Responses served on the JWKS endpoint.",
		}),
	}
	m.Metrics = shared.NewMetrics(m.TokensMinted, m.JWKSServed)
	return m
}
