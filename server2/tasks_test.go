package main

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/broker/token"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// signedIn returns a browser that completed the demo handoff.
func signedIn(t testing.TB, ta *testApp) *browser {
	t.Helper()
	b := ta.newBrowser()
	got := b.handoff(ta.issuer.Mint(t, demoRequest()))
	require.Equal(t, http.StatusSeeOther, got.StatusCode, got.Body)
	return b
}

func TestTaskPage(t *testing.T) {
	ta := newTestApp(t, nil)
	b := signedIn(t, ta)

	got := b.Get("/tasks/transfer-123")

	require.Equal(t, http.StatusOK, got.StatusCode, got.Body)
	assert.Contains(t, got.Body, `<section class="card" id="task-page" data-task-id="transfer-123">`)
	assert.Contains(t, got.Body, `<span id="subject">alice</span>`)
	assert.Contains(t, got.Body, `<h1 id="task-purpose">You are here to approve transfer 123</h1>`)
	assert.Contains(t, got.Body, `<p class="summary" id="task-summary">250.00 EUR to ACME Corp</p>`, "worded as SERVER1's task list words it")
	assert.NotContains(t, got.Body, `data-param="amount"`, "no raw parameter names")
	assert.NotContains(t, got.Body, "Signed in as")
	assert.Contains(t, got.Body, `<form id="complete-form" method="post" action="/tasks/transfer-123/complete">`)
	assert.Contains(t, got.Body, `<button id="complete" type="submit">Approve transfer</button>`)
	assert.Contains(t, got.Body, "<title>Approve transfer · Payments</title>")
	assert.Equal(t, "no-store", got.Header.Get("Cache-Control"))
	csrfField(t, got)
}

func TestTaskPage_RequiresSession(t *testing.T) {
	tests := []struct {
		name       string
		giveClient func(t *testing.T, ta *testApp) *browser
		givePath   string
		wantStatus int
		wantCode   string
	}{
		{
			name:       "ok/session_for_the_task",
			giveClient: func(t *testing.T, ta *testApp) *browser { return signedIn(t, ta) },
			givePath:   "/tasks/transfer-123",
			wantStatus: http.StatusOK,
		},
		{
			name:       "fail/no_cookie",
			giveClient: func(_ *testing.T, ta *testApp) *browser { return ta.newBrowser() },
			givePath:   "/tasks/transfer-123",
			wantStatus: http.StatusUnauthorized,
			wantCode:   CodeNoSession,
		},
		{
			name:       "fail/session_for_another_task",
			giveClient: func(t *testing.T, ta *testApp) *browser { return signedIn(t, ta) },
			givePath:   "/tasks/transfer-124",
			wantStatus: http.StatusUnauthorized,
			wantCode:   CodeNoSession,
		},
		{
			name: "fail/forged_cookie",
			giveClient: func(_ *testing.T, ta *testApp) *browser {
				b := ta.newBrowser()
				u, _ := url.Parse(ta.srv.URL)
				b.Client.Jar.SetCookies(u, []*http.Cookie{{Name: SessionCookie, Value: "guessed"}})
				return b
			},
			givePath:   "/tasks/transfer-123",
			wantStatus: http.StatusUnauthorized,
			wantCode:   CodeNoSession,
		},
		{
			name: "fail/session_expired",
			giveClient: func(t *testing.T, ta *testApp) *browser {
				b := signedIn(t, ta)
				ta.clock.Advance(16 * time.Minute)
				return b
			},
			givePath:   "/tasks/transfer-123",
			wantStatus: http.StatusUnauthorized,
			wantCode:   CodeNoSession,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ta := newTestApp(t, nil)
			b := tt.giveClient(t, ta)

			got := b.Get(tt.givePath)

			require.Equal(t, tt.wantStatus, got.StatusCode, got.Body)
			if tt.wantCode != "" {
				assert.Equal(t, tt.wantCode, pageReason(t, got))
			}
		})
	}
}

func TestCompleteTask(t *testing.T) {
	tests := []struct {
		name       string
		giveCSRF   func(pageToken string) string
		wantStatus int
		wantCode   string
	}{
		{name: "ok/with_csrf", giveCSRF: func(tok string) string { return tok }, wantStatus: http.StatusOK},
		{name: "fail/missing_csrf", giveCSRF: func(string) string { return "" }, wantStatus: http.StatusForbidden, wantCode: CodeCSRFInvalid},
		{name: "fail/wrong_csrf", giveCSRF: func(tok string) string { return tok + "x" }, wantStatus: http.StatusForbidden, wantCode: CodeCSRFInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ta := newTestApp(t, nil)
			b := signedIn(t, ta)
			page := b.Get("/tasks/transfer-123")
			form := url.Values{}
			if v := tt.giveCSRF(csrfField(t, page)); v != "" {
				form.Set("_csrf", v)
			}

			got := b.PostForm("/tasks/transfer-123/complete", form, nil)

			require.Equal(t, tt.wantStatus, got.StatusCode, got.Body)
			if tt.wantCode != "" {
				assert.Equal(t, tt.wantCode, pageReason(t, got))
				assert.NotContains(t, ta.logs.String(), `"msg":"task completed"`)
				return
			}
			assert.Contains(t, got.Body, `id="task-done"`)
			assert.Contains(t, ta.logs.String(), `"msg":"task completed"`)
		})
	}
}

func TestCompleteTask_Twice(t *testing.T) {
	ta := newTestApp(t, nil)
	b := signedIn(t, ta)
	form := url.Values{"_csrf": {csrfField(t, b.Get("/tasks/transfer-123"))}}

	first := b.PostForm("/tasks/transfer-123/complete", form, nil)
	second := b.PostForm("/tasks/transfer-123/complete", form, nil)

	require.Equal(t, http.StatusOK, first.StatusCode)
	require.Equal(t, http.StatusConflict, second.StatusCode)
	assert.Equal(t, CodeAlreadyCompleted, pageReason(t, second))
	page := b.Get("/tasks/transfer-123")
	assert.Contains(t, page.Body, `id="task-done"`)
}

func TestCompleteTask_RequiresSession(t *testing.T) {
	ta := newTestApp(t, nil)
	victim := signedIn(t, ta)
	csrf := csrfField(t, victim.Get("/tasks/transfer-123"))

	got := ta.newBrowser().PostForm("/tasks/transfer-123/complete", url.Values{"_csrf": {csrf}}, nil)

	require.Equal(t, http.StatusUnauthorized, got.StatusCode)
	assert.Equal(t, CodeNoSession, pageReason(t, got))
}

// TestHandoff_NewSessionReplacesOld: a second handoff for the same task
// opens a session under a fresh id, which replaces the task's cookie; a
// handoff for another task leaves it alone (TestTaskPage_ParallelHandoffs).
func TestHandoff_NewSessionReplacesOld(t *testing.T) {
	ta := newTestApp(t, nil)
	b := signedIn(t, ta)
	old := b.sessionCookie("transfer-123")
	require.NotEmpty(t, old)

	got := b.handoff(ta.issuer.Mint(t, demoRequest()))

	require.Equal(t, http.StatusSeeOther, got.StatusCode)
	assert.NotEqual(t, old, b.sessionCookie("transfer-123"), "a handoff always opens a fresh session id")
	assert.Equal(t, http.StatusOK, b.Get("/tasks/transfer-123").StatusCode)
}

// TestTaskPage_ParallelHandoffs: two handoffs for two tasks in one browser
// (two tabs) each keep their session: both task pages work and both tasks
// can be completed, whichever handoff came last.
func TestTaskPage_ParallelHandoffs(t *testing.T) {
	ta := newTestApp(t, nil)
	b := ta.newBrowser()
	other := demoRequest()
	other.Task = token.Task{ID: "transfer-124", Action: "approve"}
	for _, req := range []token.MintRequest{demoRequest(), other} {
		got := b.handoff(ta.issuer.Mint(t, req))
		require.Equal(t, http.StatusSeeOther, got.StatusCode, got.Body)
	}

	for _, id := range []string{"transfer-123", "transfer-124"} {
		page := b.Get("/tasks/" + id)
		require.Equal(t, http.StatusOK, page.StatusCode, "%s: %s", id, page.Body)
		assert.Contains(t, page.Body, `data-task-id="`+id+`"`)
		done := b.PostForm("/tasks/"+id+"/complete", url.Values{"_csrf": {csrfField(t, page)}}, nil)
		require.Equal(t, http.StatusOK, done.StatusCode, "%s: %s", id, done.Body)
		assert.Contains(t, done.Body, `id="task-done"`)
	}
}
