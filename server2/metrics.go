package main

import (
	"math"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/handoffbroker/handoff/shared"
)

// Metrics are SERVER2's series: the common HTTP ones, and the relying
// service's verification, JWKS, replay store and revocation series.
type Metrics struct {
	*shared.Metrics
	// Verifications counts token checks by result ("accepted"/"rejected")
	// and reason ("ok" or a broker reason).
	Verifications *prometheus.CounterVec
	// JWKSFetches counts fetches of the issuer's JWKS by result.
	JWKSFetches *prometheus.CounterVec
	// ReplayErrors counts replay-store failures by kind.
	ReplayErrors *prometheus.CounterVec
	// ReplayLatency observes replay-store operation latency in seconds.
	ReplayLatency prometheus.Histogram
	// RevocationFetches counts polls of the issuer's revocation list by
	// result.
	RevocationFetches *prometheus.CounterVec

	// accepted is Verifications{result="accepted",reason="ok"}, looked up
	// once instead of per handoff.
	accepted prometheus.Counter
}

func newMetrics() *Metrics {
	m := &Metrics{
		Verifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "handoff_verifications_total", Help: "Token verifications by result and reason.",
		}, []string{"result", "reason"}),
		JWKSFetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "handoff_jwks_fetches_total", Help: "Fetches of the issuer's JWKS by result.",
		}, []string{"result"}),
		ReplayErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "handoff_replay_store_errors_total", Help: "Replay store failures by kind.",
		}, []string{"kind"}),
		ReplayLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "handoff_replay_store_seconds", Help: "Replay store operation latency.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25},
		}),
		RevocationFetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "handoff_revocation_fetches_total", Help: "Polls of the issuer's revocation list by result.",
		}, []string{"result"}),
	}
	m.accepted = m.Verifications.WithLabelValues("accepted", "ok")
	m.Metrics = shared.NewMetrics(m.Verifications, m.JWKSFetches, m.ReplayErrors, m.ReplayLatency, m.RevocationFetches)
	return m
}

// registerGauges registers the gauges read from the app's state at each
// scrape: how old the JWKS and the revocation list held are, and how many
// entries the list has.
func (a *App) registerGauges() {
	a.metrics.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "handoff_jwks_age_seconds",
			Help: "Seconds since the issuer's JWKS was last fetched successfully; +Inf before the first fetch.",
		}, a.jwksAge),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "handoff_revocation_list_age_seconds",
			Help: "Seconds since the issuer's revocation list was last polled successfully; -1 before the first poll.",
		}, a.revocationListAge),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "handoff_revocation_list_entries",
			Help: "Entries (tokens, subjects, keys) in the revocation list held.",
		}, func() float64 { return float64(a.rp.Status().Revocation.Entries) }))
}

func (a *App) jwksAge() float64 {
	at := a.rp.Status().Keys.FetchedAt
	if at.IsZero() {
		return math.Inf(1)
	}
	return a.opts.Now().Sub(at).Seconds()
}
