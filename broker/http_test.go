package broker

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/broker/brokertest"
	"github.com/handoffbroker/handoff/broker/token"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHandoffHandler(t *testing.T) {
	tests := []struct {
		name       string
		giveMethod string
		giveQuery  string
		giveToken  func(t *testing.T, is *brokertest.Issuer, rp *RelyingParty, nonce string) string
		giveAdmit  error
		wantStatus int
		wantCode   string
		wantOpened bool
	}{
		{name: "ok/opens_session", giveMethod: http.MethodPost, wantStatus: http.StatusSeeOther, wantOpened: true},
		{name: "fail/get_is_token_in_url", giveMethod: http.MethodGet, wantStatus: http.StatusBadRequest, wantCode: CodeTokenInURL},
		{name: "fail/query_token", giveMethod: http.MethodPost, giveQuery: "?token=x", wantStatus: http.StatusBadRequest, wantCode: CodeTokenInURL},
		{name: "fail/put", giveMethod: http.MethodPut, wantStatus: http.StatusMethodNotAllowed, wantCode: "method_not_allowed"},
		{name: "fail/garbage", giveMethod: http.MethodPost, giveToken: func(*testing.T, *brokertest.Issuer, *RelyingParty, string) string { return "garbage" },
			wantStatus: http.StatusBadRequest, wantCode: string(token.ReasonMalformed)},
		{name: "fail/replayed", giveMethod: http.MethodPost, giveToken: func(t *testing.T, is *brokertest.Issuer, rp *RelyingParty, nonce string) string {
			tok := mintBound(t, is, demoTask, nonce).Token
			_, err := rp.Verify(t.Context(), tok, anyTask)
			require.NoError(t, err)
			return tok
		}, wantStatus: http.StatusConflict, wantCode: string(token.ReasonReplayed)},
		{name: "fail/admit_refuses", giveMethod: http.MethodPost, giveAdmit: &Error{Status: http.StatusServiceUnavailable, Code: "too_many_sessions"},
			wantStatus: http.StatusServiceUnavailable, wantCode: "too_many_sessions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, is, rp := newReadyRP(t, nil)
			var opened *token.Claims
			released := 0
			h := rp.HandoffHandler(HandoffConfig{
				Open: func(w http.ResponseWriter, r *http.Request, c *token.Claims) error {
					opened = c
					http.Redirect(w, r, "/tasks/"+c.Task.ID, http.StatusSeeOther)
					return nil
				},
				Admit: func(_ http.ResponseWriter, r *http.Request) (*http.Request, func(), error) {
					if tt.giveAdmit != nil {
						return nil, nil, tt.giveAdmit
					}
					return r, func() { released++ }, nil
				},
			})
			cookie, nonce := newBindingCookie(t)
			tok := mintBound(t, is, demoTask, nonce).Token
			if tt.giveToken != nil {
				tok = tt.giveToken(t, is, rp, nonce)
			}
			req := httptest.NewRequest(tt.giveMethod, "/handoff"+tt.giveQuery, strings.NewReader(url.Values{"token": {tok}}.Encode()))
			req.AddCookie(cookie)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Accept", "text/html")
			rec := httptest.NewRecorder()

			h.ServeHTTP(rec, req)

			assert.Equal(t, tt.wantStatus, rec.Code, rec.Body.String())
			assert.NotContains(t, rec.Body.String(), tok)
			if tt.wantOpened {
				require.NotNil(t, opened)
				assert.Equal(t, demoTask.ID, opened.Task.ID)
				assert.Equal(t, 1, released)
				return
			}
			assert.Nil(t, opened)
			assert.Contains(t, rec.Body.String(), `<code id="reason">`+tt.wantCode+`</code>`)
			assert.Equal(t, "no-store", rec.Header().Get("Cache-Control"))
			if tt.giveAdmit != nil {
				_, err := rp.Verify(t.Context(), tok, anyTask)
				assert.NoError(t, err, "a refused admission leaves the token unconsumed")
			}
		})
	}
}

// TestHandoffHandler_Form pins how the handoff form body is read: the
// browser's exact Content-Type takes the direct read, everything else
// ParseForm, with the same answers either way and the token left
// unconsumed by every refusal.
func TestHandoffHandler_Form(t *testing.T) {
	const maxForm = 1 << 10
	tests := []struct {
		name        string
		giveQuery   string
		giveType    string
		giveBody    func(tok string) string
		giveChunked bool
		wantStatus  int
		wantCode    string
	}{
		{name: "ok/form", giveType: formContentType, wantStatus: http.StatusSeeOther},
		{name: "ok/form_chunked", giveType: formContentType, giveChunked: true, wantStatus: http.StatusSeeOther},
		{name: "ok/form_with_charset", giveType: formContentType + "; charset=utf-8", wantStatus: http.StatusSeeOther},
		{name: "ok/other_fields_first", giveType: formContentType, giveBody: func(tok string) string { return "a=1&b=%41&token=" + tok },
			wantStatus: http.StatusSeeOther},
		{name: "ok/first_token_counts", giveType: formContentType, giveBody: func(tok string) string { return "token=" + tok + "&token=garbage" },
			wantStatus: http.StatusSeeOther},
		{name: "fail/body_over_limit", giveType: formContentType, giveBody: func(tok string) string { return "token=" + tok + "&pad=" + strings.Repeat("x", maxForm) },
			wantStatus: http.StatusBadRequest, wantCode: CodeInvalidRequest},
		{name: "fail/chunked_body_over_limit", giveType: formContentType, giveChunked: true,
			giveBody:   func(tok string) string { return "token=" + tok + "&pad=" + strings.Repeat("x", maxForm) },
			wantStatus: http.StatusBadRequest, wantCode: CodeInvalidRequest},
		{name: "fail/bad_escape", giveType: formContentType, giveBody: func(tok string) string { return "token=" + tok + "&x=%zz" },
			wantStatus: http.StatusBadRequest, wantCode: CodeInvalidRequest},
		{name: "fail/semicolon", giveType: formContentType, giveBody: func(tok string) string { return "token=" + tok + ";x=1" },
			wantStatus: http.StatusBadRequest, wantCode: CodeInvalidRequest},
		{name: "fail/bad_query", giveQuery: "?x=%zz", giveType: formContentType, wantStatus: http.StatusBadRequest, wantCode: CodeInvalidRequest},
		{name: "fail/bad_media_type", giveType: "application/x-www-form-urlencoded; =", wantStatus: http.StatusBadRequest, wantCode: CodeInvalidRequest},
		{name: "fail/json_body", giveType: "application/json", giveBody: func(tok string) string { return `{"token":"` + tok + `"}` },
			wantStatus: http.StatusBadRequest, wantCode: string(token.ReasonMalformed)},
		{name: "fail/no_token_field", giveType: formContentType, giveBody: func(string) string { return "other=1" },
			wantStatus: http.StatusBadRequest, wantCode: string(token.ReasonMalformed)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, is, rp := newReadyRP(t, nil)
			var postForm url.Values
			h := rp.HandoffHandler(HandoffConfig{
				MaxFormBytes: maxForm,
				Open: func(w http.ResponseWriter, r *http.Request, c *token.Claims) error {
					postForm = r.PostForm
					http.Redirect(w, r, "/tasks/"+c.Task.ID, http.StatusSeeOther)
					return nil
				},
			})
			cookie, nonce := newBindingCookie(t)
			tok := mintBound(t, is, demoTask, nonce).Token
			body := "token=" + tok
			if tt.giveBody != nil {
				body = tt.giveBody(tok)
			}
			var rd io.Reader = strings.NewReader(body)
			if tt.giveChunked {
				rd = io.MultiReader(rd) // hides the length: no Content-Length
			}
			req := httptest.NewRequest(http.MethodPost, "/handoff"+tt.giveQuery, rd)
			if tt.giveChunked {
				req.ContentLength = -1
			}
			req.AddCookie(cookie)
			req.Header.Set("Content-Type", tt.giveType)
			req.Header.Set("Accept", "text/html")
			rec := httptest.NewRecorder()

			h.ServeHTTP(rec, req)

			assert.Equal(t, tt.wantStatus, rec.Code, rec.Body.String())
			if tt.wantCode == "" {
				assert.Equal(t, tok, postForm.Get("token"), "Open sees the form in r.PostForm")
				return
			}
			assert.Contains(t, rec.Body.String(), `<code id="reason">`+tt.wantCode+`</code>`)
			_, err := rp.Verify(t.Context(), tok, token.Expect{AnyTask: true, Binding: &token.Binding{Nonces: []string{nonce}}})
			assert.NoError(t, err, "a refused form leaves the token unconsumed")
		})
	}
}

// TestParseForm checks parseForm against url.ParseQuery, the parser it
// must agree with, on bodies of both paths.
func TestParseForm(t *testing.T) {
	for _, body := range []string{
		"", "token=abc.def-_", "token=a&token=b", "&&token=x&&", "token", "token=", "=x", "a=1&b=2&a=3",
		"token=a=b", "token=%41", "token=a+b", "tok+en=a", "token=%zz", "token=a;b", "a;b=1&token=x", "a=%&token=x",
		"token=x" + strings.Repeat("&a=1", maxQuickFormFields), strings.Repeat("&", 10001),
	} {
		want, wantErr := url.ParseQuery(body)
		got, err := parseForm(body)
		assert.Equal(t, wantErr != nil, err != nil, "error for %.40q", body)
		assert.Equal(t, want, got, "fields of %.40q", body)
	}
}

func TestMiddleware(t *testing.T) {
	other := token.Task{ID: "transfer-2", Action: "approve"}
	tests := []struct {
		name          string
		giveAuth      func(t *testing.T, is *brokertest.Issuer, clock *brokertest.Clock) string
		giveQuery     string
		giveExpectErr error
		giveNoTask    bool
		wantStatus    int
		wantCode      string
		wantChallenge string
	}{
		{name: "ok/task_matches", giveAuth: bearerFor(demoTask), wantStatus: http.StatusOK},
		{name: "fail/missing", giveAuth: func(*testing.T, *brokertest.Issuer, *brokertest.Clock) string { return "" },
			wantStatus: http.StatusUnauthorized, wantCode: CodeMissingToken, wantChallenge: "Bearer"},
		{name: "fail/basic", giveAuth: func(*testing.T, *brokertest.Issuer, *brokertest.Clock) string { return "Basic YWxpY2U6cHc=" },
			wantStatus: http.StatusUnauthorized, wantCode: CodeMissingToken, wantChallenge: "Bearer"},
		{name: "fail/other_task", giveAuth: bearerFor(other), wantStatus: http.StatusForbidden, wantCode: string(token.ReasonTaskMismatch),
			wantChallenge: `Bearer error="insufficient_scope", error_description="task_mismatch"`},
		{name: "fail/malformed", giveAuth: func(*testing.T, *brokertest.Issuer, *brokertest.Clock) string { return "Bearer abc" },
			wantStatus: http.StatusBadRequest, wantCode: string(token.ReasonMalformed),
			wantChallenge: `Bearer error="invalid_request", error_description="malformed"`},
		{name: "fail/expired", giveAuth: func(t *testing.T, is *brokertest.Issuer, clock *brokertest.Clock) string {
			auth := bearerFor(demoTask)(t, is, clock)
			clock.Advance(5 * time.Minute)
			return auth
		}, wantStatus: http.StatusUnauthorized, wantCode: string(token.ReasonExpired),
			wantChallenge: `Bearer error="invalid_token", error_description="expired"`},
		{name: "fail/token_in_query", giveAuth: bearerFor(demoTask), giveQuery: "?access_token=x",
			wantStatus: http.StatusBadRequest, wantCode: CodeTokenInURL,
			wantChallenge: `Bearer error="invalid_request", error_description="token_in_url"`},
		{name: "fail/expect_refuses", giveAuth: bearerFor(demoTask), giveExpectErr: errors.New("bad body"),
			wantStatus: http.StatusBadRequest, wantCode: CodeInvalidRequest,
			wantChallenge: `Bearer error="invalid_request", error_description="invalid_request"`},
		{name: "fail/expect_refuses_with_conflict", giveAuth: bearerFor(demoTask), giveExpectErr: &Error{Status: http.StatusConflict, Code: "busy"},
			wantStatus: http.StatusConflict, wantCode: "busy"},
		{name: "fail/zero_expect_is_invalid_expect", giveAuth: bearerFor(demoTask), giveNoTask: true,
			wantStatus: http.StatusInternalServerError, wantCode: string(token.ReasonInvalidExpect)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock, is, rp := newReadyRP(t, nil)
			var got *token.Claims
			h := rp.Middleware(func(*http.Request) (token.Expect, error) {
				if tt.giveNoTask {
					return token.Expect{}, nil
				}
				return token.Expect{Task: &demoTask}, tt.giveExpectErr
			}, nil)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got, _ = ClaimsFromContext(r.Context())
				w.WriteHeader(http.StatusOK)
			}))
			auth := tt.giveAuth(t, is, clock)
			req := httptest.NewRequest(http.MethodPost, "/api/tasks/transfer-1/approve"+tt.giveQuery, nil)
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			rec := httptest.NewRecorder()

			h.ServeHTTP(rec, req)

			require.Equal(t, tt.wantStatus, rec.Code, rec.Body.String())
			assert.Equal(t, tt.wantChallenge, rec.Header().Get("WWW-Authenticate"))
			if tt.wantCode == "" {
				require.NotNil(t, got)
				assert.Equal(t, "alice", got.Subject)
				return
			}
			assert.Nil(t, got)
			assert.Equal(t, "application/problem+json", rec.Header().Get("Content-Type"))
			assert.Contains(t, rec.Body.String(), `"code":"`+tt.wantCode+`"`)
		})
	}
}

func bearerFor(task token.Task) func(*testing.T, *brokertest.Issuer, *brokertest.Clock) string {
	return func(t *testing.T, is *brokertest.Issuer, _ *brokertest.Clock) string {
		return "Bearer " + mint(t, is, task).Token
	}
}
