package main

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/broker/brokertest"
	"github.com/handoffbroker/handoff/broker/token"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMemoryCompletions(t *testing.T) {
	ctx := context.Background()
	clock := brokertest.NewClock(time.Now().Truncate(time.Second))
	m := newMemoryCompletions(clock.Now)
	m.max = 2
	until := clock.Now().Add(time.Minute)

	done, err := m.IsDone(ctx, "a")
	require.NoError(t, err)
	assert.False(t, done)
	first, err := m.MarkDone(ctx, "a", until)
	require.NoError(t, err)
	assert.True(t, first)
	first, err = m.MarkDone(ctx, "a", until)
	require.NoError(t, err)
	assert.False(t, first, "a second completion")
	done, err = m.IsDone(ctx, "a")
	require.NoError(t, err)
	assert.True(t, done)

	first, err = m.MarkDone(ctx, "b", until.Add(time.Hour))
	require.NoError(t, err)
	assert.True(t, first)
	_, err = m.MarkDone(ctx, "c", until)
	require.ErrorIs(t, err, errCompletionsFull, "full: refuse rather than forget a live completion")

	clock.Advance(time.Minute)
	done, err = m.IsDone(ctx, "a")
	require.NoError(t, err)
	assert.False(t, done, "forgotten after until")
	first, err = m.MarkDone(ctx, "c", until.Add(time.Hour))
	require.NoError(t, err)
	assert.True(t, first, "the expired entry made room")
	first, err = m.MarkDone(ctx, "b", until.Add(time.Hour))
	require.NoError(t, err)
	assert.False(t, first, "the live entry was kept")
}

func TestMemoryCompletions_RaceHasOneWinner(t *testing.T) {
	m := newMemoryCompletions(time.Now)
	var mu sync.Mutex
	wins := 0
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			first, err := m.MarkDone(context.Background(), "task", time.Now().Add(time.Hour))
			if err == nil && first {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	assert.Equal(t, 1, wins)
}

// completer completes transfer-123 once, through a session opened (and
// its task page shown) before any completion, or on the task API with a
// fresh token.
type completer func(t testing.TB) response

func (ta *testApp) bySession(t testing.TB) completer {
	t.Helper()
	b := signedIn(t, ta)
	page := b.Get("/tasks/transfer-123")
	require.Equal(t, http.StatusOK, page.StatusCode, page.Body)
	form := url.Values{"_csrf": {csrfField(t, page)}}
	return func(testing.TB) response { return b.PostForm("/tasks/transfer-123/complete", form, nil) }
}

func (ta *testApp) byAPI(t testing.TB) completer {
	t.Helper()
	token := ta.issuer.Mint(t, demoRequest())
	return func(testing.TB) response {
		return ta.newBrowser().callAPI("/api/v1/tasks/transfer-123/approve", "Bearer "+token, demoBody)
	}
}

func completeByAPI(t testing.TB, ta *testApp) response {
	t.Helper()
	return ta.byAPI(t)(t)
}

// TestCompleteTask_OncePerTask: completion is a fact about the task. A
// task completed through one handoff, or one token on the task API, cannot
// be completed again through another handoff or another token (409
// already_completed); the task page of any session for it shows it done.
func TestCompleteTask_OncePerTask(t *testing.T) {
	tests := []struct {
		name       string
		giveFirst  func(*testApp, testing.TB) completer
		giveSecond func(*testApp, testing.TB) completer
		wantPage   bool // the second answer is an HTML page, not problem+json
	}{
		{name: "fail/second_handoff", giveFirst: (*testApp).bySession, giveSecond: (*testApp).bySession, wantPage: true},
		{name: "fail/api_then_handoff", giveFirst: (*testApp).byAPI, giveSecond: (*testApp).bySession, wantPage: true},
		{name: "fail/handoff_then_api", giveFirst: (*testApp).bySession, giveSecond: (*testApp).byAPI},
		{name: "fail/api_twice_with_two_tokens", giveFirst: (*testApp).byAPI, giveSecond: (*testApp).byAPI},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ta := newTestApp(t, nil)
			first, second := tt.giveFirst(ta, t), tt.giveSecond(ta, t)
			watcher := signedIn(t, ta)

			gotFirst, gotSecond := first(t), second(t)

			require.Equal(t, http.StatusOK, gotFirst.StatusCode, gotFirst.Body)
			require.Equal(t, http.StatusConflict, gotSecond.StatusCode, gotSecond.Body)
			if tt.wantPage {
				assert.Equal(t, CodeAlreadyCompleted, pageReason(t, gotSecond))
			} else {
				assert.Equal(t, CodeAlreadyCompleted, problem(t, gotSecond).Code)
				assert.Empty(t, gotSecond.Header.Get("WWW-Authenticate"), "the token was valid")
			}
			page := watcher.Get("/tasks/transfer-123")
			require.Equal(t, http.StatusOK, page.StatusCode)
			assert.Contains(t, page.Body, `id="task-done"`, "the task page shows the task done")
			assert.NotContains(t, page.Body, `id="complete-form"`)
		})
	}
}

func TestCompleteTask_OtherTaskUnaffected(t *testing.T) {
	ta := newTestApp(t, nil)
	require.Equal(t, http.StatusOK, completeByAPI(t, ta).StatusCode)
	req := demoRequest()
	req.Task = token.Task{ID: "transfer-124", Action: "approve", Params: map[string]string{"amount": "80.00", "currency": "EUR", "payee": "Globex Ltd"}}

	got := ta.newBrowser().callAPI("/api/v1/tasks/transfer-124/approve", "Bearer "+ta.issuer.Mint(t, req),
		`{"amount":"80.00","currency":"EUR","payee":"Globex Ltd"}`)

	assert.Equal(t, http.StatusOK, got.StatusCode, got.Body)
}

func TestCompleteTask_ConcurrentSessions(t *testing.T) {
	const n = 20
	// One subject holds all n sessions, so none replaces another.
	ta := newTestApp(t, func(c *Config, _ *Options) { c.MaxSessionsPerSubject = n })
	forms := make([]url.Values, n)
	browsers := make([]*browser, n)
	for i := range browsers {
		browsers[i] = signedIn(t, ta)
		forms[i] = url.Values{"_csrf": {csrfField(t, browsers[i].Get("/tasks/transfer-123"))}}
	}
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i, b := range browsers {
		wg.Go(func() {
			resp, err := b.Client.PostForm(ta.srv.URL+"/tasks/transfer-123/complete", forms[i])
			if err != nil {
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		})
	}
	wg.Wait()
	counts := map[int]int{}
	for _, s := range statuses {
		counts[s]++
	}
	assert.Equal(t, map[int]int{http.StatusOK: 1, http.StatusConflict: n - 1}, counts)
}

// failingCompletions is a replay store whose completion records cannot be
// reached: a fault injector for a store that is down.
type failingCompletions struct{ *token.MemoryReplayStore }

var errCompletionsDown = errors.New("completion store down")

func (failingCompletions) MarkDone(context.Context, string, time.Time) (bool, error) {
	return false, errCompletionsDown
}
func (failingCompletions) IsDone(context.Context, string) (bool, error) {
	return false, errCompletionsDown
}

func TestCompleteTask_StoreDownFailsClosed(t *testing.T) {
	ta := newTestApp(t, func(_ *Config, o *Options) {
		s, err := token.NewMemoryReplayStore(token.MemoryReplayConfig{Now: o.Now})
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		o.ReplayStore = failingCompletions{s}
	})
	b := signedIn(t, ta)

	page := b.Get("/tasks/transfer-123")
	api := completeByAPI(t, ta)
	form := b.PostForm("/tasks/transfer-123/complete", url.Values{"_csrf": {"any"}}, nil)

	require.Equal(t, http.StatusServiceUnavailable, page.StatusCode, page.Body)
	assert.Equal(t, string(token.ReasonUnavailable), pageReason(t, page))
	require.Equal(t, http.StatusServiceUnavailable, api.StatusCode, api.Body)
	assert.Equal(t, string(token.ReasonUnavailable), problem(t, api).Code)
	assert.Equal(t, http.StatusForbidden, form.StatusCode, "the CSRF check comes first")
	assert.NotContains(t, ta.logs.String(), `"msg":"task completed"`)
}
