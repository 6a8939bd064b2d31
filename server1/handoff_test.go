package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/handoffbroker/handoff/broker/token"
	"github.com/handoffbroker/handoff/shared/sharedtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/html"
)

func TestCSRF(t *testing.T) {
	ts := newTestServer(t, testConfig(t))
	handoff := url.Values{"audience": {payments}, "task_id": {"transfer-123"}}
	login := url.Values{"username": {"alice"}, "password": {"alice-demo-pw"}}
	tests := []struct {
		name       string
		givePath   string
		giveForm   url.Values
		giveCSRF   func(valid string) string // the form's _csrf; "" leaves it out
		giveHeader http.Header
	}{
		{name: "fail/handoffs_missing", givePath: "/handoffs", giveForm: handoff, giveCSRF: func(string) string { return "" }},
		{name: "fail/handoffs_invalid", givePath: "/handoffs", giveForm: handoff, giveCSRF: func(string) string { return "forged-token" }},
		{name: "fail/handoffs_other_browser", givePath: "/handoffs", giveForm: handoff, giveCSRF: func(string) string { return otherBrowserCSRF(t, ts) }},
		{name: "fail/handoffs_cross_site_fetch", givePath: "/handoffs", giveForm: handoff, giveCSRF: func(v string) string { return v },
			giveHeader: http.Header{"Sec-Fetch-Site": {"cross-site"}}},
		{name: "fail/login_missing", givePath: "/login", giveForm: login, giveCSRF: func(string) string { return "" }},
		{name: "fail/login_invalid", givePath: "/login", giveForm: login, giveCSRF: func(string) string { return "forged-token" }},
		{name: "fail/logout_missing", givePath: "/logout", giveForm: url.Values{}, giveCSRF: func(string) string { return "" }},
		{name: "fail/logout_invalid", givePath: "/logout", giveForm: url.Values{}, giveCSRF: func(string) string { return "forged-token" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := ts.browser(t)
			valid := b.signIn("alice", "alice-demo-pw")
			session := b.Cookie(sessionCookie)
			form := url.Values{}
			for k, v := range tt.giveForm {
				form[k] = v
			}
			if v := tt.giveCSRF(valid); v != "" {
				form.Set(csrfField, v)
			}
			before := mintedTotal(t, ts.app)

			res := b.PostForm(tt.givePath, form, tt.giveHeader)

			assert.Equal(t, http.StatusForbidden, res.StatusCode)
			assert.Equal(t, "csrf_invalid", errorCode(t, res))
			assert.Equal(t, before, mintedTotal(t, ts.app), "nothing minted")
			assert.NotContains(t, res.Body, `name="token"`)
			assert.Equal(t, session, b.Cookie(sessionCookie), "session neither replaced nor ended")
			assert.Equal(t, http.StatusOK, b.Get("/").StatusCode, "still signed in")
		})
	}
}

// otherBrowserCSRF is a valid CSRF token, but another browser's.
func otherBrowserCSRF(t testing.TB, ts *testServer) string {
	t.Helper()
	return ts.browser(t).csrfFromLogin()
}

func TestHandoffRejects(t *testing.T) {
	other := "http://127.0.0.1:9999"
	cfg := testConfig(t)
	cfg.AudiencesFile = writeFile(t, "audiences.json", fmt.Sprintf(
		`[{"audience":%q,"name":"Payments","handoff_url":%q},{"audience":%q,"name":"Other","handoff_url":"http://127.0.0.1:9999/in"}]`,
		payments, paymentsURL, other))
	ts := newTestServer(t, cfg)
	tests := []struct {
		name         string
		giveSignedIn bool
		giveAudience string
		giveTask     string
		wantStatus   int
		wantCode     string
	}{
		{name: "fail/unknown_audience", giveSignedIn: true, giveAudience: "https://attacker.example", giveTask: "transfer-123",
			wantStatus: http.StatusBadRequest, wantCode: "unknown_audience"},
		{name: "fail/empty_audience", giveSignedIn: true, giveAudience: "", giveTask: "transfer-123",
			wantStatus: http.StatusBadRequest, wantCode: "unknown_audience"},
		{name: "fail/other_users_task", giveSignedIn: true, giveAudience: payments, giveTask: "transfer-200",
			wantStatus: http.StatusBadRequest, wantCode: "unknown_task"},
		{name: "fail/no_such_task", giveSignedIn: true, giveAudience: payments, giveTask: "transfer-999",
			wantStatus: http.StatusBadRequest, wantCode: "unknown_task"},
		{name: "fail/task_for_another_audience", giveSignedIn: true, giveAudience: other, giveTask: "transfer-123",
			wantStatus: http.StatusBadRequest, wantCode: "unknown_task"},
		{name: "fail/signed_out", giveAudience: payments, giveTask: "transfer-123",
			wantStatus: http.StatusUnauthorized, wantCode: "no_session"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := ts.browser(t)
			var csrf string
			if tt.giveSignedIn {
				csrf = b.signIn("alice", "alice-demo-pw")
			} else {
				csrf = b.csrfFromLogin()
			}
			before := mintedTotal(t, ts.app)

			res := b.PostForm("/handoffs", url.Values{csrfField: {csrf}, "audience": {tt.giveAudience}, "task_id": {tt.giveTask}}, nil)

			assert.Equal(t, tt.wantStatus, res.StatusCode)
			assert.Equal(t, tt.wantCode, errorCode(t, res))
			assert.Equal(t, before, mintedTotal(t, ts.app), "nothing minted")
			assert.NotContains(t, res.Body, `name="token"`)
			assert.Empty(t, ts.logs.JSONLines(t, "token minted"))
		})
	}
}

// cspDirectives splits a Content-Security-Policy into directive -> value.
func cspDirectives(policy string) map[string]string {
	out := map[string]string{}
	for _, d := range strings.Split(policy, ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
		out[name] = value
	}
	return out
}

func TestHandoffPage(t *testing.T) {
	tests := []struct {
		name           string
		giveAudiences  string // audiences-file content; "" uses the flags
		giveUser       string
		givePassword   string
		giveTask       string
		wantAudience   string
		wantAction     string
		wantFormAction string
		wantParams     map[string]string
	}{
		{
			name: "ok/default_registry", giveUser: "alice", givePassword: "alice-demo-pw", giveTask: "transfer-123",
			wantAudience: payments, wantAction: paymentsURL, wantFormAction: payments, wantParams: demoParams,
		},
		{
			name: "ok/bob", giveUser: "bob", givePassword: "bob-demo-pw", giveTask: "transfer-200",
			wantAudience: payments, wantAction: paymentsURL, wantFormAction: payments,
			wantParams: map[string]string{"amount": "1200.00", "currency": "EUR", "payee": "Initech"},
		},
		{
			name:          "ok/audiences_file",
			giveAudiences: `[{"audience":"urn:example:payments","name":"Payments","handoff_url":"https://payments.example:8443/in/handoff"}]`,
			giveUser:      "alice", givePassword: "alice-demo-pw", giveTask: "transfer-124",
			wantAudience: "urn:example:payments", wantAction: "https://payments.example:8443/in/handoff",
			wantFormAction: "https://payments.example:8443",
			wantParams:     map[string]string{"amount": "80.00", "currency": "EUR", "payee": "Globex Ltd"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			if tt.giveAudiences != "" {
				cfg.AudiencesFile = writeFile(t, "audiences.json", tt.giveAudiences)
			}
			ts := newTestServer(t, cfg)
			b := ts.browser(t)
			csrf := b.signIn(tt.giveUser, tt.givePassword)
			before := mintedTotal(t, ts.app)

			res := b.PostForm("/handoffs", url.Values{csrfField: {csrf}, "audience": {tt.wantAudience}, "task_id": {tt.giveTask}}, nil)

			require.Equal(t, http.StatusOK, res.StatusCode, res.Body)
			assert.Equal(t, before+1, mintedTotal(t, ts.app))
			doc := parseHTML(t, res.Body)
			form := byID(t, doc, "handoff")
			action, _ := sharedtest.Attr(form, "action")
			assert.Equal(t, tt.wantAction, action)
			method, _ := sharedtest.Attr(form, "method")
			assert.Equal(t, "post", method)
			token := inputValue(t, doc, "handoff", "token")
			require.NotEmpty(t, token)

			verified, err := verifier(t, ts.app.keys, tt.wantAudience).Verify(context.Background(), token, expectTransfer(tt.giveTask, tt.wantParams))
			require.NoError(t, err)
			claims := verified.Claims()
			assert.Equal(t, tt.giveUser, claims.Subject)
			assert.Equal(t, testIssuer, claims.Issuer)
			assert.Equal(t, tt.wantParams, claims.Task.Params)
			assert.Equal(t, cfg.TokenTTL, claims.ExpiresAt.Sub(claims.IssuedAt))
			assert.Nil(t, claims.Actor)

			csp := cspDirectives(res.Header.Get("Content-Security-Policy"))
			script := sharedtest.Find(doc, func(n *html.Node) bool { return n.Data == "script" })
			require.NotNil(t, script)
			nonce, ok := sharedtest.Attr(script, "nonce")
			require.True(t, ok)
			assert.Regexp(t, regexp.MustCompile(`^[A-Za-z0-9_-]{22,}$`), nonce)
			assert.Equal(t, "'nonce-"+nonce+"'", csp["script-src"])
			assert.Equal(t, tt.wantFormAction, csp["form-action"])
			assert.Equal(t, "'none'", csp["default-src"])
			assert.Equal(t, "'none'", csp["frame-ancestors"])
			assert.Equal(t, "'none'", csp["base-uri"])
			assert.Equal(t, "no-store", res.Header.Get("Cache-Control"))
			assert.Equal(t, "strict-origin", res.Header.Get("Referrer-Policy"), "no-referrer would make the POST carry Origin: null")

			for name, values := range res.Header {
				for _, v := range values {
					assert.NotContains(t, v, token, "token in header %s", name)
				}
			}
			assert.NotContains(t, ts.logs.String(), token, "token in the log")
			audit := ts.logs.JSONLines(t, "token minted")
			require.Len(t, audit, 1)
			assert.Equal(t, claims.ID, audit[0]["jti"])
			assert.Equal(t, tt.giveUser, audit[0]["sub"])
			assert.Equal(t, tt.wantAudience, audit[0]["aud"])
			assert.Equal(t, tt.giveTask, audit[0]["task_id"])
			assert.Equal(t, claims.KeyID, audit[0]["kid"])
			assert.NotEmpty(t, audit[0]["exp"])

			again := b.PostForm("/handoffs", url.Values{csrfField: {csrf}, "audience": {tt.wantAudience}, "task_id": {tt.giveTask}}, nil)
			require.Equal(t, http.StatusOK, again.StatusCode)
			assert.NotEqual(t, csp["script-src"], cspDirectives(again.Header.Get("Content-Security-Policy"))["script-src"], "fresh nonce per response")
			assert.NotEqual(t, token, inputValue(t, parseHTML(t, again.Body), "handoff", "token"), "fresh token per handoff")
		})
	}
}

func TestAPIHandoff(t *testing.T) {
	body := func(fields string) string {
		return fmt.Sprintf(`{"audience":%q,"task_id":"transfer-123"%s}`, payments, fields)
	}
	tests := []struct {
		name        string
		giveAPIKey  string // server's key; "" disables the API-key path
		giveSession bool
		giveCSRF    bool
		giveHeader  http.Header
		giveBody    string
		giveType    string
		wantStatus  int
		wantCode    string
		wantSubject string
		wantActor   string
	}{
		{name: "ok/api_key", giveAPIKey: testAPIKey, giveHeader: http.Header{"X-Api-Key": {testAPIKey}},
			giveBody: body(`,"subject":"alice"`), wantStatus: http.StatusCreated, wantSubject: "alice", wantActor: apiActor},
		{name: "ok/session_and_csrf_header", giveAPIKey: testAPIKey, giveSession: true, giveCSRF: true,
			giveBody: body(""), wantStatus: http.StatusCreated, wantSubject: "alice"},
		{name: "ok/session_naming_itself", giveAPIKey: testAPIKey, giveSession: true, giveCSRF: true,
			giveBody: body(`,"subject":"alice"`), wantStatus: http.StatusCreated, wantSubject: "alice"},
		{name: "fail/bad_api_key", giveAPIKey: testAPIKey, giveHeader: http.Header{"X-Api-Key": {testAPIKey + "x"}},
			giveBody: body(`,"subject":"alice"`), wantStatus: http.StatusUnauthorized, wantCode: "invalid_api_key"},
		{name: "fail/empty_api_key_header", giveAPIKey: testAPIKey, giveHeader: http.Header{"X-Api-Key": {""}},
			giveBody: body(`,"subject":"alice"`), wantStatus: http.StatusUnauthorized, wantCode: "invalid_api_key"},
		{name: "fail/api_key_disabled", giveAPIKey: "", giveHeader: http.Header{"X-Api-Key": {testAPIKey}},
			giveBody: body(`,"subject":"alice"`), wantStatus: http.StatusUnauthorized, wantCode: "invalid_api_key"},
		{name: "fail/bad_api_key_with_session", giveAPIKey: testAPIKey, giveSession: true, giveCSRF: true,
			giveHeader: http.Header{"X-Api-Key": {"wrong"}},
			giveBody:   body(""), wantStatus: http.StatusUnauthorized, wantCode: "invalid_api_key"},
		{name: "fail/no_key_no_session", giveAPIKey: testAPIKey,
			giveBody: body(`,"subject":"alice"`), wantStatus: http.StatusUnauthorized, wantCode: "unauthenticated"},
		{name: "fail/session_without_csrf_header", giveAPIKey: testAPIKey, giveSession: true,
			giveBody: body(""), wantStatus: http.StatusForbidden, wantCode: "csrf_invalid"},
		{name: "fail/session_for_other_subject", giveAPIKey: testAPIKey, giveSession: true, giveCSRF: true,
			giveBody: body(`,"subject":"bob"`), wantStatus: http.StatusForbidden, wantCode: "subject_mismatch"},
		{name: "fail/api_key_without_subject", giveAPIKey: testAPIKey, giveHeader: http.Header{"X-Api-Key": {testAPIKey}},
			giveBody: body(""), wantStatus: http.StatusBadRequest, wantCode: "unknown_subject"},
		{name: "fail/api_key_unknown_subject", giveAPIKey: testAPIKey, giveHeader: http.Header{"X-Api-Key": {testAPIKey}},
			giveBody: body(`,"subject":"mallory"`), wantStatus: http.StatusBadRequest, wantCode: "unknown_subject"},
		{name: "fail/api_key_other_users_task", giveAPIKey: testAPIKey, giveHeader: http.Header{"X-Api-Key": {testAPIKey}},
			giveBody: body(`,"subject":"bob"`), wantStatus: http.StatusBadRequest, wantCode: "unknown_task"},
		{name: "fail/unknown_audience", giveAPIKey: testAPIKey, giveHeader: http.Header{"X-Api-Key": {testAPIKey}},
			giveBody:   `{"audience":"https://attacker.example","task_id":"transfer-123","subject":"alice"}`,
			wantStatus: http.StatusBadRequest, wantCode: "unknown_audience"},
		{name: "fail/unknown_member", giveAPIKey: testAPIKey, giveHeader: http.Header{"X-Api-Key": {testAPIKey}},
			giveBody: body(`,"subject":"alice","ttl":"1h"`), wantStatus: http.StatusBadRequest, wantCode: "invalid_request"},
		{name: "fail/not_json", giveAPIKey: testAPIKey, giveHeader: http.Header{"X-Api-Key": {testAPIKey}},
			giveBody: body(`,"subject":"alice"`), giveType: "text/plain", wantStatus: http.StatusUnsupportedMediaType, wantCode: "unsupported_media_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.APIKey = tt.giveAPIKey
			ts := newTestServer(t, cfg)
			b := ts.browser(t)
			header := http.Header{}
			for k, v := range tt.giveHeader {
				header[k] = v
			}
			if tt.giveSession {
				csrf := b.signIn("alice", "alice-demo-pw")
				if tt.giveCSRF {
					header.Set("X-CSRF-Token", csrf)
				}
			}
			if tt.giveType != "" {
				header.Set("Content-Type", tt.giveType)
			}
			before := mintedTotal(t, ts.app)

			res := b.PostJSON("/api/v1/handoffs", tt.giveBody, header)

			require.Equal(t, tt.wantStatus, res.StatusCode, res.Body)
			assert.Equal(t, "no-store", res.Header.Get("Cache-Control"))
			if tt.wantCode != "" {
				assert.Equal(t, "application/problem+json", res.Header.Get("Content-Type"))
				assert.Equal(t, tt.wantCode, errorCode(t, res))
				assert.Equal(t, before, mintedTotal(t, ts.app), "nothing minted")
				assert.NotContains(t, res.Body, "eyJ", "no token in an error")
				return
			}
			assert.Equal(t, before+1, mintedTotal(t, ts.app))
			var got struct {
				Token     string `json:"token"`
				TokenType string `json:"token_type"`
				JTI       string `json:"jti"`
				ExpiresAt string `json:"expires_at"`
				TargetURL string `json:"target_url"`
			}
			require.NoError(t, json.Unmarshal([]byte(res.Body), &got))
			assert.Equal(t, token.HandoffTokenType, got.TokenType)
			assert.Equal(t, paymentsURL, got.TargetURL)
			verified, err := verifier(t, ts.app.keys, payments).Verify(context.Background(), got.Token, expectTransfer("transfer-123", demoParams))
			require.NoError(t, err)
			claims := verified.Claims()
			assert.Equal(t, got.JTI, claims.ID)
			assert.Equal(t, claims.ExpiresAt.UTC().Format("2006-01-02T15:04:05Z07:00"), got.ExpiresAt)
			assert.Equal(t, tt.wantSubject, claims.Subject)
			if tt.wantActor != "" {
				require.NotNil(t, claims.Actor)
				assert.Equal(t, tt.wantActor, claims.Actor.Subject)
			} else {
				assert.Nil(t, claims.Actor)
			}
			for name, values := range res.Header {
				for _, v := range values {
					assert.NotContains(t, v, got.Token, "token in header %s", name)
				}
			}
			assert.NotContains(t, ts.logs.String(), got.Token, "token in the log")
			assert.NotContains(t, ts.logs.String(), testAPIKey, "API key in the log")
			require.Len(t, ts.logs.JSONLines(t, "token minted"), 1)
		})
	}
}

func TestBoundHandoff(t *testing.T) {
	nonce := token.BindingNonce([]byte("a secret only the relying service's browser cookie holds"))
	query := func(audience, taskID, nonce string) string {
		return "/handoffs/bound?" + url.Values{"audience": {audience}, "task_id": {taskID}, "nonce": {nonce}}.Encode()
	}
	tests := []struct {
		name       string
		giveUser   string // "" : signed out
		givePath   string
		wantStatus int
		wantCode   string
	}{
		{name: "ok/bound", giveUser: "alice", givePath: query(payments, "transfer-123", nonce), wantStatus: http.StatusOK},
		{name: "ok/registered_url_whatever_the_query", giveUser: "alice",
			givePath: query(payments, "transfer-123", nonce) + "&handoff_url=http%3A%2F%2Fattacker.test%2F&sub=bob", wantStatus: http.StatusOK},
		{name: "fail/no_session", givePath: query(payments, "transfer-123", nonce), wantStatus: http.StatusUnauthorized, wantCode: "no_session"},
		{name: "fail/unknown_audience", giveUser: "alice", givePath: query("http://attacker.test", "transfer-123", nonce),
			wantStatus: http.StatusBadRequest, wantCode: "unknown_audience"},
		{name: "fail/someone_elses_task", giveUser: "alice", givePath: query(payments, "transfer-200", nonce),
			wantStatus: http.StatusBadRequest, wantCode: "unknown_task"},
		{name: "fail/nonce_missing", giveUser: "alice", givePath: "/handoffs/bound?audience=" + url.QueryEscape(payments) + "&task_id=transfer-123",
			wantStatus: http.StatusBadRequest, wantCode: "invalid_request"},
		{name: "fail/nonce_short", giveUser: "alice", givePath: query(payments, "transfer-123", nonce[:42]), wantStatus: http.StatusBadRequest, wantCode: "invalid_request"},
		{name: "fail/nonce_long", giveUser: "alice", givePath: query(payments, "transfer-123", nonce+"A"), wantStatus: http.StatusBadRequest, wantCode: "invalid_request"},
		{name: "fail/nonce_not_base64url", giveUser: "alice", givePath: query(payments, "transfer-123", "+"+nonce[1:]), wantStatus: http.StatusBadRequest, wantCode: "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			ts := newTestServer(t, cfg)
			b := ts.browser(t)
			b.Header = http.Header{"Accept": {"text/html"}}
			if tt.giveUser != "" {
				b.signIn(tt.giveUser, tt.giveUser+"-demo-pw")
			}
			before := mintedTotal(t, ts.app)

			res := b.Get(tt.givePath)

			require.Equal(t, tt.wantStatus, res.StatusCode, res.Body)
			if tt.wantCode != "" {
				assert.Contains(t, res.Body, `<code id="reason">`+tt.wantCode+`</code>`)
				assert.Equal(t, before, mintedTotal(t, ts.app), "a refused request signs nothing")
				return
			}
			assert.Equal(t, before+1, mintedTotal(t, ts.app))
			doc := parseHTML(t, res.Body)
			action, _ := sharedtest.Attr(byID(t, doc, "handoff"), "action")
			assert.Equal(t, paymentsURL, action, "posted only to the registered handoff URL")
			assert.Equal(t, "strict-origin", res.Header.Get("Referrer-Policy"))
			assert.Equal(t, "no-store", res.Header.Get("Cache-Control"))
			assert.Equal(t, payments, cspDirectives(res.Header.Get("Content-Security-Policy"))["form-action"])
			tok := inputValue(t, doc, "handoff", "token")
			verified, err := verifier(t, ts.app.keys, payments).Verify(context.Background(), tok,
				token.Expect{AnyTask: true, Binding: &token.Binding{Nonces: []string{nonce}}})
			require.NoError(t, err)
			c := verified.Claims()
			assert.Equal(t, tt.giveUser, c.Subject, "only ever the signed-in user's token")
			assert.Equal(t, "transfer-123", c.Task.ID)
			assert.Equal(t, nonce, c.Nonce)
			assert.NotContains(t, ts.logs.String(), tok)
		})
	}
}

// TestBoundHandoff_RateLimited: the bound mint spends the user's handoff
// budget like the form does.
func TestBoundHandoff_RateLimited(t *testing.T) {
	cfg := testConfig(t)
	cfg.HandoffBurst, cfg.HandoffsPerMinute = 1, 1
	ts := newTestServer(t, cfg)
	b := ts.browser(t)
	b.Header = http.Header{"Accept": {"text/html"}}
	b.signIn("alice", "alice-demo-pw")
	path := "/handoffs/bound?" + url.Values{"audience": {payments}, "task_id": {"transfer-123"}, "nonce": {token.BindingNonce([]byte("s"))}}.Encode()

	require.Equal(t, http.StatusOK, b.Get(path).StatusCode)
	second := b.Get(path)
	assert.Equal(t, http.StatusTooManyRequests, second.StatusCode)
	assert.NotEmpty(t, second.Header.Get("Retry-After"))
}

// TestAuditLine: each minted token gets one "token minted" line naming it
// by jti, with the path it was asked for on, the actor of an API-key mint
// and the binding of a bound one; never the token.
func TestAuditLine(t *testing.T) {
	nonce := token.BindingNonce([]byte("binding secret"))
	tests := []struct {
		name      string
		give      func(b *browser, csrf string) response
		wantVia   string
		wantAct   any
		wantBound any
	}{
		{name: "ok/browser", give: func(b *browser, csrf string) response {
			return b.PostForm("/handoffs", url.Values{csrfField: {csrf}, "audience": {payments}, "task_id": {"transfer-123"}}, nil)
		}, wantVia: "browser"},
		{name: "ok/bound", give: func(b *browser, _ string) response {
			return b.Get("/handoffs/bound?" + url.Values{"audience": {payments}, "task_id": {"transfer-123"}, "nonce": {nonce}}.Encode())
		}, wantVia: "browser_bound", wantBound: true},
		{name: "ok/api_key", give: func(b *browser, _ string) response {
			return b.PostJSON("/api/v1/handoffs", fmt.Sprintf(`{"audience":%q,"task_id":"transfer-123","subject":"alice"}`, payments),
				http.Header{"X-Api-Key": {testAPIKey}})
		}, wantVia: "api_key", wantAct: apiActor},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, testConfig(t))
			b := ts.browser(t)
			csrf := b.signIn("alice", "alice-demo-pw")

			res := tt.give(b, csrf)

			require.Less(t, res.StatusCode, 300, res.Body)
			audit := ts.logs.JSONLines(t, "token minted")
			require.Len(t, audit, 1)
			line := audit[0]
			assert.Equal(t, "INFO", line["level"])
			assert.Equal(t, tt.wantVia, line["via"])
			assert.Equal(t, "alice", line["sub"])
			assert.Equal(t, payments, line["aud"])
			assert.Equal(t, "transfer-123", line["task_id"])
			assert.Equal(t, res.Header.Get("X-Request-Id"), line["request_id"])
			assert.Regexp(t, `^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`, line["exp"])
			assert.NotEmpty(t, line["jti"])
			assert.NotEmpty(t, line["kid"])
			assert.Equal(t, tt.wantAct, line["act"])
			assert.Equal(t, tt.wantBound, line["bound"])
			assert.NotContains(t, ts.logs.String(), "eyJ", "no token in the log")
		})
	}
}

// TestLoadRegistry_RefusesCSPBreakingHost: a handoff URL's origin goes
// into the auto-submit page's form-action; a host with ";" would end that
// directive and add another.
func TestLoadRegistry_RefusesCSPBreakingHost(t *testing.T) {
	cfg := defaultConfig()
	cfg.HandoffURL = "https://pay.test;script-src*/handoff"
	_, err := loadRegistry(cfg)
	assert.ErrorContains(t, err, "has a character other than")
}

// TestConfigValidate_URLPasswordNotRepeated: a configured URL refused for
// its credentials is not echoed with them into the startup error (and so
// the log).
func TestConfigValidate_URLPasswordNotRepeated(t *testing.T) {
	cfg := defaultConfig()
	cfg.Issuer = "https://svc:s3cret-pw@portal.test"
	err := cfg.validate()
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "s3cret-pw")
}
