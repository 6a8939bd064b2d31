package broker

import (
	"errors"
	"net/http"
	"testing"

	"github.com/handoffbroker/handoff/broker/token"
	"github.com/stretchr/testify/assert"
)

func TestStatusForCoversEveryReason(t *testing.T) {
	for _, r := range token.Reasons() {
		s := statusFor(r)
		if r == token.ReasonInvalidExpect {
			assert.Equal(t, 500, s, "the service's own mistake, not the token's")
		} else {
			assert.Contains(t, []int{400, 401, 403, 409, 503}, s, r)
		}
		assert.Contains(t, reasonText, r, "every reason has public wording")
	}
	assert.Equal(t, 409, statusFor(token.ReasonReplayed))
	assert.Equal(t, 503, statusFor(token.ReasonUnavailable))
	assert.Equal(t, 403, statusFor(token.ReasonTaskMismatch))
}

func TestErrorFor(t *testing.T) {
	tests := []struct {
		name          string
		giveErr       error
		giveBearer    bool
		wantStatus    int
		wantCode      string
		wantChallenge string
	}{
		{name: "ok/browser_has_no_challenge", giveErr: &token.Error{Reason: token.ReasonExpired}, wantStatus: 401, wantCode: "expired"},
		{name: "ok/bearer_401_invalid_token", giveErr: &token.Error{Reason: token.ReasonExpired}, giveBearer: true, wantStatus: 401, wantCode: "expired",
			wantChallenge: `Bearer error="invalid_token", error_description="expired"`},
		{name: "ok/bearer_400_invalid_request", giveErr: &token.Error{Reason: token.ReasonMalformed}, giveBearer: true, wantStatus: 400, wantCode: "malformed",
			wantChallenge: `Bearer error="invalid_request", error_description="malformed"`},
		{name: "ok/bearer_403_insufficient_scope", giveErr: &token.Error{Reason: token.ReasonTaskMismatch}, giveBearer: true, wantStatus: 403, wantCode: "task_mismatch",
			wantChallenge: `Bearer error="insufficient_scope", error_description="task_mismatch"`},
		{name: "ok/bearer_409_no_challenge", giveErr: &token.Error{Reason: token.ReasonReplayed}, giveBearer: true, wantStatus: 409, wantCode: "replayed"},
		{name: "ok/bearer_503_no_challenge", giveErr: &token.Error{Reason: token.ReasonUnavailable}, giveBearer: true, wantStatus: 503, wantCode: "unavailable"},
		{name: "ok/bearer_500_invalid_expect_no_challenge", giveErr: &token.Error{Reason: token.ReasonInvalidExpect}, giveBearer: true, wantStatus: 500, wantCode: "invalid_expect"},
		{name: "fail/not_a_token_error", giveErr: errors.New("db exploded"), giveBearer: true, wantStatus: http.StatusInternalServerError, wantCode: CodeInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ErrorFor(tt.giveErr, tt.giveBearer)

			assert.Equal(t, tt.wantStatus, got.Status)
			assert.Equal(t, tt.wantCode, got.Code)
			assert.Equal(t, tt.wantChallenge, got.Challenge)
			assert.ErrorIs(t, got, tt.giveErr, "the cause stays reachable for logs")
		})
	}
}

// TestErrorFor_wording: every reason has a page for the browser user and a
// problem for the developer calling the API, and neither tells the other's
// reader what to do.
func TestErrorFor_wording(t *testing.T) {
	for _, r := range token.Reasons() {
		t.Run(string(r), func(t *testing.T) {
			e := ErrorFor(&token.Error{Reason: r}, true)
			p := e.Problem()

			assert.NotEmpty(t, e.Title)
			assert.NotEmpty(t, e.Detail)
			assert.NotEqual(t, e.Detail, p.Detail, "the problem's detail is the developer's, not the page's")
			for _, page := range []string{e.Title, e.Detail} {
				assert.NotContains(t, page, "token", "pages call it a one-time pass")
				assert.NotContains(t, page, "handoff")
			}
			for _, api := range []string{p.Title, p.Detail} {
				assert.NotContains(t, api, "one-time pass", "developers get the technical name")
				assert.NotContains(t, api, "Go back")
				assert.NotContains(t, api, "service that sent you here")
			}
		})
	}
}

func TestProblem_fallsBackToPageWording(t *testing.T) {
	e := &Error{Status: 409, Code: "already_completed", Title: "This task was already completed.", Detail: "Nothing more to do."}

	p := e.Problem()

	assert.Equal(t, "This task was already completed.", p.Title)
	assert.Equal(t, "Nothing more to do.", p.Detail)
	assert.Equal(t, ProblemTypeBase+"already_completed", p.Type)
}
