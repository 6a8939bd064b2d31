package shared

import (
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// EchoConfig configures NewEcho.
type EchoConfig struct {
	// Service names the server in page titles and logs. Required.
	Service string
	// Logger receives request and error logs. Required.
	Logger *slog.Logger
	// Metrics counts requests. Required.
	Metrics *Metrics
	// BodyLimit caps request bodies. Default "64K".
	BodyLimit string
	// PolledRoutes are routes other servers fetch on a timer (SERVER1's
	// /revocations, which every relying service polls every few
	// seconds): their requests log at debug, so the poll does not bury
	// the log, except answers of 500 and above, which log at warn.
	// Default none.
	PolledRoutes []string
}

// NewEcho returns an echo instance with the middleware every server uses, in
// order: panic recovery, a fresh correlation id, request logging (method,
// route, path, status, latency: never the query string, which may hold a
// token someone pasted there), metrics, security headers and a body limit.
// It also serves /healthz, /metrics, /assets/site.css and /favicon.ico (an
// SVG icon, cacheable for a day), and renders pages
// through a Renderer the caller sets with e.Renderer.
func NewEcho(cfg EchoConfig) *echo.Echo {
	if cfg.BodyLimit == "" {
		cfg.BodyLimit = "64K"
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = NewErrorHandler(cfg.Logger)
	e.IPExtractor = echo.ExtractIPDirect()
	e.Use(
		middleware.RecoverWithConfig(middleware.RecoverConfig{DisableStackAll: true, LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			cfg.Logger.Error("panic", "request_id", RequestID(c), "error", err.Error(), "stack", string(stack))
			return err
		}}),
		middleware.RequestIDWithConfig(middleware.RequestIDConfig{
			// Always generate: an id taken from the client could be forged
			// to confuse log correlation.
			Generator: uuid.NewString,
		}),
		requestLogger(cfg.Logger, cfg.PolledRoutes),
		cfg.Metrics.middleware(),
		SecurityHeaders,
		middleware.BodyLimit(cfg.BodyLimit),
	)
	e.GET("/healthz", func(c echo.Context) error { return c.String(http.StatusOK, "ok\n") })
	e.GET("/metrics", echo.WrapHandler(cfg.Metrics.Handler()))
	e.GET("/assets/site.css", func(c echo.Context) error {
		c.Response().Header().Set("Cache-Control", "public, max-age=3600")
		return c.Blob(http.StatusOK, "text/css; charset=utf-8", siteCSS)
	})
	e.GET(FaviconPath, func(c echo.Context) error {
		c.Response().Header().Set("Cache-Control", "public, max-age=86400")
		return c.Blob(http.StatusOK, "image/svg+xml", favicon)
	})
	return e
}

// FaviconPath is where both servers serve their icon: the path browsers
// ask for when a page names none, and the one the layout names.
const FaviconPath = "/favicon.ico"

// RequestID returns the correlation id of the request.
func RequestID(c echo.Context) string {
	return c.Response().Header().Get(echo.HeaderXRequestID)
}

func requestLogger(log *slog.Logger, polled []string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				c.Error(err)
			}
			route := c.Path()
			if route == "/metrics" || route == "/healthz" || route == "/readyz" {
				return nil
			}
			req := c.Request()
			level := slog.LevelInfo
			if slices.Contains(polled, route) {
				level = slog.LevelDebug
				if c.Response().Status >= http.StatusInternalServerError {
					level = slog.LevelWarn
				}
			}
			if !log.Enabled(req.Context(), level) {
				return nil
			}
			// Typed attributes: the line costs no boxing allocations.
			log.LogAttrs(req.Context(), level, "request",
				slog.String("request_id", RequestID(c)),
				slog.String("method", req.Method),
				slog.String("route", route),
				slog.String("path", req.URL.Path),
				slog.Int("status", c.Response().Status),
				slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
				slog.String("remote", c.RealIP()),
			)
			return nil
		}
	}
}

// DefaultCSP is the Content-Security-Policy of every page unless a handler
// sets its own: no scripts at all, styles only from this origin, forms only
// to this origin, never framed (clickjacking).
const DefaultCSP = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// securityHeaders are the headers of every response, in canonical form,
// each value a one-element slice at full capacity: SecurityHeaders puts
// these slices in the response header without allocating, and a later
// Set replaces a slice and an Add copies it, so no response can change
// another's. Nothing may write to an element in place.
var securityHeaders = []struct {
	key   string
	value []string
}{
	{"Content-Security-Policy", []string{DefaultCSP}},
	{"X-Content-Type-Options", []string{"nosniff"}},
	{"X-Frame-Options", []string{"DENY"}},
	// Pages may carry task details: never leak the URL onwards.
	{"Referrer-Policy", []string{"no-referrer"}},
	{"Cross-Origin-Opener-Policy", []string{"same-origin"}},
	{"Cache-Control", []string{"no-store"}},
}

var hsts = []string{"max-age=31536000"}

// SecurityHeaders sets the headers every response carries. Handlers may
// replace Content-Security-Policy (the auto-submit page) and Cache-Control
// (the JWKS) before writing.
func SecurityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		for _, sh := range securityHeaders {
			h[sh.key] = sh.value
		}
		if c.IsTLS() {
			h["Strict-Transport-Security"] = hsts
		}
		return next(c)
	}
}
