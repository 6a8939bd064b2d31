package shared

import (
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the Prometheus series every server exposes on /metrics: the
// HTTP responses it served, and the Go runtime and process collectors. A
// server registers its own series beside them, with NewMetrics or later on
// Registry, so its /metrics shows only what it moves.
type Metrics struct {
	// Registry holds the series /metrics serves. Register a server's own
	// collectors on it.
	Registry *prometheus.Registry

	// HTTPRequests counts responses by route pattern, method and status.
	HTTPRequests *prometheus.CounterVec
}

// NewMetrics registers the common series, and the server's own
// collectors, on a fresh registry. It panics if two collectors clash, as
// prometheus.Registry.MustRegister does: a programming error.
func NewMetrics(own ...prometheus.Collector) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "handoff_http_requests_total", Help: "HTTP responses by route, method and status code.",
		}, []string{"route", "method", "code"}),
	}
	reg.MustRegister(m.HTTPRequests,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(own...)
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
