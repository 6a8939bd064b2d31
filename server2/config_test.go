package main

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/shared"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseConfig_Defaults(t *testing.T) {
	got, rest, err := parseConfig("server2", nil, io.Discard, nil)

	require.NoError(t, err)
	assert.Empty(t, rest)
	assert.Equal(t, Config{
		Addr:             "127.0.0.1:8082",
		Audience:         "http://127.0.0.1:8082",
		TrustedIssuer:    "http://localhost:8081",
		ReplayStore:      "memory",
		Leeway:           30 * time.Second,
		MaxTokenLifetime: 10 * time.Minute,
		JWKSTimeout:      5 * time.Second,
		JWKSMaxStale:     24 * time.Hour,
		JWKSCooldown:     10 * time.Second,
		JWKSMinRefresh:   time.Minute,
		SessionTTL:       15 * time.Minute,
		LogLevel:         slog.LevelInfo,
		LogFormat:        shared.LogJSON,

		CompletionRetention:   30 * 24 * time.Hour,
		MaxSessions:           100_000,
		MaxSessionsPerSubject: 10,

		RevocationInterval: 5 * time.Second,
		RevocationMaxStale: time.Minute,

		HandoffBinding: "required",
		BindingTTL:     2 * time.Minute,
	}, got)
}

func TestParseConfig_FlagsAndEnv(t *testing.T) {
	t.Setenv("SERVER2_JWKS_URL", "http://localhost:8081/jwks.json")
	t.Setenv("SERVER2_REVOCATION_URL", "http://localhost:8081/revocations")
	t.Setenv("SERVER2_SESSION_TTL", "5m")
	t.Setenv("SERVER2_LOG_LEVEL", "debug")
	t.Setenv("SERVER2_LOG_FORMAT", "text")
	t.Setenv("SERVER2_MAX_SESSIONS_PER_SUBJECT", "3")

	got, _, err := parseConfig("server2", []string{"--session-ttl", "7m", "--addr", "127.0.0.1:0"}, io.Discard, nil)

	require.NoError(t, err)
	assert.Equal(t, "http://localhost:8081/jwks.json", got.JWKSURL, "from the environment")
	assert.Equal(t, "http://localhost:8081/revocations", got.RevocationURL, "from the environment")
	assert.Equal(t, 7*time.Minute, got.SessionTTL, "the flag wins over the environment")
	assert.Equal(t, "127.0.0.1:0", got.Addr)
	assert.Equal(t, slog.LevelDebug, got.LogLevel)
	assert.Equal(t, shared.LogText, got.LogFormat)
	assert.Equal(t, 3, got.MaxSessionsPerSubject)
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name     string
		giveEdit func(*Config)
		wantErr  []string
	}{
		{name: "ok/defaults", giveEdit: func(*Config) {}},
		{name: "ok/redis", giveEdit: func(c *Config) { c.ReplayStore = "redis://127.0.0.1:6379/0" }},
		{name: "ok/revocation_url", giveEdit: func(c *Config) { c.RevocationURL = "http://localhost:8081/revocations" }},
		{name: "ok/jwks_url_with_revocation_url", giveEdit: func(c *Config) {
			c.JWKSURL = "http://localhost:8081/.well-known/jwks.json"
			c.RevocationURL = "http://localhost:8081/revocations"
		}},
		{name: "ok/jwks_url_with_revocation_off", giveEdit: func(c *Config) {
			c.JWKSURL = "http://localhost:8081/.well-known/jwks.json"
			c.RevocationURL = RevocationOff
		}},
		{name: "ok/discovery_with_revocation_off", giveEdit: func(c *Config) { c.RevocationURL = RevocationOff }},
		{
			name:     "fail/jwks_url_without_revocation_url",
			giveEdit: func(c *Config) { c.JWKSURL = "http://localhost:8081/.well-known/jwks.json" },
			wantErr:  []string{`revocation-url is required with jwks-url`, `"off"`},
		},
		{name: "fail/revocation_url_not_off_or_url", giveEdit: func(c *Config) { c.RevocationURL = "OFF" }, wantErr: []string{"revocation-url"}},
		{
			name: "fail/revocation",
			giveEdit: func(c *Config) {
				c.RevocationURL = "ftp://localhost/revocations"
				c.RevocationInterval = time.Minute
				c.RevocationMaxStale = 30 * time.Second
			},
			wantErr: []string{"revocation-url", "revocation-max-stale 30s must be at least revocation-interval 1m0s"},
		},
		{name: "ok/pprof_loopback", giveEdit: func(c *Config) { c.PprofAddr = "127.0.0.1:6060" }},
		{name: "ok/pprof_localhost", giveEdit: func(c *Config) { c.PprofAddr = "localhost:0" }},
		{name: "ok/pprof_ipv6_loopback", giveEdit: func(c *Config) { c.PprofAddr = "[::1]:6060" }},
		{name: "fail/pprof_all_interfaces", giveEdit: func(c *Config) { c.PprofAddr = ":6060" }, wantErr: []string{"pprof-addr", "not a loopback address"}},
		{name: "fail/pprof_public_ip", giveEdit: func(c *Config) { c.PprofAddr = "0.0.0.0:6060" }, wantErr: []string{"pprof-addr", "not a loopback address"}},
		{name: "fail/pprof_hostname", giveEdit: func(c *Config) { c.PprofAddr = "example.test:6060" }, wantErr: []string{"pprof-addr", "not a loopback address"}},
		{name: "fail/pprof_no_port", giveEdit: func(c *Config) { c.PprofAddr = "127.0.0.1" }, wantErr: []string{"pprof-addr"}},
		{name: "fail/max_sessions", giveEdit: func(c *Config) { c.MaxSessions = 0 }, wantErr: []string{"max-sessions must be positive"}},
		{
			name:     "fail/max_sessions_per_subject_above_total",
			giveEdit: func(c *Config) { c.MaxSessions, c.MaxSessionsPerSubject = 5, 6 },
			wantErr:  []string{"max-sessions-per-subject 6 must be between 1 and max-sessions 5"},
		},
		{name: "fail/revocation_interval", giveEdit: func(c *Config) { c.RevocationInterval = 0 }, wantErr: []string{"revocation-interval"}},
		{name: "ok/shortest_completion_retention", giveEdit: func(c *Config) { c.CompletionRetention = 26 * time.Minute }},
		{
			name:     "fail/completion_retention_shorter_than_a_session",
			giveEdit: func(c *Config) { c.CompletionRetention = 26*time.Minute - time.Second },
			wantErr:  []string{"completion-retention 25m59s must be at least session-ttl + max-token-lifetime + 2 × leeway = 26m0s"},
		},
		{name: "fail/completion_retention_zero", giveEdit: func(c *Config) { c.CompletionRetention = 0 }, wantErr: []string{"completion-retention must be positive"}},
		{
			name: "fail/everything_reported_at_once",
			giveEdit: func(c *Config) {
				c.TrustedIssuer = "localhost:8081"
				c.JWKSURL = "http://user:pw@issuer.test/jwks.json"
				c.RevocationURL = RevocationOff
				c.ReplayStore = "postgres://secret@db"
				c.Leeway = 5 * time.Minute
				c.SessionTTL = 0
			},
			wantErr: []string{"trusted-issuer", "jwks-url", "replay-store", "leeway", "session-ttl"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.giveEdit(&cfg)

			err := cfg.validate()

			if len(tt.wantErr) == 0 {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range tt.wantErr {
				assert.Contains(t, err.Error(), w)
			}
			assert.NotContains(t, err.Error(), "secret", "a store URL may hold a password")
			assert.NotContains(t, err.Error(), "pw@", "a URL may hold a password")
		})
	}
}

func TestDisplayAddr(t *testing.T) {
	assert.Equal(t, "127.0.0.1:4321", displayAddr("127.0.0.1:0", "127.0.0.1:4321"))
	assert.Equal(t, "localhost:8082", displayAddr("localhost:8082", "127.0.0.1:8082"))
	assert.Equal(t, "[::]:8082", displayAddr(":8082", "[::]:8082"))
}
