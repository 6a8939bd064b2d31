package main

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/handoffbroker/handoff/broker/keys"
	"github.com/handoffbroker/handoff/broker/token"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	resultActionRE = regexp.MustCompile(`<form id="result-form" method="post" action="([^"]+)">`)
	resultTokenRE  = regexp.MustCompile(`<input type="hidden" name="token" value="([^"]+)">`)
	resultTaskRE   = regexp.MustCompile(`<input type="hidden" name="task_id" value="([^"]+)">`)
)

// resultOf returns the action, token and task id of a page's result form.
func resultOf(t testing.TB, r response) (action, tok, taskID string) {
	t.Helper()
	a, k, id := resultActionRE.FindStringSubmatch(r.Body), resultTokenRE.FindStringSubmatch(r.Body), resultTaskRE.FindStringSubmatch(r.Body)
	require.True(t, a != nil && k != nil && id != nil, "no result form on the page:\n%s", r.Body)
	return html.UnescapeString(a[1]), k[1], html.UnescapeString(id[1])
}

// verifyResult checks tok as SERVER1 would: against SERVER2's published
// JWKS, for the issuer's audience, alice and the demo transfer.
func verifyResult(t testing.TB, ta *testApp, tok string) token.Claims {
	t.Helper()
	got := ta.newBrowser().Get("/.well-known/jwks.json")
	require.Equal(t, http.StatusOK, got.StatusCode)
	assert.Equal(t, "application/jwk-set+json", got.Header.Get("Content-Type"))
	pub, err := keys.ParseJWKS([]byte(got.Body))
	require.NoError(t, err)
	src, err := keys.NewStatic(pub...)
	require.NoError(t, err)
	replay, err := token.NewMemoryReplayStore(token.MemoryReplayConfig{Now: func() time.Time { return ta.clock.Now().Add(-time.Hour) }})
	require.NoError(t, err)
	t.Cleanup(func() { _ = replay.Close() })
	v, err := token.NewResultVerifier(token.VerifierConfig{
		Issuers:  []token.TrustedIssuer{{Issuer: testAudience, Keys: src}},
		Audience: ta.issuer.URL,
		Replay:   replay,
		Now:      ta.clock.Now,
	})
	require.NoError(t, err)
	want := token.Task{ID: "transfer-123", Action: "approve", ParamsDigest: token.DigestParams(demoParams)}
	verified, err := v.Verify(context.Background(), tok, token.Expect{Task: &want, Subject: "alice"})
	require.NoError(t, err)
	return verified.Claims()
}

// wantResultPage checks the headers of a page that carries a result: no
// store, a script nonce, and forms only to the issuer's origin.
func wantResultPage(t testing.TB, ta *testApp, r response) {
	t.Helper()
	csp := r.Header.Get("Content-Security-Policy")
	assert.Contains(t, csp, "script-src 'nonce-")
	assert.Contains(t, csp, "form-action "+ta.issuer.URL+";")
	assert.Equal(t, "no-store", r.Header.Get("Cache-Control"))
	action, tok, taskID := resultOf(t, r)
	assert.Equal(t, ta.issuer.URL+"/handoffs/result", action)
	assert.Equal(t, "transfer-123", taskID)
	assert.NotContains(t, ta.logs.String(), signature(tok), "the result token is logged")
}

func TestCompleteTask_CarriesApprovedResult(t *testing.T) {
	ta := newTestApp(t, nil)
	b := signedIn(t, ta)
	page := b.Get("/tasks/transfer-123")

	got := b.PostForm("/tasks/transfer-123/complete", url.Values{"_csrf": {csrfField(t, page)}}, nil)

	require.Equal(t, http.StatusOK, got.StatusCode, got.Body)
	assert.Contains(t, got.Body, `id="task-done"`)
	wantResultPage(t, ta, got)
	_, tok, _ := resultOf(t, got)
	c := verifyResult(t, ta, tok)
	assert.Equal(t, token.OutcomeApproved, c.Outcome)
	assert.Equal(t, ta.issuer.URL, c.Audience)
	assert.Equal(t, testAudience, c.Issuer)

	again := b.Get("/tasks/transfer-123")
	assert.Contains(t, again.Body, `id="task-done"`)
	assert.NotContains(t, again.Body, `id="result-form"`, "a revisit mints no result")
}

func TestCancelTask(t *testing.T) {
	t.Run("ok/carries_cancelled_and_ends_session", func(t *testing.T) {
		ta := newTestApp(t, nil)
		b := signedIn(t, ta)
		page := b.Get("/tasks/transfer-123")
		assert.Contains(t, page.Body, `<form id="cancel-form" method="post" action="/tasks/transfer-123/cancel">`)

		got := b.PostForm("/tasks/transfer-123/cancel", url.Values{"_csrf": {csrfField(t, page)}}, nil)

		require.Equal(t, http.StatusOK, got.StatusCode, got.Body)
		assert.Contains(t, got.Body, `id="task-cancelled"`)
		wantResultPage(t, ta, got)
		_, tok, _ := resultOf(t, got)
		assert.Equal(t, token.OutcomeCancelled, verifyResult(t, ta, tok).Outcome)
		assert.Equal(t, CodeNoSession, pageReason(t, b.Get("/tasks/transfer-123")), "the session ended")

		other := signedIn(t, ta)
		otherPage := other.Get("/tasks/transfer-123")
		done := other.PostForm("/tasks/transfer-123/complete", url.Values{"_csrf": {csrfField(t, otherPage)}}, nil)
		assert.Equal(t, http.StatusOK, done.StatusCode, "a cancelled task is still open: %s", done.Body)
	})
	t.Run("fail/csrf_invalid", func(t *testing.T) {
		ta := newTestApp(t, nil)
		b := signedIn(t, ta)
		got := b.PostForm("/tasks/transfer-123/cancel", url.Values{"_csrf": {"forged"}}, nil)
		assert.Equal(t, http.StatusForbidden, got.StatusCode)
		assert.Equal(t, CodeCSRFInvalid, pageReason(t, got))
		assert.NotContains(t, got.Body, `id="result-form"`)
		assert.Contains(t, b.Get("/tasks/transfer-123").Body, `id="task-page"`, "the session is kept")
	})
	t.Run("fail/no_session", func(t *testing.T) {
		ta := newTestApp(t, nil)
		got := ta.newBrowser().PostForm("/tasks/transfer-123/cancel", url.Values{"_csrf": {"x"}}, nil)
		assert.Equal(t, CodeNoSession, pageReason(t, got))
	})
	t.Run("fail/already_completed", func(t *testing.T) {
		ta := newTestApp(t, nil)
		b := signedIn(t, ta)
		page := b.Get("/tasks/transfer-123")
		form := url.Values{"_csrf": {csrfField(t, page)}}
		require.Equal(t, http.StatusOK, b.PostForm("/tasks/transfer-123/complete", form, nil).StatusCode)

		got := b.PostForm("/tasks/transfer-123/cancel", form, nil)

		assert.Equal(t, http.StatusConflict, got.StatusCode)
		assert.Equal(t, CodeAlreadyCompleted, pageReason(t, got))
		assert.NotContains(t, got.Body, `id="result-form"`)
	})
}

func TestResultMetadata(t *testing.T) {
	ta := newTestApp(t, func(c *Config, _ *Options) { c.ResultURL = "http://portal.test/back" })
	got := ta.newBrowser().Get("/.well-known/handoff-configuration")
	require.Equal(t, http.StatusOK, got.StatusCode)
	var doc map[string]any
	require.NoError(t, json.Unmarshal([]byte(got.Body), &doc))
	assert.Equal(t, map[string]any{
		"issuer":                       testAudience,
		"jwks_uri":                     testAudience + "/.well-known/jwks.json",
		"token_types_supported":        []any{token.ResultTokenType},
		"signing_alg_values_supported": []any{"EdDSA", "ES256"},
		"result_endpoint":              "http://portal.test/back",
	}, doc)
}

func TestResultKeysDir(t *testing.T) {
	dir := t.TempDir()
	first := newTestApp(t, func(c *Config, _ *Options) { c.KeysDir = dir })
	second := newTestApp(t, func(c *Config, _ *Options) { c.KeysDir = dir })
	jwks := func(ta *testApp) string { return ta.newBrowser().Get("/.well-known/jwks.json").Body }
	assert.Equal(t, jwks(first), jwks(second), "replicas sharing --keys-dir publish one key set")
	assert.True(t, strings.Contains(jwks(first), `"kid"`))

	ring, err := keys.Open(keys.KeyringConfig{Dir: dir})
	require.NoError(t, err)
	added, err := ring.Generate(token.EdDSA, time.Time{})
	require.NoError(t, err)
	require.NotContains(t, jwks(first), added.ID)
	first.app.results.reload(first.app.log)
	assert.Contains(t, jwks(first), added.ID, "a key another replica wrote is published after a reload")
}

func TestConfig_ResultURL(t *testing.T) {
	for _, give := range []string{"ftp://portal.test/r", "http://portal.test/r?x=1", "http://u:p@portal.test/r", "/relative",
		// The origin is written into the pages' CSP: ";" or "'" would inject a directive.
		"https://portal.test;script-src*/r", "https://portal'.test/r"} {
		cfg := DefaultConfig()
		cfg.ResultURL = give
		assert.ErrorContains(t, cfg.validate(), "result-url", give)
	}
}

// TestHandoff_RefusesResultToken: a result token signed with the trusted
// issuer's own key opens no session and calls no task API (bad_type).
func TestHandoff_RefusesResultToken(t *testing.T) {
	ta := newTestApp(t, nil)
	m, err := ta.issuer.Minter().MintResult(token.ResultRequest{
		Subject: "alice", Audience: testAudience, Outcome: token.OutcomeApproved,
		Task: token.Task{ID: "transfer-123", Action: "approve", Params: demoParams},
	})
	require.NoError(t, err)
	b := ta.newBrowser()

	got := b.handoff(m.Token)
	assert.Equal(t, http.StatusBadRequest, got.StatusCode)
	assert.Equal(t, string(token.ReasonBadType), pageReason(t, got))
	assert.Empty(t, b.sessionCookie("transfer-123"))

	api := b.callAPI("/api/v1/tasks/transfer-123/approve", "Bearer "+m.Token, demoBody)
	assert.Equal(t, http.StatusBadRequest, api.StatusCode)
	assert.Equal(t, string(token.ReasonBadType), problem(t, api).Code)
}
