package main

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/shared/sharedtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestConfigPprofAddr(t *testing.T) {
	tests := []struct {
		name    string
		give    string
		wantErr bool
	}{
		{name: "ok/off", give: ""},
		{name: "ok/loopback", give: "127.0.0.1:6060"},
		{name: "ok/localhost", give: "localhost:0"},
		{name: "ok/ipv6_loopback", give: "[::1]:6060"},
		{name: "fail/all_interfaces", give: ":6060", wantErr: true},
		{name: "fail/unspecified", give: "0.0.0.0:6060", wantErr: true},
		{name: "fail/hostname", give: "example.test:6060", wantErr: true},
		{name: "fail/no_port", give: "127.0.0.1", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.PprofAddr = tt.give
			err := cfg.validate()
			if tt.wantErr {
				assert.ErrorContains(t, err, "pprof-addr")
				return
			}
			assert.NoError(t, err)
		})
	}
}

// TestServeCommand_Pprof: --pprof-addr serves the profiles on a listener
// of their own, and never on SERVER1's.
func TestServeCommand_Pprof(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	ctx, cancel := context.WithCancel(context.Background())
	out, logs := &sharedtest.Buffer{}, &sharedtest.Buffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--keys-dir", dir, "--pprof-addr", "127.0.0.1:0"}, out, logs)
	}()
	var base, pprofAddr string
	require.Eventually(t, func() bool {
		for _, l := range strings.Split(out.String(), "\n") {
			if rest, ok := strings.CutPrefix(l, "SERVER1 listening on "); ok {
				base = rest
			}
		}
		for _, l := range strings.Split(logs.String(), "\n") {
			var line struct{ Msg, Addr string }
			if json.Unmarshal([]byte(l), &line) == nil && line.Msg == "pprof listening" {
				pprofAddr = line.Addr
			}
		}
		return base != "" && pprofAddr != ""
	}, 10*time.Second, 10*time.Millisecond)

	get := func(url string) int {
		res, err := http.Get(url)
		require.NoError(t, err)
		res.Body.Close()
		return res.StatusCode
	}
	assert.Equal(t, http.StatusOK, get("http://"+pprofAddr+"/debug/pprof/cmdline"))
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/cmdline"} {
		assert.Equal(t, http.StatusNotFound, get(base+path), path)
	}

	cancel()
	select {
	case code := <-done:
		assert.Equal(t, 0, code)
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop")
	}
}
