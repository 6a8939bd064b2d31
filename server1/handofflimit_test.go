package main

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHandoffsAreLimitedPerUser(t *testing.T) {
	cfg := testConfig(t)
	cfg.HandoffBurst, cfg.HandoffsPerMinute = 2, 1
	ts := newTestServer(t, cfg)
	alice := ts.browser(t)
	csrf := alice.signIn("alice", "alice-demo-pw")
	handoff := func(b *browser, csrf, task string) response {
		return b.PostForm("/handoffs", url.Values{csrfField: {csrf}, "audience": {payments}, "task_id": {task}}, nil)
	}
	for i := range 2 {
		require.Equal(t, http.StatusOK, handoff(alice, csrf, "transfer-123").StatusCode, "handoff %d is within the burst", i+1)
	}
	before := mintedTotal(t, ts.app)

	tests := []struct {
		name string
		send func() response
	}{
		{"fail/browser", func() response { return handoff(alice, csrf, "transfer-124") }},
		{"fail/api_session", func() response {
			return alice.PostJSON("/api/v1/handoffs", `{"audience":"`+payments+`","task_id":"transfer-123"}`, http.Header{"X-Csrf-Token": {csrf}})
		}},
		{"fail/api_key_for_the_same_user", func() response {
			return ts.browser(t).PostJSON("/api/v1/handoffs", `{"audience":"`+payments+`","task_id":"transfer-123","subject":"alice"}`,
				http.Header{apiKeyHeader: {testAPIKey}})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := tt.send()

			require.Equal(t, http.StatusTooManyRequests, res.StatusCode, res.Body)
			assert.Equal(t, "too_many_handoffs", errorCode(t, res))
			assert.Equal(t, "60", res.Header.Get("Retry-After"), "one handoff a minute once the burst is spent")
		})
	}
	assert.Equal(t, before, mintedTotal(t, ts.app), "a refused handoff signs nothing")

	bob := ts.browser(t)
	assert.Equal(t, http.StatusOK, handoff(bob, bob.signIn("bob", "bob-demo-pw"), "transfer-200").StatusCode, "other users are unaffected")
	assert.Len(t, ts.logs.JSONLines(t, "handoff refused: too many handoffs"), 3)
}

func TestHandoffLimiterRefills(t *testing.T) {
	l := newHandoffLimiter(30, 3)
	now := time.Unix(1_800_000_000, 0)
	for range 3 {
		require.Zero(t, l.take("alice", now))
	}
	assert.Equal(t, 2*time.Second, l.take("alice", now), "30 a minute: the next one in 2s")
	assert.Equal(t, 2*time.Second, l.take("alice", now), "a refusal spends nothing")
	assert.Zero(t, l.take("bob", now))
	assert.Zero(t, l.take("alice", now.Add(2*time.Second)))
	assert.Equal(t, 2*time.Second, l.take("alice", now.Add(2*time.Second)))
}

func TestMintedTokensBounds(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	fill := func(t *testing.T, m *mintedTokens, subject string, n int, exp time.Time) {
		t.Helper()
		for i := range n {
			h, err := m.reserve(subject)
			require.NoError(t, err, "%s token %d", subject, i+1)
			h.fill(subject+"-"+strconv.Itoa(i)+"-"+exp.Format(time.RFC3339), exp)
		}
	}
	tests := []struct {
		name string
		run  func(t *testing.T, m *mintedTokens)
	}{
		{
			name: "fail/user_at_bound_waits_for_the_oldest",
			run: func(t *testing.T, m *mintedTokens) {
				fill(t, m, "alice", 1, now.Add(30*time.Second))
				fill(t, m, "alice", 2, now.Add(time.Minute))
				_, err := m.reserve("alice")
				var tm *tooManyOutstanding
				require.True(t, errors.As(err, &tm), "got %v", err)
				assert.Equal(t, 30*time.Second, tm.RetryAfter)

				fill(t, m, "bob", 1, now.Add(time.Minute))
				_, ok := m.lookup("bob-0-" + now.Add(time.Minute).Format(time.RFC3339))
				assert.True(t, ok, "alice's flood leaves room for bob's record")
			},
		},
		{
			name: "ok/expired_records_make_room",
			run: func(t *testing.T, m *mintedTokens) {
				fill(t, m, "alice", 3, now.Add(time.Minute))
				now = now.Add(time.Minute)
				fill(t, m, "alice", 3, now.Add(time.Minute))
			},
		},
		{
			name: "fail/total_bound",
			run: func(t *testing.T, m *mintedTokens) {
				fill(t, m, "alice", 3, now.Add(time.Minute))
				fill(t, m, "bob", 3, now.Add(time.Minute))
				h, err := m.reserve("carol")
				require.NoError(t, err)
				_, err = m.reserve("dave")
				assert.ErrorIs(t, err, errMintedFull, "a hold counts")
				h.release()
				h.release()
				fill(t, m, "dave", 1, now.Add(time.Minute))
			},
		},
		{
			name: "ok/released_holds_leave_nothing",
			run: func(t *testing.T, m *mintedTokens) {
				h, err := m.reserve("alice")
				require.NoError(t, err)
				h.release()
				m.mu.Lock()
				defer m.mu.Unlock()
				assert.Empty(t, m.byUser)
				assert.Empty(t, m.byJTI)
				assert.Zero(t, m.held)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now = time.Unix(1_800_000_000, 0)
			tt.run(t, newMintedTokens(clock, 7, 3))
		})
	}
}

// TestOneUserCannotFillMintedRecords: a user who minted as many tokens as
// the record holds for one user is refused more, and another user can
// still cancel their own handoff (once the record was full, their tokens
// used to go unrecorded and cancelling answered 404 unknown_token).
func TestOneUserCannotFillMintedRecords(t *testing.T) {
	cfg := testConfig(t)
	cfg.HandoffBurst = 1000
	ts := newTestServer(t, cfg)
	ts.app.minted = newMintedTokens(time.Now, 5, 2)
	alice := ts.browser(t)
	aliceCSRF := alice.signIn("alice", "alice-demo-pw")
	for range 2 {
		alice.apiHandoff(aliceCSRF, "transfer-123")
	}
	res := alice.PostJSON("/api/v1/handoffs", `{"audience":"`+payments+`","task_id":"transfer-123"}`, http.Header{"X-Csrf-Token": {aliceCSRF}})
	require.Equal(t, http.StatusTooManyRequests, res.StatusCode, res.Body)
	assert.Equal(t, "too_many_handoffs", errorCode(t, res))
	retry, err := strconv.Atoi(res.Header.Get("Retry-After"))
	require.NoError(t, err)
	assert.True(t, retry >= 1 && retry <= 60, "Retry-After %d: until alice's oldest token expires", retry)

	bob := ts.browser(t)
	bobCSRF := bob.signIn("bob", "bob-demo-pw")
	_, jti := bob.apiHandoff(bobCSRF, "transfer-200")
	cancel := bob.PostJSON("/api/v1/handoffs/"+url.PathEscape(jti)+"/revoke", "", http.Header{"X-Csrf-Token": {bobCSRF}})
	assert.Equal(t, http.StatusOK, cancel.StatusCode, "bob cancels his own handoff: %s", cancel.Body)
}

func TestConfigValidateHandoffLimits(t *testing.T) {
	cfg := defaultConfig()
	cfg.HandoffsPerMinute, cfg.HandoffBurst = 0, 0

	err := cfg.validate()

	require.Error(t, err)
	assert.Contains(t, err.Error(), "handoffs-per-minute must be at least 1")
	assert.Contains(t, err.Error(), "handoff-burst must be at least 1")

	cfg = defaultConfig()
	cfg.HandoffsPerMinute = 20_000
	cfg.TokenTTL = 5 * time.Minute
	assert.ErrorContains(t, cfg.validate(), "allows 100010 live tokens per user, more than the 100000")
}

func TestLiveTokensPerUser(t *testing.T) {
	cfg := defaultConfig()
	assert.Equal(t, 40.0, cfg.liveTokensPerUser(), "10 at once, then 30 in the 60s a token lives")
	cfg.TokenTTL = 90 * time.Second
	assert.Equal(t, 55.0, cfg.liveTokensPerUser())
}
