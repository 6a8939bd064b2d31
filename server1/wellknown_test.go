package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/broker/brokertest"
	"github.com/handoffbroker/handoff/broker/keys"
	"github.com/handoffbroker/handoff/broker/token"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestJWKS(t *testing.T) {
	tests := []struct {
		name       string
		giveAlg    token.Algorithm
		giveMaxAge time.Duration
		wantKty    string
		wantCache  string
	}{
		{name: "ok/eddsa", giveAlg: token.EdDSA, giveMaxAge: 5 * time.Minute, wantKty: "OKP", wantCache: "public, max-age=300"},
		{name: "ok/es256", giveAlg: token.ES256, giveMaxAge: 90 * time.Second, wantKty: "EC", wantCache: "public, max-age=90"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.KeyAlg = string(tt.giveAlg)
			cfg.JWKSMaxAge = tt.giveMaxAge
			ts := newTestServer(t, cfg)

			res := ts.browser(t).Get("/.well-known/jwks.json")

			require.Equal(t, http.StatusOK, res.StatusCode)
			assert.Equal(t, "application/jwk-set+json", res.Header.Get("Content-Type"))
			assert.Equal(t, tt.wantCache, res.Header.Get("Cache-Control"))
			assert.Equal(t, 1.0, testutil.ToFloat64(ts.app.metrics.JWKSServed))
			published := brokertest.PublicJWKS(t, []byte(res.Body))
			require.Len(t, published, 1)
			k := published[0]
			assert.Equal(t, tt.wantKty, k["kty"])
			assert.Equal(t, string(tt.giveAlg), k["alg"])
			assert.Equal(t, "sig", k["use"])
			assert.Equal(t, ts.app.currentKeyID(), k["kid"])

			ks, err := keys.ParseJWKS([]byte(res.Body))
			require.NoError(t, err)
			require.Len(t, ks, 1, "the published set is usable by a verifier")
		})
	}
}

// TestDiscovery_portalName: the configured name is SERVER1's on its own
// pages and, as display_name, on the relying services'.
func TestDiscovery_portalName(t *testing.T) {
	cfg := testConfig(t)
	cfg.PortalName = "Acme Bank"
	ts := newTestServer(t, cfg)

	res := ts.browser(t).Get("/.well-known/handoff-configuration")
	login := ts.browser(t).Get("/login")

	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.Body), &got))
	assert.Equal(t, "Acme Bank", got["display_name"])
	assert.Contains(t, login.Body, `<span class="brand">Acme Bank</span>`)
}

func TestConfigValidatePortalName(t *testing.T) {
	for name, give := range map[string]string{
		"fail/empty":    "",
		"fail/blank":    "   ",
		"fail/newline":  "Acme\nBank",
		"fail/too_long": strings.Repeat("x", maxPortalName+1),
	} {
		t.Run(name, func(t *testing.T) {
			cfg := defaultConfig()
			cfg.PortalName = give

			assert.ErrorContains(t, cfg.validate(), "portal-name")
		})
	}
	cfg := defaultConfig()
	cfg.PortalName = strings.Repeat("é", maxPortalName)
	assert.NoError(t, cfg.validate(), "characters, not bytes")
}

func TestDiscovery(t *testing.T) {
	ts := newTestServer(t, testConfig(t))

	res := ts.browser(t).Get("/.well-known/handoff-configuration")

	require.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, "application/json", res.Header.Get("Content-Type"))
	assert.Equal(t, "public, max-age=300", res.Header.Get("Cache-Control"))
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.Body), &got))
	assert.Equal(t, map[string]any{
		"issuer":                       testIssuer,
		"jwks_uri":                     testIssuer + "/.well-known/jwks.json",
		"revocation_endpoint":          testIssuer + "/revocations",
		"bound_handoff_endpoint":       testIssuer + "/handoffs/bound",
		"handoff_origins":              []any{testIssuer},
		"display_name":                 "Customer Portal",
		"homepage_uri":                 testIssuer + "/",
		"token_types_supported":        []any{"handoff+jwt"},
		"signing_alg_values_supported": []any{"EdDSA", "ES256"},
		"handoff_endpoints":            map[string]any{payments: paymentsURL},
	}, got)
}

func TestReadyz(t *testing.T) {
	tests := []struct {
		name       string
		giveKey    func(t testing.TB, dir string) // prepares the keys dir; nil leaves it empty
		giveBreak  func(t testing.TB, cfg Config) // breaks something after start
		wantStatus int
	}{
		{name: "ok/generated_at_start", wantStatus: http.StatusOK},
		{name: "fail/only_a_future_key", giveKey: func(t testing.TB, dir string) {
			_, err := openKeyring(t, dir).Generate(token.EdDSA, time.Now().Add(time.Hour))
			require.NoError(t, err)
		}, wantStatus: http.StatusServiceUnavailable},
		{name: "fail/revocation_dir_gone", giveBreak: func(t testing.TB, cfg Config) {
			require.NoError(t, os.RemoveAll(cfg.RevocationDir))
		}, wantStatus: http.StatusServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			if tt.giveKey != nil {
				tt.giveKey(t, cfg.KeysDir)
			}
			ts := newTestServer(t, cfg)
			if tt.giveBreak != nil {
				tt.giveBreak(t, cfg)
			}

			res := ts.browser(t).Get("/readyz")

			assert.Equal(t, tt.wantStatus, res.StatusCode, res.Body)
		})
	}
}

func TestKeysDirCreatedWithOneKey(t *testing.T) {
	cfg := testConfig(t)
	cfg.KeysDir = filepath.Join(t.TempDir(), "fresh", "keys")
	newTestServer(t, cfg)

	ks := openKeyring(t, cfg.KeysDir).Keys()
	require.Len(t, ks, 1)
	assert.Equal(t, keys.Current, ks[0].State)
	assert.Equal(t, token.EdDSA, ks[0].Algorithm)
}
