package shared

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNewLogger_Format(t *testing.T) {
	tests := []struct {
		name     string
		give     LogFormat
		wantJSON bool
	}{
		{name: "ok/zero_is_json", wantJSON: true},
		{name: "ok/json", give: LogJSON, wantJSON: true},
		{name: "ok/text", give: LogText},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			NewLogger(&buf, "test", slog.LevelInfo, tt.give).Info("started", "addr", "127.0.0.1:1")
			line := strings.TrimSuffix(buf.String(), "\n")
			require.NotContains(t, line, "\n", "one line per record")
			var m map[string]any
			if tt.wantJSON {
				require.NoError(t, json.Unmarshal([]byte(line), &m))
				assert.Equal(t, "started", m["msg"])
				assert.Equal(t, "test", m["service"])
				return
			}
			require.Error(t, json.Unmarshal([]byte(line), &m))
			assert.Contains(t, line, "level=INFO msg=started service=test addr=127.0.0.1:1")
		})
	}
}

func TestLogFormat_UnmarshalText(t *testing.T) {
	var f LogFormat
	require.NoError(t, f.UnmarshalText([]byte("text")))
	assert.Equal(t, LogText, f)
	require.Error(t, f.UnmarshalText([]byte("yaml")))
	require.Error(t, f.UnmarshalText([]byte("")))
	assert.Equal(t, LogText, f, "a refused value leaves the format as it was")
	b, err := LogFormat("").MarshalText()
	require.NoError(t, err)
	assert.Equal(t, "json", string(b))
}

// TestRequestLog_PolledRoutes: a polled route's requests log at debug,
// its server errors at warn, and every other route at info as before.
func TestRequestLog_PolledRoutes(t *testing.T) {
	tests := []struct {
		name      string
		giveLevel slog.Level
		givePath  string
		wantLevel string // "" when no request line is logged
	}{
		{name: "ok/polled_hidden_at_info", giveLevel: slog.LevelInfo, givePath: "/list"},
		{name: "ok/polled_shown_at_debug", giveLevel: slog.LevelDebug, givePath: "/list", wantLevel: "DEBUG"},
		{name: "ok/polled_not_modified_hidden", giveLevel: slog.LevelInfo, givePath: "/list?status=304"},
		{name: "fail/polled_server_error_warns", giveLevel: slog.LevelInfo, givePath: "/list?status=503", wantLevel: "WARN"},
		{name: "ok/other_route_at_info", giveLevel: slog.LevelInfo, givePath: "/page", wantLevel: "INFO"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			e := NewEcho(EchoConfig{Service: "Test", Logger: NewLogger(&logs, "test", tt.giveLevel, LogJSON),
				Metrics: NewMetrics(), PolledRoutes: []string{"/list"}})
			handler := func(c echo.Context) error {
				if s := c.QueryParam("status"); s == "304" {
					return c.NoContent(http.StatusNotModified)
				} else if s == "503" {
					return c.String(http.StatusServiceUnavailable, "down")
				}
				return c.String(http.StatusOK, "ok")
			}
			e.GET("/list", handler)
			e.GET("/page", handler)
			e.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, tt.givePath, nil))

			var got string
			for l := range strings.SplitSeq(strings.TrimSpace(logs.String()), "\n") {
				var m map[string]any
				if l != "" && json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "request" {
					got = m["level"].(string)
				}
			}
			assert.Equal(t, tt.wantLevel, got)
		})
	}
}
