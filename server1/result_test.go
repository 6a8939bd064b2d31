package main

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/broker/brokertest"
	"github.com/handoffbroker/handoff/broker/keys"
	"github.com/handoffbroker/handoff/broker/token"
	"github.com/handoffbroker/handoff/shared/sharedtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/html"
)

// resultEnv is SERVER1 trusting a result issuer ("payments") whose JWKS a
// real HTTP server publishes, both on one clock.
type resultEnv struct {
	ts     *testServer
	clock  *brokertest.Clock
	minter *token.Minter // the result issuer's
	ring   *keys.Keyring
}

func newResultEnv(t *testing.T) *resultEnv {
	t.Helper()
	clock := brokertest.NewClock(time.Now().Truncate(time.Second))
	ring, err := keys.NewEphemeral(token.EdDSA)
	require.NoError(t, err)
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := ring.JWKS()
		if err != nil || r.URL.Path != "/.well-known/jwks.json" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(body)
	}))
	t.Cleanup(jwks.Close)
	cfg := testConfig(t)
	cfg.ResultJWKSURL = jwks.URL + "/.well-known/jwks.json"
	ts := newTestServerWith(t, cfg, options{Now: clock.Now})
	// The memory replay store refuses results issued in its start second.
	clock.Advance(5 * time.Second)
	return &resultEnv{ts: ts, clock: clock, minter: resultMinter(t, ring, clock), ring: ring}
}

func resultMinter(t testing.TB, ring *keys.Keyring, clock *brokertest.Clock) *token.Minter {
	t.Helper()
	m, err := token.NewMinter(token.MinterConfig{Issuer: payments, Keys: ring, Now: clock.Now})
	require.NoError(t, err)
	return m
}

// demoResult is payments' result for alice's transfer 123.
func demoResult(o token.Outcome) token.ResultRequest {
	return token.ResultRequest{
		Subject: "alice", Audience: testIssuer, Outcome: o,
		Task: token.Task{ID: "transfer-123", Action: "approve", Params: demoParams},
	}
}

func (e *resultEnv) mint(t testing.TB, req token.ResultRequest) string {
	t.Helper()
	m, err := e.minter.MintResult(req)
	require.NoError(t, err)
	return m.Token
}

func postResult(b *browser, tok, taskID string) response {
	return b.PostForm("/handoffs/result", url.Values{"token": {tok}, "task_id": {taskID}, "resume": {"1"}}, nil)
}

// rowState is what alice's task list shows for a transfer.
type rowState struct {
	approved, cancelled, continues bool
}

func taskRowState(t testing.TB, b *browser, id string) rowState {
	t.Helper()
	res := b.Get("/")
	require.Equal(t, http.StatusOK, res.StatusCode)
	doc := parseHTML(t, res.Body)
	has := func(elem string) bool {
		return sharedtest.Find(doc, func(n *html.Node) bool {
			v, _ := sharedtest.Attr(n, "id")
			return n.Type == html.ElementNode && v == elem
		}) != nil
	}
	return rowState{approved: has("status-" + id), cancelled: has("note-" + id), continues: has("continue-" + id)}
}

func TestResult_Approved(t *testing.T) {
	e := newResultEnv(t)
	b := e.ts.browser(t)
	csrf := b.signIn("alice", "alice-demo-pw")
	require.Equal(t, rowState{continues: true}, taskRowState(t, b, "transfer-123"))

	got := postResult(b, e.mint(t, demoResult(token.OutcomeApproved)), "transfer-123")

	require.Equal(t, http.StatusSeeOther, got.StatusCode, got.Body)
	assert.Equal(t, "/#task-transfer-123", got.Header.Get("Location"))
	assert.Equal(t, rowState{approved: true}, taskRowState(t, b, "transfer-123"), "approved, no Continue")
	assert.Equal(t, rowState{continues: true}, taskRowState(t, b, "transfer-124"), "the other transfer is untouched")
	refused := b.PostForm("/handoffs", url.Values{csrfField: {csrf}, "audience": {payments}, "task_id": {"transfer-123"}}, nil)
	assert.Equal(t, http.StatusConflict, refused.StatusCode)
	assert.Equal(t, "already_approved", errorCode(t, refused), "no handoff for an approved transfer")

	later := postResult(b, e.mint(t, demoResult(token.OutcomeCancelled)), "transfer-123")
	require.Equal(t, http.StatusSeeOther, later.StatusCode, later.Body)
	assert.Equal(t, rowState{approved: true}, taskRowState(t, b, "transfer-123"), "approval is final")
}

func TestResult_Cancelled(t *testing.T) {
	e := newResultEnv(t)
	b := e.ts.browser(t)
	b.signIn("alice", "alice-demo-pw")

	got := postResult(b, e.mint(t, demoResult(token.OutcomeCancelled)), "transfer-123")

	require.Equal(t, http.StatusSeeOther, got.StatusCode, got.Body)
	assert.Equal(t, rowState{cancelled: true, continues: true}, taskRowState(t, b, "transfer-123"), "still pending, with a note")
}

// TestResult_ResumeWithoutSession: the cross-site post arrives without the
// SameSite=Lax session cookie; SERVER1 posts it again from its own origin,
// and only that post, with the cookie, is checked.
func TestResult_ResumeWithoutSession(t *testing.T) {
	e := newResultEnv(t)
	tok := e.mint(t, demoResult(token.OutcomeApproved))
	b := e.ts.browser(t)

	first := b.PostForm("/handoffs/result", url.Values{"token": {tok}, "task_id": {"transfer-123"}}, nil)

	require.Equal(t, http.StatusOK, first.StatusCode, first.Body)
	assert.Contains(t, first.Header.Get("Content-Security-Policy"), "form-action 'self'")
	assert.Equal(t, "no-store", first.Header.Get("Cache-Control"))
	doc := parseHTML(t, first.Body)
	assert.Equal(t, tok, inputValue(t, doc, "resume", "token"))
	assert.Equal(t, "transfer-123", inputValue(t, doc, "resume", "task_id"))
	assert.Equal(t, "1", inputValue(t, doc, "resume", "resume"))

	signedOut := postResult(b, tok, "transfer-123")
	assert.Equal(t, http.StatusUnauthorized, signedOut.StatusCode)
	assert.Equal(t, "no_session", errorCode(t, signedOut), "no loop: the resumed post without a session stops")

	b.signIn("alice", "alice-demo-pw")
	got := postResult(b, tok, "transfer-123")
	require.Equal(t, http.StatusSeeOther, got.StatusCode, "nothing was consumed before: %s", got.Body)
	assert.Equal(t, rowState{approved: true}, taskRowState(t, b, "transfer-123"))
	assert.NotContains(t, e.ts.logs.String(), tok[strings.LastIndexByte(tok, '.')+1:], "the result token is logged")
}

// TestResult_Refused: forged, tampered, replayed, misdirected and
// mistyped results change nothing and get their stable reason.
func TestResult_Refused(t *testing.T) {
	tests := []struct {
		name       string
		giveToken  func(t *testing.T, e *resultEnv) string
		giveTaskID string // default transfer-123
		wantStatus int
		wantCode   string
	}{
		{name: "fail/forged_other_key", wantStatus: http.StatusUnauthorized, wantCode: "unknown_key",
			giveToken: func(t *testing.T, e *resultEnv) string {
				other, err := keys.NewEphemeral(token.EdDSA)
				require.NoError(t, err)
				m, err := resultMinter(t, other, e.clock).MintResult(demoResult(token.OutcomeApproved))
				require.NoError(t, err)
				return m.Token
			}},
		{name: "fail/tampered", wantStatus: http.StatusUnauthorized, wantCode: "bad_signature",
			giveToken: func(t *testing.T, e *resultEnv) string {
				tok := e.mint(t, demoResult(token.OutcomeCancelled))
				parts := strings.Split(tok, ".")
				payload, err := base64.RawURLEncoding.DecodeString(parts[1])
				require.NoError(t, err)
				forged := strings.Replace(string(payload), `"cancelled"`, `"approved"`, 1)
				require.NotEqual(t, string(payload), forged)
				return parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(forged)) + "." + parts[2]
			}},
		{name: "fail/wrong_audience", wantStatus: http.StatusUnauthorized, wantCode: "wrong_audience",
			giveToken: func(t *testing.T, e *resultEnv) string {
				req := demoResult(token.OutcomeApproved)
				req.Audience = "http://other-portal.test"
				return e.mint(t, req)
			}},
		{name: "fail/other_user", wantStatus: http.StatusForbidden, wantCode: "wrong_subject",
			giveToken: func(t *testing.T, e *resultEnv) string {
				req := demoResult(token.OutcomeApproved)
				req.Subject = "bob"
				return e.mint(t, req)
			}},
		{name: "fail/other_users_task", giveTaskID: "transfer-200", wantStatus: http.StatusBadRequest, wantCode: "unknown_task",
			giveToken: func(t *testing.T, e *resultEnv) string {
				req := demoResult(token.OutcomeApproved)
				req.Subject, req.Task = "bob", token.Task{ID: "transfer-200", Action: "approve", Params: map[string]string{"amount": "1200.00", "currency": "EUR", "payee": "Initech"}}
				return e.mint(t, req)
			}},
		{name: "fail/other_task", giveTaskID: "transfer-124", wantStatus: http.StatusForbidden, wantCode: "task_mismatch",
			giveToken: func(t *testing.T, e *resultEnv) string { return e.mint(t, demoResult(token.OutcomeApproved)) }},
		{name: "fail/other_parameters", wantStatus: http.StatusForbidden, wantCode: "task_mismatch",
			giveToken: func(t *testing.T, e *resultEnv) string {
				req := demoResult(token.OutcomeApproved)
				req.Task.Params = map[string]string{"amount": "9999.00", "currency": "EUR", "payee": "ACME Corp"}
				return e.mint(t, req)
			}},
		{name: "fail/handoff_token_as_result", wantStatus: http.StatusBadRequest, wantCode: "bad_type",
			giveToken: func(t *testing.T, e *resultEnv) string {
				m, err := e.minter.Mint(token.MintRequest{Subject: "alice", Audience: testIssuer,
					Task: token.Task{ID: "transfer-123", Action: "approve", Params: demoParams}})
				require.NoError(t, err)
				return m.Token
			}},
		{name: "fail/expired", wantStatus: http.StatusUnauthorized, wantCode: "expired",
			giveToken: func(t *testing.T, e *resultEnv) string {
				tok := e.mint(t, demoResult(token.OutcomeApproved))
				e.clock.Advance(2 * time.Minute)
				return tok
			}},
		{name: "fail/garbage", wantStatus: http.StatusBadRequest, wantCode: "malformed",
			giveToken: func(*testing.T, *resultEnv) string { return "not-a-token" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newResultEnv(t)
			b := e.ts.browser(t)
			b.signIn("alice", "alice-demo-pw")
			taskID := tt.giveTaskID
			if taskID == "" {
				taskID = "transfer-123"
			}

			got := postResult(b, tt.giveToken(t, e), taskID)

			assert.Equal(t, tt.wantStatus, got.StatusCode, got.Body)
			assert.Equal(t, tt.wantCode, errorCode(t, got))
			for _, id := range []string{"transfer-123", "transfer-124"} {
				assert.Equal(t, rowState{continues: true}, taskRowState(t, b, id), "%s changed", id)
			}
		})
	}
	t.Run("fail/replayed", func(t *testing.T) {
		e := newResultEnv(t)
		b := e.ts.browser(t)
		b.signIn("alice", "alice-demo-pw")
		tok := e.mint(t, demoResult(token.OutcomeCancelled))
		require.Equal(t, http.StatusSeeOther, postResult(b, tok, "transfer-123").StatusCode)

		got := postResult(b, tok, "transfer-123")

		assert.Equal(t, http.StatusConflict, got.StatusCode)
		assert.Equal(t, "replayed", errorCode(t, got))
		assert.Equal(t, rowState{cancelled: true, continues: true}, taskRowState(t, b, "transfer-123"))
	})
	t.Run("fail/wrong_subject_not_consumed", func(t *testing.T) {
		e := newResultEnv(t)
		alice := e.ts.browser(t)
		alice.signIn("alice", "alice-demo-pw")
		req := demoResult(token.OutcomeApproved)
		req.Subject = "bob"
		tok := e.mint(t, req)
		require.Equal(t, "wrong_subject", errorCode(t, postResult(alice, tok, "transfer-123")))
		require.Equal(t, "wrong_subject", errorCode(t, postResult(alice, tok, "transfer-123")), "still unused: refused for the user, not as a replay")
	})
	t.Run("fail/token_in_url", func(t *testing.T) {
		e := newResultEnv(t)
		b := e.ts.browser(t)
		b.signIn("alice", "alice-demo-pw")
		got := b.PostForm("/handoffs/result?token=x", url.Values{"token": {"x"}, "task_id": {"transfer-123"}}, nil)
		assert.Equal(t, http.StatusBadRequest, got.StatusCode)
		assert.Equal(t, "token_in_url", errorCode(t, got))
	})
	t.Run("fail/missing_fields", func(t *testing.T) {
		e := newResultEnv(t)
		got := e.ts.browser(t).PostForm("/handoffs/result", url.Values{"task_id": {"transfer-123"}}, nil)
		assert.Equal(t, http.StatusBadRequest, got.StatusCode)
		assert.Equal(t, "invalid_request", errorCode(t, got))
	})
}
