package main

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"testing"

	"github.com/handoffbroker/handoff/broker/token"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHandoffStart follows the bound flow through SERVER2: the start
// endpoint sets the binding cookie and sends the browser to the issuer
// with the secret's digest; a token bound to it opens the session.
func TestHandoffStart(t *testing.T) {
	ta := newTestApp(t, nil)
	b := ta.newBrowser()

	start := b.Get("/handoff/start?task_id=transfer-123")

	require.Equal(t, http.StatusSeeOther, start.StatusCode, start.Body)
	loc, err := url.Parse(start.Header.Get("Location"))
	require.NoError(t, err)
	assert.Equal(t, ta.issuer.URL+"/handoffs/bound", loc.Scheme+"://"+loc.Host+loc.Path)
	assert.Equal(t, testAudience, loc.Query().Get("audience"))
	assert.Equal(t, "transfer-123", loc.Query().Get("task_id"))
	cookies := start.Cookies()
	require.Len(t, cookies, 1)
	secret, err := base64.RawURLEncoding.DecodeString(cookies[0].Value)
	require.NoError(t, err)
	assert.Equal(t, token.BindingNonce(secret), loc.Query().Get("nonce"))

	req := demoRequest()
	req.Nonce = loc.Query().Get("nonce")
	tok := ta.issuer.Mint(t, req)
	cookie := http.Header{"Cookie": {cookies[0].Name + "=" + cookies[0].Value}}
	opened := b.PostForm("/handoff", url.Values{"token": {tok}}, cookie)
	require.Equal(t, http.StatusSeeOther, opened.StatusCode, opened.Body)
	assert.Equal(t, "/tasks/transfer-123", opened.Header.Get("Location"))
	var deleted bool
	for _, c := range opened.Cookies() {
		deleted = deleted || (c.Name == cookies[0].Name && c.MaxAge < 0)
	}
	assert.True(t, deleted, "the binding secret is single-use")

	missing := b.Get("/handoff/start")
	assert.Equal(t, http.StatusBadRequest, missing.StatusCode)
}

// TestHandoffBinding_RefusalChangesNothing: a token bound to another
// browser (login CSRF: bob's token posted into alice's browser), or posted
// from another origin, is refused with the way back; alice's session is
// untouched and the token is not consumed.
func TestHandoffBinding_RefusalChangesNothing(t *testing.T) {
	bobs := func(ta *testApp) string {
		req := bobRequest()
		req.Nonce = token.BindingNonce([]byte("the attacker's own browser secret"))
		return ta.issuer.Mint(ta.t, req)
	}
	tests := []struct {
		name       string
		giveToken  func(ta *testApp) string
		giveHeader http.Header
		wantCode   string
	}{
		{name: "fail/bound_to_another_browser", giveToken: bobs, wantCode: string(token.ReasonUnboundHandoff)},
		{name: "fail/unbound_token", giveToken: func(ta *testApp) string {
			req := bobRequest()
			req.Nonce = ""
			return ta.issuer.Mint(ta.t, req)
		}, wantCode: string(token.ReasonUnboundHandoff)},
		{name: "fail/origin_null", giveToken: bobs, giveHeader: http.Header{"Origin": {"null"}}, wantCode: "wrong_origin"},
		{name: "fail/third_origin", giveToken: bobs, giveHeader: http.Header{"Origin": {"http://127.0.0.3:8083"}}, wantCode: "wrong_origin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ta := newTestApp(t, nil)
			alice := ta.newBrowser()
			require.Equal(t, http.StatusSeeOther, alice.handoff(ta.issuer.Mint(t, demoRequest())).StatusCode)
			session := alice.sessionCookie("transfer-123")
			require.NotEmpty(t, session)
			tok := tt.giveToken(ta)

			h := http.Header{"Accept": {"text/html"}, "Cookie": {bindingCookie(testBindingSecret).String()}}
			for k, v := range tt.giveHeader {
				h[k] = v
			}
			refused := alice.PostForm("/handoff", url.Values{"token": {tok}}, h)

			require.Equal(t, http.StatusForbidden, refused.StatusCode, refused.Body)
			assert.Equal(t, tt.wantCode, pageReason(t, refused))
			assert.Contains(t, refused.Body, `id="retry" class="button" href="`+ta.issuer.URL+`/"`, "the page offers the way back")
			assert.Empty(t, refused.Cookies(), "no cookie changes")
			assert.Equal(t, session, alice.sessionCookie("transfer-123"))
			page := alice.Get("/tasks/transfer-123")
			require.Equal(t, http.StatusOK, page.StatusCode, "alice's session still works")
			assert.Contains(t, page.Body, "transfer-123")
			assert.Equal(t, 1.0, testutil.ToFloat64(ta.app.Metrics().Verifications.WithLabelValues("rejected", tt.wantCode)))

			_, err := ta.app.rp.Verify(t.Context(), tok, token.Expect{AnyTask: true})
			assert.NoError(t, err, "the refused token was not consumed")
		})
	}
}

// TestHandoffBinding_Off: with binding off, unbound tokens open sessions
// at the browser endpoint (the documented risk), whatever the Origin.
func TestHandoffBinding_Off(t *testing.T) {
	ta := newTestApp(t, func(c *Config, _ *Options) { c.HandoffBinding = "off" })
	req := demoRequest()
	req.Nonce = ""
	res := ta.newBrowser().PostForm("/handoff", url.Values{"token": {ta.issuer.Mint(t, req)}}, http.Header{"Origin": {"null"}})
	assert.Equal(t, http.StatusSeeOther, res.StatusCode, res.Body)
}

func TestConfig_HandoffBinding(t *testing.T) {
	cfg := DefaultConfig()
	cfg.HandoffBinding = "sometimes"
	cfg.BindingTTL = -1
	_, err := NewApp(cfg, Options{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "handoff-binding")
	assert.Contains(t, err.Error(), "binding-ttl")
}
