package shared

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/handoffbroker/handoff/broker/token"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseFlagsAndEnv(t *testing.T) {
	tests := []struct {
		name     string
		giveArgs []string
		giveEnv  map[string]string
		wantAddr string
		wantDir  string
	}{
		{name: "ok/defaults", wantAddr: "localhost:8081", wantDir: "keys"},
		{name: "ok/env", giveEnv: map[string]string{"SERVER1_ADDR": ":1", "SERVER1_KEYS_DIR": "/k"}, wantAddr: ":1", wantDir: "/k"},
		{name: "ok/flag_beats_env", giveArgs: []string{"--addr", ":2"}, giveEnv: map[string]string{"SERVER1_ADDR": ":1"}, wantAddr: ":2", wantDir: "keys"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.giveEnv {
				t.Setenv(k, v)
			}
			fs := flag.NewFlagSet("server1", flag.ContinueOnError)
			addr := fs.String("addr", "localhost:8081", "")
			dir := fs.String("keys-dir", "keys", "")
			require.NoError(t, ParseFlagsAndEnv(fs, "SERVER1", tt.giveArgs))
			assert.Equal(t, tt.wantAddr, *addr)
			assert.Equal(t, tt.wantDir, *dir)
		})
	}
}

func TestParseFlagsAndEnvRejectsBadValue(t *testing.T) {
	t.Setenv("SERVER2_LEEWAY", "soon")
	fs := flag.NewFlagSet("server2", flag.ContinueOnError)
	fs.Duration("leeway", 0, "")
	err := ParseFlagsAndEnv(fs, "SERVER2", nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "SERVER2_LEEWAY")
}

func newTestEcho(t testing.TB) (*echo.Echo, *bytes.Buffer, *Metrics) {
	t.Helper()
	var logs bytes.Buffer
	m := NewMetrics()
	e := NewEcho(EchoConfig{Service: "Test", Logger: NewLogger(&logs, "test", slog.LevelInfo, LogJSON), Metrics: m})
	r, err := NewRenderer("Test", fstest.MapFS{})
	require.NoError(t, err)
	e.Renderer = r
	return e, &logs, m
}

func TestErrorHandler(t *testing.T) {
	replayed := &token.Error{Reason: token.ReasonReplayed, Detail: "jti already used", TokenID: "j-1"}
	tests := []struct {
		name          string
		givePath      string
		giveErr       error
		wantStatus    int
		wantCode      string
		wantProblem   bool
		wantChallenge bool
	}{
		{name: "html/replayed", givePath: "/handoff", giveErr: FromBroker(replayed, false), wantStatus: 409, wantCode: "replayed"},
		{name: "html/bare_broker_error", givePath: "/handoff", giveErr: replayed, wantStatus: 409, wantCode: "replayed"},
		{name: "api/replayed_has_no_challenge", givePath: "/api/v1/x", giveErr: FromBroker(replayed, true), wantStatus: 409, wantCode: "replayed", wantProblem: true},
		{name: "api/expired", givePath: "/api/v1/x", giveErr: FromBroker(&token.Error{Reason: token.ReasonExpired}, true), wantStatus: 401, wantCode: "expired", wantProblem: true, wantChallenge: true},
		{name: "api/unavailable_has_no_challenge", givePath: "/api/v1/x", giveErr: FromBroker(&token.Error{Reason: token.ReasonUnavailable}, true), wantStatus: 503, wantCode: "unavailable", wantProblem: true},
		{name: "api/internal", givePath: "/api/v1/x", giveErr: errors.New("db exploded"), wantStatus: 500, wantCode: "internal", wantProblem: true},
		{name: "html/echo_404", givePath: "/nowhere", wantStatus: 404, wantCode: "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, logs, _ := newTestEcho(t)
			if tt.giveErr != nil {
				e.POST(tt.givePath, func(echo.Context) error { return tt.giveErr })
			}
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, tt.givePath, nil))

			assert.Equal(t, tt.wantStatus, rec.Code)
			assert.Equal(t, "no-store", rec.Header().Get("Cache-Control"))
			assert.Equal(t, tt.wantChallenge, strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), `Bearer error="invalid_token"`))
			rid := rec.Header().Get(echo.HeaderXRequestID)
			require.NotEmpty(t, rid)
			if tt.wantProblem {
				assert.Equal(t, "application/problem+json", rec.Header().Get("Content-Type"))
				var p Problem
				require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &p))
				assert.Equal(t, tt.wantCode, p.Code)
				assert.Equal(t, tt.wantStatus, p.Status)
				assert.Equal(t, ProblemTypeBase+tt.wantCode, p.Type)
				assert.Equal(t, rid, p.RequestID)
				assert.NotContains(t, rec.Body.String(), "db exploded", "internal detail must not reach the client")
			} else {
				assert.Contains(t, rec.Header().Get("Content-Type"), "text/html")
				assert.Contains(t, rec.Body.String(), `<code id="reason">`+tt.wantCode+`</code>`)
				assert.Contains(t, rec.Body.String(), rid)
			}
			if tt.giveErr != nil {
				assert.Contains(t, logs.String(), rid, "the log line carries the correlation id")
			}
		})
	}
}

func TestSecurityHeadersAndRequestLog(t *testing.T) {
	e, logs, m := newTestEcho(t)
	e.GET("/page", func(c echo.Context) error { return c.String(http.StatusOK, "hi") })
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/page?token=secret-looking-value", nil))

	require.Equal(t, http.StatusOK, rec.Code)
	h := rec.Header()
	assert.Equal(t, DefaultCSP, h.Get("Content-Security-Policy"))
	assert.Equal(t, "nosniff", h.Get("X-Content-Type-Options"))
	assert.Equal(t, "DENY", h.Get("X-Frame-Options"))
	assert.Equal(t, "no-referrer", h.Get("Referrer-Policy"))
	assert.Contains(t, logs.String(), `"path":"/page"`)
	assert.NotContains(t, logs.String(), "secret-looking-value", "query strings are never logged")
	assert.Equal(t, 1.0, testutil.ToFloat64(m.HTTPRequests.WithLabelValues("/page", "GET", "200")))
}

// TestSecurityHeaders_PerResponse checks that a handler changing a
// security header changes its own response only: the values are shared
// between responses.
func TestSecurityHeaders_PerResponse(t *testing.T) {
	e, _, _ := newTestEcho(t)
	e.GET("/own", func(c echo.Context) error {
		c.Response().Header().Set("Content-Security-Policy", "default-src 'self'")
		c.Response().Header().Add("Cache-Control", "private")
		return c.String(http.StatusOK, "own")
	})
	e.GET("/page", func(c echo.Context) error { return c.String(http.StatusOK, "hi") })

	for range 2 {
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/own", nil))
		assert.Equal(t, "default-src 'self'", rec.Header().Get("Content-Security-Policy"))
		assert.Equal(t, []string{"no-store", "private"}, rec.Header().Values("Cache-Control"))

		rec = httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/page", nil))
		assert.Equal(t, DefaultCSP, rec.Header().Get("Content-Security-Policy"))
		assert.Equal(t, []string{"no-store"}, rec.Header().Values("Cache-Control"))
		assert.Empty(t, rec.Header().Get("Strict-Transport-Security"), "plain http")
	}
}

func TestBodyLimit(t *testing.T) {
	e, _, _ := newTestEcho(t)
	e.POST("/in", func(c echo.Context) error { return c.NoContent(http.StatusNoContent) })
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/in", strings.NewReader(strings.Repeat("a", 65<<10))))
	assert.Equal(t, http.StatusRequestEntityTooLarge, rec.Code)
}

func TestReadyz(t *testing.T) {
	pass := func(context.Context) error { return nil }
	fail := func(context.Context) error { return errors.New("down") }
	off := func(context.Context) error { return fmt.Errorf("revocation: %w", ErrCheckOff) }
	tests := []struct {
		name       string
		giveChecks []Check
		wantStatus int
		wantBody   map[string]string
	}{
		{name: "ok/all_pass", giveChecks: []Check{{"a", pass}, {"b", pass}}, wantStatus: http.StatusOK, wantBody: map[string]string{"a": "ok", "b": "ok"}},
		{name: "ok/off_is_ready_and_says_off", giveChecks: []Check{{"a", pass}, {"b", off}}, wantStatus: http.StatusOK, wantBody: map[string]string{"a": "ok", "b": "off"}},
		{name: "fail/one_fails", giveChecks: []Check{{"a", fail}, {"b", off}}, wantStatus: http.StatusServiceUnavailable, wantBody: map[string]string{"a": "fail", "b": "off"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := echo.New()
			e.GET("/readyz", Readyz(tt.giveChecks...))
			rec := httptest.NewRecorder()

			e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))

			assert.Equal(t, tt.wantStatus, rec.Code)
			var got map[string]string
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got))
			assert.Equal(t, tt.wantBody, got)
		})
	}
}

func TestParseServiceURL(t *testing.T) {
	tests := []struct {
		give    string
		wantErr bool
	}{
		{give: "https://portal.example.test/r"},
		{give: "http://127.0.0.1:8081/"},
		{give: "http://[::1]:8082/handoff"},
		{give: "http://my-portal.test:8443"},
		{give: "https://a;b.example/r", wantErr: true},
		{give: "https://a'b.example/r", wantErr: true},
		{give: "https://portal.test;script-src*/r", wantErr: true},
		{give: "ftp://portal.test/r", wantErr: true},
		{give: "/relative", wantErr: true},
		{give: "https://portal.test/r?x=1", wantErr: true},
		{give: "https://portal.test/r#f", wantErr: true},
		{give: "https://user:s3cret-pw@portal.test/r", wantErr: true},
	}
	for _, tt := range tests {
		u, err := ParseServiceURL(tt.give)
		if tt.wantErr {
			require.Error(t, err, tt.give)
			assert.NotContains(t, err.Error(), "s3cret-pw", "a refused URL's password is never repeated")
			continue
		}
		require.NoError(t, err, tt.give)
		assert.Equal(t, tt.give, u.String())
	}
}
