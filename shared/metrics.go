package shared

import (
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the Prometheus series both servers expose on /metrics. Each
// server moves the ones that concern it; the rest stay at zero.
type Metrics struct {
	Registry *prometheus.Registry

	// HTTPRequests counts responses by route pattern, method and status.
	HTTPRequests *prometheus.CounterVec
	// TokensMinted counts tokens SERVER1 signed, by audience.
	TokensMinted *prometheus.CounterVec
	// Verifications counts SERVER2's token checks by result
	// ("accepted"/"rejected") and reason ("ok" or a broker reason).
	Verifications *prometheus.CounterVec
	// JWKSFetches counts SERVER2's fetches of SERVER1's JWKS by result.
	JWKSFetches *prometheus.CounterVec
	// JWKSServed counts SERVER1's answers on its JWKS endpoint.
	JWKSServed prometheus.Counter
	// ReplayErrors counts replay-store failures by kind.
	ReplayErrors *prometheus.CounterVec
	// ReplayLatency observes replay-store operation latency in seconds.
	ReplayLatency prometheus.Histogram
}

// NewMetrics registers the series on a fresh registry, with Go runtime and
// process collectors.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "handoff_http_requests_total", Help: "HTTP responses by route, method and status code.",
		}, []string{"route", "method", "code"}),
		TokensMinted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "handoff_tokens_minted_total", Help: "Handoff tokens signed, by audience.",
		}, []string{"audience"}),
		Verifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "handoff_verifications_total", Help: "Token verifications by result and reason.",
		}, []string{"result", "reason"}),
		JWKSFetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "handoff_jwks_fetches_total", Help: "Fetches of the issuer's JWKS by result.",
		}, []string{"result"}),
		JWKSServed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "handoff_jwks_served_total", Help: "Responses served on the JWKS endpoint.",
		}),
		ReplayErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "handoff_replay_store_errors_total", Help: "Replay store failures by kind.",
		}, []string{"kind"}),
		ReplayLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "handoff_replay_store_seconds", Help: "Replay store operation latency.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25},
		}),
	}
	reg.MustRegister(m.HTTPRequests, m.TokensMinted, m.Verifications, m.JWKSFetches,
		m.JWKSServed, m.ReplayErrors, m.ReplayLatency,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}

func (m *Metrics) middleware() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			err := next(c)
			if err != nil {
				c.Error(err)
			}
			route := c.Path()
			if route == "" {
				route = "unmatched" // bound label cardinality: never the raw path
			}
			m.HTTPRequests.WithLabelValues(route, c.Request().Method, strconv.Itoa(c.Response().Status)).Inc()
			return nil
		}
	}
}
