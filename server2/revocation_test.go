package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/broker/fetch"
	"github.com/handoffbroker/handoff/broker/revocation"
	"github.com/handoffbroker/handoff/broker/token"
	"github.com/handoffbroker/handoff/shared"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// newRevocationApp is newTestApp with an issuer that publishes a
// revocation list, configured as SERVER2's revocation URL. It returns the
// issuer's revocation state.
func newRevocationApp(t testing.TB, edit func(*Config, *Options)) (*testApp, *revocation.State) {
	t.Helper()
	ta := newTestApp(t, func(c *Config, o *Options) {
		c.RevocationURL = c.TrustedIssuer + "/revocations"
		if edit != nil {
			edit(c, o)
		}
	})
	return ta, enableRevocations(ta.issuer)
}

// pollRevocations makes SERVER2 poll the revocation list now.
func (ta *testApp) pollRevocations() {
	ta.t.Helper()
	require.NotEmpty(ta.t, ta.app.rp.Status().RevocationURL, "revocation is off")
	require.NoError(ta.t, ta.app.rp.Refresh(context.Background()))
}

func bobRequest() token.MintRequest {
	return token.MintRequest{
		Subject: "bob", Audience: testAudience, Nonce: testNonce,
		Task: token.Task{ID: "transfer-200", Action: "approve", Params: map[string]string{"amount": "1200.00", "currency": "EUR", "payee": "Initech"}},
	}
}

func TestPostHandoff_Revocation(t *testing.T) {
	tests := []struct {
		name       string
		giveRevoke func(t testing.TB, s *revocation.State, m token.Minted, now time.Time)
		wantStatus int
		wantReason token.Reason
	}{
		{name: "ok/nothing_revoked", giveRevoke: func(testing.TB, *revocation.State, token.Minted, time.Time) {}, wantStatus: http.StatusSeeOther},
		{name: "ok/another_jti_revoked", giveRevoke: func(t testing.TB, s *revocation.State, m token.Minted, _ time.Time) {
			require.NoError(t, s.RevokeToken("another-jti", m.ExpiresAt))
		}, wantStatus: http.StatusSeeOther},
		{name: "ok/another_subject_signed_out", giveRevoke: func(t testing.TB, s *revocation.State, _ token.Minted, now time.Time) {
			require.NoError(t, s.RevokeSubject("bob", now, now.Add(time.Hour)))
		}, wantStatus: http.StatusSeeOther},
		{name: "fail/jti_revoked", giveRevoke: func(t testing.TB, s *revocation.State, m token.Minted, _ time.Time) {
			require.NoError(t, s.RevokeToken(m.ID, m.ExpiresAt))
		}, wantStatus: http.StatusUnauthorized, wantReason: token.ReasonRevoked},
		{name: "fail/subject_signed_out", giveRevoke: func(t testing.TB, s *revocation.State, _ token.Minted, now time.Time) {
			require.NoError(t, s.RevokeSubject("alice", now, now.Add(time.Hour)))
		}, wantStatus: http.StatusUnauthorized, wantReason: token.ReasonRevoked},
		{name: "fail/key_revoked", giveRevoke: func(t testing.TB, s *revocation.State, m token.Minted, now time.Time) {
			require.NoError(t, s.RevokeKey(m.KeyID, now.Add(24*time.Hour)))
		}, wantStatus: http.StatusUnauthorized, wantReason: token.ReasonRevoked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ta, state := newRevocationApp(t, nil)
			m := ta.issuer.MintFull(t, demoRequest())
			ta.clock.Advance(time.Second) // the revocation comes after the mint
			tt.giveRevoke(t, state, m, ta.clock.Now())
			ta.pollRevocations()

			got := ta.newBrowser().handoff(m.Token)

			require.Equal(t, tt.wantStatus, got.StatusCode, got.Body)
			if tt.wantReason != "" {
				assert.Equal(t, string(tt.wantReason), pageReason(t, got))
			}
		})
	}
}

func TestSession_EndsWhenSubjectSignedOutEverywhere(t *testing.T) {
	ta, state := newRevocationApp(t, nil)
	ta.pollRevocations()
	alice, bob := ta.newBrowser(), ta.newBrowser()
	require.Equal(t, http.StatusSeeOther, alice.handoff(ta.issuer.Mint(t, demoRequest())).StatusCode)
	require.Equal(t, http.StatusSeeOther, bob.handoff(ta.issuer.Mint(t, bobRequest())).StatusCode)
	require.Equal(t, http.StatusOK, alice.Get("/tasks/transfer-123").StatusCode)

	ta.clock.Advance(time.Second)
	now := ta.clock.Now()
	require.NoError(t, state.RevokeSubject("alice", now, now.Add(time.Hour)))
	before := alice.Get("/tasks/transfer-123")
	ta.pollRevocations()

	assert.Equal(t, http.StatusOK, before.StatusCode, "the session lasts until SERVER2 learns of the sign-out")
	ended := alice.Get("/tasks/transfer-123")
	require.Equal(t, http.StatusUnauthorized, ended.StatusCode)
	assert.Equal(t, CodeSessionRevoked, pageReason(t, ended))
	again := alice.Get("/tasks/transfer-123")
	assert.Equal(t, CodeNoSession, pageReason(t, again), "the session is gone")
	assert.Equal(t, http.StatusOK, bob.Get("/tasks/transfer-200").StatusCode, "bob is unaffected")
	complete := alice.PostForm("/tasks/transfer-123/complete", nil, nil)
	assert.Equal(t, http.StatusUnauthorized, complete.StatusCode)

	ta.clock.Advance(time.Second)
	fresh := ta.newBrowser()
	require.Equal(t, http.StatusSeeOther, fresh.handoff(ta.issuer.Mint(t, demoRequest())).StatusCode,
		"a token issued after the sign-out works")
	assert.Equal(t, http.StatusOK, fresh.Get("/tasks/transfer-123").StatusCode)
}

// TestSignOutEverywhere_sameSecondAsToken: a sign-out refuses the tokens
// issued up to its instant, and ends the sessions they opened, even when
// token and sign-out share one whole second with the clock exactly on it
// (iat has one-second resolution).
func TestSignOutEverywhere_sameSecondAsToken(t *testing.T) {
	ta, state := newRevocationApp(t, nil)
	ta.pollRevocations()
	now := ta.clock.Now()
	require.True(t, now.Equal(now.Truncate(time.Second)), "the clock sits on a whole second")
	opener := ta.issuer.MintFull(t, demoRequest())
	carried := ta.issuer.MintFull(t, demoRequest())
	require.True(t, opener.IssuedAt.Equal(now) && carried.IssuedAt.Equal(now))
	alice := ta.newBrowser()
	require.Equal(t, http.StatusSeeOther, alice.handoff(opener.Token).StatusCode)
	require.Equal(t, http.StatusOK, alice.Get("/tasks/transfer-123").StatusCode)

	require.NoError(t, state.RevokeSubject("alice", now, now.Add(time.Hour)))
	ta.pollRevocations()

	ended := alice.Get("/tasks/transfer-123")
	require.Equal(t, http.StatusUnauthorized, ended.StatusCode)
	assert.Equal(t, CodeSessionRevoked, pageReason(t, ended))
	refused := ta.newBrowser().handoff(carried.Token)
	require.Equal(t, http.StatusUnauthorized, refused.StatusCode, refused.Body)
	assert.Equal(t, string(token.ReasonRevoked), pageReason(t, refused))
}

// TestSession_EndsWhenRevoked: a session ends (401 session_revoked, then
// no_session) once SERVER2 holds a list naming its token's jti, its
// signing key or its subject; other entries leave it alone.
func TestSession_EndsWhenRevoked(t *testing.T) {
	tests := []struct {
		name       string
		giveRevoke func(s *revocation.State, m token.Minted, now time.Time) error
		wantReason string
	}{
		{name: "ok/another_jti_revoked", giveRevoke: func(s *revocation.State, m token.Minted, _ time.Time) error {
			return s.RevokeToken("another-jti", m.ExpiresAt)
		}},
		{name: "ok/another_key_revoked", giveRevoke: func(s *revocation.State, _ token.Minted, now time.Time) error {
			return s.RevokeKey("another-kid", now.Add(time.Hour))
		}},
		{name: "fail/jti_revoked", giveRevoke: func(s *revocation.State, m token.Minted, _ time.Time) error {
			return s.RevokeToken(m.ID, m.ExpiresAt)
		}, wantReason: CodeSessionRevoked},
		{name: "fail/key_revoked", giveRevoke: func(s *revocation.State, m token.Minted, now time.Time) error {
			return s.RevokeKey(m.KeyID, now.Add(time.Hour))
		}, wantReason: CodeSessionRevoked},
		{name: "fail/subject_signed_out", giveRevoke: func(s *revocation.State, _ token.Minted, now time.Time) error {
			return s.RevokeSubject("alice", now, now.Add(time.Hour))
		}, wantReason: CodeSessionRevoked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ta, state := newRevocationApp(t, nil)
			ta.pollRevocations()
			m := ta.issuer.MintFull(t, demoRequest())
			alice := ta.newBrowser()
			require.Equal(t, http.StatusSeeOther, alice.handoff(m.Token).StatusCode)
			require.Equal(t, http.StatusOK, alice.Get("/tasks/transfer-123").StatusCode)

			ta.clock.Advance(time.Second)
			require.NoError(t, tt.giveRevoke(state, m, ta.clock.Now()))
			before := alice.Get("/tasks/transfer-123")
			ta.pollRevocations()
			got := alice.Get("/tasks/transfer-123")

			assert.Equal(t, http.StatusOK, before.StatusCode, "the session lasts until SERVER2 holds the new list")
			if tt.wantReason == "" {
				assert.Equal(t, http.StatusOK, got.StatusCode, got.Body)
				return
			}
			require.Equal(t, http.StatusUnauthorized, got.StatusCode, got.Body)
			assert.Equal(t, tt.wantReason, pageReason(t, got))
			assert.Equal(t, CodeNoSession, pageReason(t, alice.Get("/tasks/transfer-123")), "the session is gone")
			complete := alice.PostForm("/tasks/transfer-123/complete", url.Values{"_csrf": {"x"}}, nil)
			assert.Equal(t, http.StatusUnauthorized, complete.StatusCode)
		})
	}
}

// TestSession_StaysEndedAfterEntryExpires: a jti entry leaves the list
// MaxLeeway after the token's expiry, long before a session opened from the
// token ends (session-ttl). A session the list named once stays ended.
func TestSession_StaysEndedAfterEntryExpires(t *testing.T) {
	ta, state := newRevocationApp(t, nil)
	ta.pollRevocations()
	m := ta.issuer.MintFull(t, demoRequest())
	alice, bob := ta.newBrowser(), ta.newBrowser()
	require.Equal(t, http.StatusSeeOther, alice.handoff(m.Token).StatusCode)
	require.Equal(t, http.StatusSeeOther, bob.handoff(ta.issuer.Mint(t, bobRequest())).StatusCode)

	require.NoError(t, state.RevokeToken(m.ID, m.ExpiresAt))
	ta.pollRevocations()
	ta.clock.Advance(m.ExpiresAt.Add(token.MaxLeeway + 2*time.Second).Sub(ta.clock.Now()))
	ta.pollRevocations()
	require.Zero(t, ta.app.rp.Status().Revocation.Entries, "the jti entry has left the list")
	require.True(t, ta.clock.Now().Before(m.ExpiresAt.Add(ta.app.cfg.SessionTTL)), "the session has not expired")

	got := alice.Get("/tasks/transfer-123")
	require.Equal(t, http.StatusUnauthorized, got.StatusCode, got.Body)
	assert.Equal(t, CodeSessionRevoked, pageReason(t, got))
	assert.Equal(t, http.StatusOK, bob.Get("/tasks/transfer-200").StatusCode, "bob is unaffected")
}

func TestRevocation_FailsClosedWhenStale(t *testing.T) {
	tests := []struct {
		name         string
		giveFailOpen bool
		givePoll     bool
		giveAge      time.Duration // clock advance after the poll
		wantStatus   int
		wantReady    int
	}{
		{name: "ok/fresh", givePoll: true, giveAge: 59 * time.Second, wantStatus: http.StatusSeeOther, wantReady: http.StatusOK},
		{name: "fail/stale", givePoll: true, giveAge: 61 * time.Second, wantStatus: http.StatusServiceUnavailable, wantReady: http.StatusServiceUnavailable},
		{name: "fail/never_fetched", wantStatus: http.StatusServiceUnavailable, wantReady: http.StatusServiceUnavailable},
		{name: "ok/stale_fail_open", giveFailOpen: true, givePoll: true, giveAge: 61 * time.Second, wantStatus: http.StatusSeeOther, wantReady: http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ta, _ := newRevocationApp(t, func(c *Config, _ *Options) { c.RevocationFailOpen = tt.giveFailOpen })
			if tt.givePoll {
				ta.pollRevocations()
			}
			ta.clock.Advance(tt.giveAge)

			got := ta.newBrowser().handoff(ta.issuer.Mint(t, demoRequest()))
			ready := ta.newBrowser().Get("/readyz")

			require.Equal(t, tt.wantStatus, got.StatusCode, got.Body)
			if tt.wantStatus == http.StatusServiceUnavailable {
				assert.Equal(t, string(token.ReasonUnavailable), pageReason(t, got))
			}
			assert.Equal(t, tt.wantReady, ready.StatusCode, ready.Body)
			if tt.wantReady != http.StatusOK {
				assert.Contains(t, ready.Body, `"revocations":"fail"`)
			}
		})
	}
}

func TestRevocation_Discovered(t *testing.T) {
	tests := []struct {
		name          string
		givePublish   bool
		giveRevocURL  string
		wantReady     bool
		wantReadyBody string
	}{
		{name: "ok/advertised", givePublish: true, wantReady: true, wantReadyBody: `"revocations":"ok"`},
		{name: "ok/off_explicitly", giveRevocURL: RevocationOff, wantReady: true, wantReadyBody: `"revocations":"off"`},
		{name: "fail/none_advertised_is_not_off", wantReadyBody: `"revocations":"fail"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ta := newTestApp(t, func(c *Config, _ *Options) {
				c.JWKSURL = ""
				c.RevocationURL = tt.giveRevocURL
				c.RevocationInterval = 10 * time.Millisecond
			})
			var state *revocation.State
			if tt.givePublish {
				state = enableRevocations(ta.issuer)
			}
			ta.app.Start(t.Context())

			if !tt.wantReady {
				require.Eventually(t, func() bool {
					return strings.Contains(ta.logs.String(), "no revocation_endpoint")
				}, 5*time.Second, 5*time.Millisecond, "discovery never refused the issuer's configuration")
				ready := ta.newBrowser().Get("/readyz")
				assert.Equal(t, http.StatusServiceUnavailable, ready.StatusCode)
				assert.Contains(t, ready.Body, tt.wantReadyBody)
				got := ta.newBrowser().handoff(ta.issuer.Mint(t, demoRequest()))
				assert.Equal(t, http.StatusServiceUnavailable, got.StatusCode, "revocation is never off unless configured so")
				assert.Equal(t, string(token.ReasonUnavailable), pageReason(t, got))
				return
			}
			waitReady(t, ta)
			assert.Contains(t, ta.newBrowser().Get("/readyz").Body, tt.wantReadyBody)
			if state == nil {
				assert.Equal(t, http.StatusSeeOther, ta.newBrowser().handoff(ta.issuer.Mint(t, demoRequest())).StatusCode)
				return
			}
			m := ta.issuer.MintFull(t, demoRequest())
			require.NoError(t, state.RevokeToken(m.ID, m.ExpiresAt))
			require.Eventually(t, func() bool { return ta.app.rp.Status().Revocation.Entries == 1 }, 5*time.Second, 5*time.Millisecond)
			got := ta.newBrowser().handoff(m.Token)
			require.Equal(t, http.StatusUnauthorized, got.StatusCode)
			assert.Equal(t, string(token.ReasonRevoked), pageReason(t, got))
		})
	}
}

func TestRevocation_Metrics(t *testing.T) {
	ta, state := newRevocationApp(t, nil)
	ta.pollRevocations()
	ta.pollRevocations()
	require.NoError(t, state.RevokeToken("jti-1", ta.clock.Now().Add(time.Minute)))
	ta.pollRevocations()
	ta.clock.Advance(3 * time.Second)

	fetches := func(result string) float64 {
		return testutil.ToFloat64(ta.app.metrics.RevocationFetches.WithLabelValues(result))
	}
	assert.Equal(t, 2.0, fetches(fetch.ResultOK))
	assert.Equal(t, 1.0, fetches(fetch.ResultNotModified), "the unchanged list costs a 304")
	res := ta.newBrowser().Get("/metrics")
	require.Equal(t, http.StatusOK, res.StatusCode)
	assert.Contains(t, res.Body, "handoff_revocation_list_entries 1\n")
	assert.Contains(t, res.Body, "handoff_revocation_list_age_seconds 3\n")
}

// TestRevocationList_IsNotAHandoffToken: the issuer's signed list, posted
// as a handoff token, is refused for its type (RFC 8725 §3.12).
func TestRevocationList_IsNotAHandoffToken(t *testing.T) {
	ta, _ := newRevocationApp(t, nil)
	ta.pollRevocations()
	res, err := http.Get(ta.issuer.URL + "/revocations")
	require.NoError(t, err)
	list, err := io.ReadAll(res.Body)
	res.Body.Close()
	require.NoError(t, err)

	got := ta.newBrowser().handoff(string(list))
	api := ta.newBrowser().callAPI("/api/v1/tasks/transfer-123/approve", "Bearer "+string(list), `{"amount":"250.00","currency":"EUR","payee":"ACME Corp"}`)

	require.Equal(t, http.StatusBadRequest, got.StatusCode)
	assert.Equal(t, string(token.ReasonBadType), pageReason(t, got))
	assert.Equal(t, string(token.ReasonBadType), problem(t, api).Code)
}

// TestRevocation_SharedThroughRedis: two replicas on one Redis store; the
// one that polled records the revoked jti there, and the other refuses the
// token before its own next poll.
func TestRevocation_SharedThroughRedis(t *testing.T) {
	redisURL := testRedisURL(t)
	ta, state := newRevocationApp(t, func(c *Config, _ *Options) { c.ReplayStore = redisURL })
	cfg := ta.app.cfg
	other, err := NewApp(cfg, Options{Logger: shared.NewLogger(ta.logs, "server2-b", 0, shared.LogJSON), Now: ta.clock.Now})
	require.NoError(t, err)
	t.Cleanup(func() { _ = other.Close() })
	require.NoError(t, other.rp.Refresh(context.Background()))
	m := ta.issuer.MintFull(t, demoRequest())
	require.NoError(t, state.RevokeToken(m.ID, m.ExpiresAt))
	ta.pollRevocations()

	otherSrv := httptest.NewServer(other.Handler())
	t.Cleanup(otherSrv.Close)
	req, err := http.NewRequest(http.MethodPost, otherSrv.URL+"/handoff", strings.NewReader(url.Values{"token": {m.Token}}.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(bindingCookie(testBindingSecret))
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()

	assert.Equal(t, 0, other.rp.Status().Revocation.Entries, "the other replica has not polled since")
	require.Equal(t, http.StatusUnauthorized, res.StatusCode)
	assert.Equal(t, string(token.ReasonRevoked), pageReason(t, response{Response: res, Body: string(body)}))
}

// TestRevocation_ListSignedByNewKey: after a key revocation the issuer
// signs its list with a replacement key SERVER2 has never seen. The list
// is accepted at the next poll even inside the unknown-kid cool-down that
// the first JWKS fetch started.
func TestRevocation_ListSignedByNewKey(t *testing.T) {
	ta, state := newRevocationApp(t, nil)
	ta.pollRevocations() // fetches the JWKS for the list's unknown kid: the cool-down starts
	old := ta.issuer.MintFull(t, demoRequest())
	replacement, err := ta.issuer.Keyring().RevokeAndReplace(old.KeyID, token.EdDSA)
	require.NoError(t, err)
	require.NotNil(t, replacement)
	require.NoError(t, state.RevokeKey(old.KeyID, ta.clock.Now().Add(24*time.Hour)))

	ta.pollRevocations()

	assert.Equal(t, 1, ta.app.rp.Status().Revocation.Entries)
	got := ta.newBrowser().handoff(old.Token)
	require.Equal(t, http.StatusUnauthorized, got.StatusCode)
	assert.Contains(t, []string{string(token.ReasonRevoked), string(token.ReasonUnknownKey)}, pageReason(t, got))
	fresh := ta.newBrowser().handoff(ta.issuer.Mint(t, demoRequest()))
	assert.Equal(t, http.StatusSeeOther, fresh.StatusCode, "the replacement key is known already")
}
