package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/broker/brokertest"
	"github.com/handoffbroker/handoff/broker/token"
	"github.com/handoffbroker/handoff/shared"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const demoBody = `{"amount":"250.00","currency":"EUR","payee":"ACME Corp"}`

func TestAPITask(t *testing.T) {
	tests := []struct {
		name          string
		givePath      string
		giveAuth      func(t *testing.T, ta *testApp) string
		giveBody      string
		wantStatus    int
		wantCode      string
		wantChallenge string
	}{
		{
			name:       "ok/body_matches_digest",
			givePath:   "/api/v1/tasks/transfer-123/approve",
			giveAuth:   bearer(nil),
			giveBody:   demoBody,
			wantStatus: http.StatusOK,
		},
		{
			name:       "ok/same_params_other_spelling",
			givePath:   "/api/v1/tasks/transfer-123/approve",
			giveAuth:   bearer(nil),
			giveBody:   ` { "payee": "ACME Corp", "currency": "EUR", "amount": "250.00" } `,
			wantStatus: http.StatusOK,
		},
		{
			name:          "fail/other_amount",
			givePath:      "/api/v1/tasks/transfer-123/approve",
			giveAuth:      bearer(nil),
			giveBody:      `{"amount":"9999.00","currency":"EUR","payee":"ACME Corp"}`,
			wantStatus:    http.StatusForbidden,
			wantCode:      string(token.ReasonTaskMismatch),
			wantChallenge: `Bearer error="insufficient_scope", error_description="task_mismatch"`,
		},
		{
			name:          "fail/other_task",
			givePath:      "/api/v1/tasks/transfer-124/approve",
			giveAuth:      bearer(nil),
			giveBody:      demoBody,
			wantStatus:    http.StatusForbidden,
			wantCode:      string(token.ReasonTaskMismatch),
			wantChallenge: `Bearer error="insufficient_scope", error_description="task_mismatch"`,
		},
		{
			name:          "fail/other_action",
			givePath:      "/api/v1/tasks/transfer-123/reject",
			giveAuth:      bearer(nil),
			giveBody:      demoBody,
			wantStatus:    http.StatusForbidden,
			wantCode:      string(token.ReasonTaskMismatch),
			wantChallenge: `Bearer error="insufficient_scope", error_description="task_mismatch"`,
		},
		{
			name:          "fail/missing_authorization",
			givePath:      "/api/v1/tasks/transfer-123/approve",
			giveAuth:      func(*testing.T, *testApp) string { return "" },
			giveBody:      demoBody,
			wantStatus:    http.StatusUnauthorized,
			wantCode:      CodeMissingToken,
			wantChallenge: "Bearer",
		},
		{
			name:          "fail/basic_authorization",
			givePath:      "/api/v1/tasks/transfer-123/approve",
			giveAuth:      func(*testing.T, *testApp) string { return "Basic YWxpY2U6cHc=" },
			giveBody:      demoBody,
			wantStatus:    http.StatusUnauthorized,
			wantCode:      CodeMissingToken,
			wantChallenge: "Bearer",
		},
		{
			name:          "fail/malformed_token",
			givePath:      "/api/v1/tasks/transfer-123/approve",
			giveAuth:      func(*testing.T, *testApp) string { return "Bearer abc" },
			giveBody:      demoBody,
			wantStatus:    http.StatusBadRequest,
			wantCode:      string(token.ReasonMalformed),
			wantChallenge: `Bearer error="invalid_request", error_description="malformed"`,
		},
		{
			name:     "fail/expired",
			givePath: "/api/v1/tasks/transfer-123/approve",
			giveAuth: bearer(func(ta *testApp) {
				ta.clock.Advance(2 * time.Minute)
			}),
			giveBody:      demoBody,
			wantStatus:    http.StatusUnauthorized,
			wantCode:      string(token.ReasonExpired),
			wantChallenge: `Bearer error="invalid_token", error_description="expired"`,
		},
		{
			name:          "fail/body_not_an_object",
			givePath:      "/api/v1/tasks/transfer-123/approve",
			giveAuth:      bearer(nil),
			giveBody:      `["250.00"]`,
			wantStatus:    http.StatusBadRequest,
			wantCode:      CodeInvalidRequest,
			wantChallenge: `Bearer error="invalid_request", error_description="invalid_request"`,
		},
		{
			name:          "fail/duplicate_param",
			givePath:      "/api/v1/tasks/transfer-123/approve",
			giveAuth:      bearer(nil),
			giveBody:      `{"amount":"250.00","amount":"9999.00","currency":"EUR","payee":"ACME Corp"}`,
			wantStatus:    http.StatusBadRequest,
			wantCode:      CodeInvalidRequest,
			wantChallenge: `Bearer error="invalid_request", error_description="invalid_request"`,
		},
		{
			name:          "fail/missing_body_is_invalid_request",
			givePath:      "/api/v1/tasks/transfer-123/approve",
			giveAuth:      bearer(nil),
			wantStatus:    http.StatusBadRequest,
			wantCode:      CodeInvalidRequest,
			wantChallenge: `Bearer error="invalid_request", error_description="invalid_request"`,
		},
		{
			name:          "fail/empty_object_is_other_params",
			givePath:      "/api/v1/tasks/transfer-123/approve",
			giveAuth:      bearer(nil),
			giveBody:      `{}`,
			wantStatus:    http.StatusForbidden,
			wantCode:      string(token.ReasonTaskMismatch),
			wantChallenge: `Bearer error="insufficient_scope", error_description="task_mismatch"`,
		},
		{
			name:          "fail/missing_body_for_another_task_is_task_mismatch",
			givePath:      "/api/v1/tasks/transfer-124/approve",
			giveAuth:      bearer(nil),
			wantStatus:    http.StatusForbidden,
			wantCode:      string(token.ReasonTaskMismatch),
			wantChallenge: `Bearer error="insufficient_scope", error_description="task_mismatch"`,
		},
		{
			name:          "fail/token_in_query",
			givePath:      "/api/v1/tasks/transfer-123/approve?access_token=x",
			giveAuth:      bearer(nil),
			giveBody:      demoBody,
			wantStatus:    http.StatusBadRequest,
			wantCode:      CodeTokenInURL,
			wantChallenge: `Bearer error="invalid_request", error_description="token_in_url"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ta := newTestApp(t, nil)
			auth := tt.giveAuth(t, ta)

			got := ta.newBrowser().callAPI(tt.givePath, auth, tt.giveBody)

			require.Equal(t, tt.wantStatus, got.StatusCode, got.Body)
			if tt.wantCode == "" {
				var res apiResult
				require.NoError(t, json.Unmarshal([]byte(got.Body), &res))
				assert.Equal(t, "approved", res.Status)
				assert.Equal(t, "transfer-123", res.TaskID)
				assert.Equal(t, "alice", res.Subject)
				assert.NotEmpty(t, res.JTI)
				return
			}
			p := problem(t, got)
			assert.Equal(t, tt.wantCode, p.Code)
			assert.Equal(t, "https://handoffbroker.github.io/problems/"+tt.wantCode, p.Type)
			assert.Equal(t, tt.wantChallenge, got.Header.Get("WWW-Authenticate"))
			assertDeveloperWording(t, p)
			if tok, ok := strings.CutPrefix(auth, "Bearer "); ok {
				assert.NotContains(t, got.Body, tok)
			}
		})
	}
}

// assertDeveloperWording checks a problem speaks to the developer calling
// the API: it says what to send, not what a browser user should click.
func assertDeveloperWording(t testing.TB, p shared.Problem) {
	t.Helper()
	assert.NotEmpty(t, p.Detail, "the problem says what to send instead")
	for _, browserWords := range []string{"one-time pass", "Go back", "Start the task again", "service that sent you here", "Reload"} {
		assert.NotContains(t, p.Title+" "+p.Detail, browserWords)
	}
}

// bearer returns a giveAuth that mints the demo token, runs after (if not
// nil), and returns the Authorization header value.
func bearer(after func(*testApp)) func(*testing.T, *testApp) string {
	return func(t *testing.T, ta *testApp) string {
		tok := ta.issuer.Mint(t, demoRequest())
		if after != nil {
			after(ta)
		}
		return "Bearer " + tok
	}
}

func TestAPITask_Replayed(t *testing.T) {
	ta := newTestApp(t, nil)
	auth := "Bearer " + ta.issuer.Mint(t, demoRequest())
	b := ta.newBrowser()

	first := b.callAPI("/api/v1/tasks/transfer-123/approve", auth, demoBody)
	second := b.callAPI("/api/v1/tasks/transfer-123/approve", auth, demoBody)

	require.Equal(t, http.StatusOK, first.StatusCode)
	require.Equal(t, http.StatusConflict, second.StatusCode)
	assert.Equal(t, string(token.ReasonReplayed), problem(t, second).Code)
	assert.Empty(t, second.Header.Get("WWW-Authenticate"), "RFC 6750 sends invalid_token only with 401")
}

func TestAPITask_TaskMismatchDoesNotBurnTheToken(t *testing.T) {
	ta := newTestApp(t, nil)
	auth := "Bearer " + ta.issuer.Mint(t, demoRequest())
	b := ta.newBrowser()

	wrong := b.callAPI("/api/v1/tasks/transfer-123/approve", auth, `{"amount":"1.00","currency":"EUR","payee":"ACME Corp"}`)
	right := b.callAPI("/api/v1/tasks/transfer-123/approve", auth, demoBody)

	assert.Equal(t, http.StatusForbidden, wrong.StatusCode)
	assert.Equal(t, http.StatusOK, right.StatusCode)
}

func TestAPITask_MissingBodyDoesNotBurnTheToken(t *testing.T) {
	ta := newTestApp(t, nil)
	auth := "Bearer " + ta.issuer.Mint(t, demoRequest())
	b := ta.newBrowser()

	missing := b.callAPI("/api/v1/tasks/transfer-123/approve", auth, "")
	right := b.callAPI("/api/v1/tasks/transfer-123/approve", auth, demoBody)

	require.Equal(t, http.StatusBadRequest, missing.StatusCode)
	assert.Contains(t, problem(t, missing).Detail, `{"amount":"250.00","currency":"EUR","payee":"ACME Corp"}`, "shows what to send")
	assert.Equal(t, http.StatusOK, right.StatusCode)
}

func TestAPITask_AlreadyCompleted(t *testing.T) {
	ta := newTestApp(t, nil)
	b := ta.newBrowser()
	first := b.callAPI("/api/v1/tasks/transfer-123/approve", "Bearer "+ta.issuer.Mint(t, demoRequest()), demoBody)
	require.Equal(t, http.StatusOK, first.StatusCode)

	second := b.callAPI("/api/v1/tasks/transfer-123/approve", "Bearer "+ta.issuer.Mint(t, demoRequest()), demoBody)

	require.Equal(t, http.StatusConflict, second.StatusCode)
	p := problem(t, second)
	assert.Equal(t, CodeAlreadyCompleted, p.Code)
	assertDeveloperWording(t, p)
	assert.Empty(t, second.Header.Get("WWW-Authenticate"), "the token was fine: no challenge")
}

func TestAPITask_Unavailable(t *testing.T) {
	ta := newTestApp(t, func(_ *Config, o *Options) { o.ReplayStore = brokertest.FailingReplayStore{} })
	auth := "Bearer " + ta.issuer.Mint(t, demoRequest())

	got := ta.newBrowser().callAPI("/api/v1/tasks/transfer-123/approve", auth, demoBody)

	require.Equal(t, http.StatusServiceUnavailable, got.StatusCode)
	assert.Equal(t, string(token.ReasonUnavailable), problem(t, got).Code)
	assert.Empty(t, got.Header.Get("WWW-Authenticate"), "the token may be fine: no invalid_token challenge")
	assertDeveloperWording(t, problem(t, got))
}
