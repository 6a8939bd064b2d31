package main

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/broker/brokertest"
	"github.com/handoffbroker/handoff/broker/fetch"
	"github.com/handoffbroker/handoff/broker/keys"
	"github.com/handoffbroker/handoff/broker/token"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPostHandoff(t *testing.T) {
	tests := []struct {
		name       string
		giveToken  func(t *testing.T, ta *testApp) string
		wantStatus int
		wantReason token.Reason
	}{
		{
			name:       "ok/fresh_token",
			giveToken:  func(t *testing.T, ta *testApp) string { return ta.issuer.Mint(t, demoRequest()) },
			wantStatus: http.StatusSeeOther,
		},
		{
			name:       "fail/empty",
			giveToken:  func(*testing.T, *testApp) string { return "" },
			wantStatus: http.StatusBadRequest,
			wantReason: token.ReasonMalformed,
		},
		{
			name:       "fail/malformed",
			giveToken:  func(*testing.T, *testApp) string { return "not-a-token" },
			wantStatus: http.StatusBadRequest,
			wantReason: token.ReasonMalformed,
		},
		{
			name: "fail/bad_signature",
			giveToken: func(t *testing.T, ta *testApp) string {
				a := ta.issuer.Mint(t, demoRequest())
				b := ta.issuer.Mint(t, demoRequest())
				return a[:strings.LastIndexByte(a, '.')] + "." + signature(b)
			},
			wantStatus: http.StatusUnauthorized,
			wantReason: token.ReasonBadSignature,
		},
		{
			name: "fail/expired",
			giveToken: func(t *testing.T, ta *testApp) string {
				tok := ta.issuer.Mint(t, demoRequest())
				ta.clock.Advance(2 * time.Minute) // 60s lifetime + 30s leeway
				return tok
			},
			wantStatus: http.StatusUnauthorized,
			wantReason: token.ReasonExpired,
		},
		{
			name: "fail/wrong_audience",
			giveToken: func(t *testing.T, ta *testApp) string {
				req := demoRequest()
				req.Audience = "http://other-service.test"
				return ta.issuer.Mint(t, req)
			},
			wantStatus: http.StatusUnauthorized,
			wantReason: token.ReasonWrongAudience,
		},
		{
			name: "fail/unknown_key",
			giveToken: func(t *testing.T, ta *testApp) string {
				other, err := keys.NewEphemeral(token.EdDSA)
				require.NoError(t, err)
				return ta.issuer.MintWith(t, ta.issuer.NewMinter(t, func(c *token.MinterConfig) { c.Keys = other }), demoRequest())
			},
			wantStatus: http.StatusUnauthorized,
			wantReason: token.ReasonUnknownKey,
		},
		{
			name: "fail/wrong_issuer",
			giveToken: func(t *testing.T, ta *testApp) string {
				return ta.issuer.MintWith(t, ta.issuer.NewMinter(t, func(c *token.MinterConfig) { c.Issuer = "http://evil.test" }), demoRequest())
			},
			wantStatus: http.StatusUnauthorized,
			wantReason: token.ReasonWrongIssuer,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ta := newTestApp(t, nil)
			b := ta.newBrowser()
			tok := tt.giveToken(t, ta)

			got := b.handoff(tok)

			require.Equal(t, tt.wantStatus, got.StatusCode, got.Body)
			if tt.wantReason == "" {
				assert.Equal(t, "/tasks/transfer-123", got.Header.Get("Location"))
				assertSessionCookie(t, got)
				return
			}
			assert.Equal(t, string(tt.wantReason), pageReason(t, got))
			assert.Empty(t, got.Cookies(), "a rejected handoff opens no session")
			if tok != "" {
				assert.NotContains(t, got.Body, tok)
			}
		})
	}
}

func assertSessionCookie(t testing.TB, r response) {
	t.Helper()
	var found *http.Cookie
	for _, c := range r.Cookies() {
		if c.Name == SessionCookie {
			found = c
		}
	}
	require.NotNil(t, found, "no %s cookie", SessionCookie)
	assert.True(t, found.HttpOnly)
	assert.Equal(t, http.SameSiteLaxMode, found.SameSite)
	assert.Equal(t, "/tasks/transfer-123", found.Path, "the session is scoped to its task")
	assert.False(t, found.Secure, "an http audience gets no Secure cookie")
}

func TestPostHandoff_ResubmitIsReplayed(t *testing.T) {
	ta := newTestApp(t, nil)
	tok := ta.issuer.Mint(t, demoRequest())

	first := ta.newBrowser().handoff(tok)
	second := ta.newBrowser().handoff(tok)

	require.Equal(t, http.StatusSeeOther, first.StatusCode)
	require.Equal(t, http.StatusConflict, second.StatusCode)
	assert.Equal(t, string(token.ReasonReplayed), pageReason(t, second))
	assert.Empty(t, second.Cookies())
	assert.Contains(t, ta.logs.String(), `"reason":"replayed"`)
}

func TestPostHandoff_AuditLogNamesTheTokenID(t *testing.T) {
	ta := newTestApp(t, nil)
	minted := ta.issuer.MintFull(t, demoRequest())

	ta.newBrowser().handoff(minted.Token)
	ta.newBrowser().handoff(minted.Token)

	logs := ta.logs.String()
	assert.Contains(t, logs, `"msg":"token verified"`)
	assert.Contains(t, logs, `"msg":"token rejected"`)
	assert.Equal(t, 2, strings.Count(logs, `"jti":"`+minted.ID+`"`), "accepted and replayed use are both attributed:\n%s", logs)
}

func TestPostHandoff_Unavailable(t *testing.T) {
	tests := []struct {
		name      string
		giveSetup func(*Config, *Options)
	}{
		{
			name:      "fail/jwks_down_from_start",
			giveSetup: func(c *Config, _ *Options) { useClosedJWKSURL(t, c) },
		},
		{
			name:      "fail/replay_store_down",
			giveSetup: func(_ *Config, o *Options) { o.ReplayStore = brokertest.FailingReplayStore{} },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ta := newTestApp(t, tt.giveSetup)
			tok := ta.issuer.Mint(t, demoRequest())

			got := ta.newBrowser().handoff(tok)

			require.Equal(t, http.StatusServiceUnavailable, got.StatusCode, got.Body)
			assert.Equal(t, string(token.ReasonUnavailable), pageReason(t, got))
			assert.Empty(t, got.Cookies())
		})
	}
}

func TestPostHandoff_JWKSDownIsNotReady(t *testing.T) {
	ta := newTestApp(t, func(c *Config, _ *Options) { useClosedJWKSURL(t, c) })
	ta.app.Start(t.Context())
	fetchErrors := ta.app.Metrics().JWKSFetches.WithLabelValues(fetch.ResultError)
	require.Eventually(t, func() bool { return testutil.ToFloat64(fetchErrors) >= 1 }, 5*time.Second, 5*time.Millisecond)

	got := ta.newBrowser().Get("/readyz")

	assert.Equal(t, http.StatusServiceUnavailable, got.StatusCode)
	assert.JSONEq(t, `{"jwks":"fail","replay_store":"ok","revocations":"off"}`, got.Body)
}

func TestGetHandoff_RefusesTokenInURL(t *testing.T) {
	tests := []struct {
		name       string
		giveMethod string
		givePath   func(tok string) string
	}{
		{name: "fail/get_with_token", giveMethod: http.MethodGet, givePath: func(tok string) string { return "/handoff?token=" + tok }},
		{name: "fail/get_without_query", giveMethod: http.MethodGet, givePath: func(string) string { return "/handoff" }},
		{name: "fail/post_with_token_in_query", giveMethod: http.MethodPost, givePath: func(tok string) string { return "/handoff?token=" + tok }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ta := newTestApp(t, nil)
			tok := ta.issuer.Mint(t, demoRequest())
			b := ta.newBrowser()
			req, err := http.NewRequest(tt.giveMethod, ta.srv.URL+tt.givePath(tok), strings.NewReader(url.Values{"token": {tok}}.Encode()))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")

			got := b.Do(req)

			require.Equal(t, http.StatusBadRequest, got.StatusCode)
			assert.Equal(t, CodeTokenInURL, pageReason(t, got))
			assert.NotContains(t, got.Body, tok)
			assert.NotContains(t, got.Body, signature(tok))
			assert.Empty(t, got.Cookies())
			// The token was refused unread: it still works once, by POST.
			assert.Equal(t, http.StatusSeeOther, ta.newBrowser().handoff(tok).StatusCode)
		})
	}
}
