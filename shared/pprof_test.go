package shared

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCheckLoopback(t *testing.T) {
	tests := []struct {
		name    string
		give    string
		wantErr bool
	}{
		{name: "ok/ipv4", give: "127.0.0.1:6060"},
		{name: "ok/ipv4_other_loopback", give: "127.0.0.2:6060"},
		{name: "ok/ipv6", give: "[::1]:6060"},
		{name: "ok/localhost", give: "localhost:0"},
		{name: "fail/all_interfaces", give: ":6060", wantErr: true},
		{name: "fail/unspecified", give: "0.0.0.0:6060", wantErr: true},
		{name: "fail/ipv6_unspecified", give: "[::]:6060", wantErr: true},
		{name: "fail/public", give: "192.0.2.1:6060", wantErr: true},
		{name: "fail/hostname", give: "localhost.example.test:6060", wantErr: true},
		{name: "fail/no_port", give: "127.0.0.1", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckLoopback(tt.give)
			if tt.wantErr {
				assert.Error(t, err)
				return
			}
			assert.NoError(t, err)
		})
	}
}

func TestServePprof(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	addr, done := startPprof(t, ctx, "127.0.0.1:0")

	res, err := http.Get("http://" + addr + "/debug/pprof/cmdline")
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
	assert.Equal(t, http.StatusOK, res.StatusCode)
	res, err = http.Get("http://" + addr + "/debug/pprof/heap?debug=1")
	require.NoError(t, err)
	body, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.Contains(t, string(body), "heap profile")

	cancel()
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("ServePprof did not stop with its context")
	}
}

// TestServePprof_RefusesRebindingHost: a request through a name that
// resolves to loopback (DNS rebinding from a web page) carries that name
// in Host and is refused; loopback literals and localhost are served.
func TestServePprof_RefusesRebindingHost(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	addr, _ := startPprof(t, ctx, "127.0.0.1:0")
	_, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	tests := []struct {
		giveHost   string
		giveHeader string // "Name: value", a header a browser adds
		wantStatus int
	}{
		{giveHost: "attacker.example.test:" + port, wantStatus: http.StatusForbidden},
		{giveHost: "attacker.example.test", wantStatus: http.StatusForbidden},
		{giveHost: "127.0.0.1:" + port, giveHeader: "Origin: http://attacker.example.test", wantStatus: http.StatusForbidden},
		{giveHost: "127.0.0.1:" + port, giveHeader: "Sec-Fetch-Site: cross-site", wantStatus: http.StatusForbidden},
		{giveHost: "127.0.0.1:" + port, giveHeader: "Sec-Fetch-Site: none", wantStatus: http.StatusOK},
		{giveHost: "127.0.0.1:" + port, wantStatus: http.StatusOK},
		{giveHost: "localhost:" + port, wantStatus: http.StatusOK},
		{giveHost: "[::1]:" + port, wantStatus: http.StatusOK},
		{giveHost: "[::1]", wantStatus: http.StatusOK},
	}
	for _, tt := range tests {
		req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/debug/pprof/cmdline", nil)
		require.NoError(t, err)
		req.Host = tt.giveHost
		if name, value, ok := strings.Cut(tt.giveHeader, ": "); ok {
			req.Header.Set(name, value)
		}
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
		assert.Equal(t, tt.wantStatus, res.StatusCode, tt.giveHost+" "+tt.giveHeader)
	}
}

func TestServePprof_RefusesNonLoopback(t *testing.T) {
	err := ServePprof(t.Context(), ":0", slog.New(slog.DiscardHandler), func(string) { t.Error("listened") })
	assert.ErrorContains(t, err, "not a loopback address")
}

// TestServePprof_Localhost: "localhost" is served where it resolves,
// which must be a loopback address.
func TestServePprof_Localhost(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	addr, done := startPprof(t, ctx, "localhost:0")
	host, _, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	assert.True(t, net.ParseIP(host).IsLoopback(), addr)
	cancel()
	assert.NoError(t, <-done)
}

// startPprof runs ServePprof on addr until ctx is done and returns the
// address it bound and the channel its result arrives on.
func startPprof(t *testing.T, ctx context.Context, addr string) (string, <-chan error) {
	t.Helper()
	bound := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- ServePprof(ctx, addr, slog.New(slog.DiscardHandler), func(addr string) { bound <- addr })
	}()
	select {
	case a := <-bound:
		return a, done
	case err := <-done:
		t.Fatalf("ServePprof: %v", err)
		return "", nil
	}
}
