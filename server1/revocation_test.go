package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/broker/keys"
	"github.com/handoffbroker/handoff/broker/token"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// revocationList fetches /revocations and verifies it as a relying
// service would.
func revocationList(t testing.TB, ts *testServer) *token.RevocationList {
	t.Helper()
	res := ts.browser(t).Get("/revocations")
	require.Equal(t, http.StatusOK, res.StatusCode, res.Body)
	v, err := token.NewRevocationListVerifier(token.RevocationListVerifierConfig{Issuers: []token.TrustedIssuer{{Issuer: testIssuer, Keys: ts.app.keys}}})
	require.NoError(t, err)
	l, err := v.Verify(context.Background(), res.Body)
	require.NoError(t, err)
	return l
}

// apiHandoff mints a token for taskID through the session API and returns
// the token and its jti.
func (b *browser) apiHandoff(csrf, taskID string) (token, jti string) {
	b.T.Helper()
	res := b.PostJSON("/api/v1/handoffs", `{"audience":"`+payments+`","task_id":"`+taskID+`"}`,
		http.Header{"X-Csrf-Token": {csrf}})
	require.Equal(b.T, http.StatusCreated, res.StatusCode, res.Body)
	var got apiHandoffResponse
	require.NoError(b.T, json.Unmarshal([]byte(res.Body), &got))
	return got.Token, got.ID
}

// revocationVerifier checks tokens as SERVER2 would, with the issuer's
// revocation state as its revocation source.
func revocationVerifier(t testing.TB, ts *testServer) *token.Verifier {
	t.Helper()
	v, err := token.NewVerifier(token.VerifierConfig{
		Issuers: []token.TrustedIssuer{{Issuer: testIssuer, Keys: ts.app.keys}}, Audience: payments,
		Replay: durableReplay{mustMemoryReplay(t)}, Revocation: ts.app.revocations,
	})
	require.NoError(t, err)
	return v
}

func mustMemoryReplay(t testing.TB) token.ReplayStore {
	t.Helper()
	s, err := token.NewMemoryReplayStore(token.MemoryReplayConfig{})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

func TestRevocationsEndpoint(t *testing.T) {
	ts := newTestServer(t, testConfig(t))
	b := ts.browser(t)

	first := b.Get("/revocations")
	require.Equal(t, http.StatusOK, first.StatusCode)
	etag := first.Header.Get("ETag")
	assert.Equal(t, token.RevocationListMediaType, first.Header.Get("Content-Type"))
	assert.Equal(t, "no-cache", first.Header.Get("Cache-Control"))
	assert.Regexp(t, `^"[A-Za-z0-9_-]+"$`, etag, "a strong ETag")
	assert.Empty(t, revocationList(t, ts).Tokens)

	req, err := http.NewRequest(http.MethodGet, ts.srv.URL+"/revocations", nil)
	require.NoError(t, err)
	req.Header.Set("If-None-Match", etag)
	unchanged := b.Do(req)
	assert.Equal(t, http.StatusNotModified, unchanged.StatusCode)
	assert.Empty(t, unchanged.Body)

	require.NoError(t, ts.app.revocations.RevokeToken("jti-1", time.Now().Add(time.Minute)))
	changed := b.Do(req)
	require.Equal(t, http.StatusOK, changed.StatusCode)
	assert.NotEqual(t, etag, changed.Header.Get("ETag"))
	l := revocationList(t, ts)
	require.Len(t, l.Tokens, 1)
	assert.Equal(t, "jti-1", l.Tokens[0].ID)
}

func TestLogoutEverywhere(t *testing.T) {
	tests := []struct {
		name        string
		giveCSRF    bool
		wantStatus  int
		wantCode    string
		wantRevoked bool
	}{
		{name: "ok/with_csrf", giveCSRF: true, wantStatus: http.StatusSeeOther, wantRevoked: true},
		{name: "fail/no_csrf", wantStatus: http.StatusForbidden, wantCode: "csrf_invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, testConfig(t))
			phone, laptop, bob := ts.browser(t), ts.browser(t), ts.browser(t)
			csrf := laptop.signIn("alice", "alice-demo-pw")
			phone.signIn("alice", "alice-demo-pw")
			bobCSRF := bob.signIn("bob", "bob-demo-pw")
			aliceToken, _ := laptop.apiHandoff(csrf, "transfer-123")
			bobToken, _ := bob.apiHandoff(bobCSRF, "transfer-200")
			form := url.Values{}
			if tt.giveCSRF {
				form.Set(csrfField, csrf)
			}

			res := laptop.PostForm("/logout-everywhere", form, nil)

			require.Equal(t, tt.wantStatus, res.StatusCode, res.Body)
			v := revocationVerifier(t, ts)
			_, aliceErr := v.Verify(context.Background(), aliceToken, expectTransfer("transfer-123", demoParams))
			_, bobErr := v.Verify(context.Background(), bobToken, expectTransfer("transfer-200",
				map[string]string{"amount": "1200.00", "currency": "EUR", "payee": "Initech"}))
			assert.NoError(t, bobErr, "bob is unaffected")
			assert.Equal(t, http.StatusOK, bob.Get("/").StatusCode, "bob is still signed in")
			if !tt.wantRevoked {
				assert.Equal(t, tt.wantCode, errorCode(t, res))
				assert.NoError(t, aliceErr)
				assert.Empty(t, revocationList(t, ts).Subjects)
				assert.Equal(t, http.StatusOK, phone.Get("/").StatusCode)
				return
			}
			assert.Equal(t, "/login", res.Header.Get("Location"))
			assert.Equal(t, token.ReasonRevoked, token.ReasonOf(aliceErr))
			for _, b := range []*browser{laptop, phone} {
				assert.Equal(t, http.StatusSeeOther, b.Get("/").StatusCode, "every alice session ended")
			}
			subjects := revocationList(t, ts).Subjects
			require.Len(t, subjects, 1)
			assert.Equal(t, "alice", subjects[0].Subject)
			assert.GreaterOrEqual(t, subjects[0].ExpiresAt.Sub(subjects[0].NotBefore), time.Hour,
				"kept past SERVER2's sessions made from earlier tokens")
			require.Len(t, ts.logs.JSONLines(t, "signed out everywhere"), 1)
		})
	}
}

func TestAPIRevoke(t *testing.T) {
	tests := []struct {
		name       string
		giveAuth   string // "session", "session_no_csrf", "api_key", "bad_api_key", "none"
		giveOwner  string // who the token is minted for
		giveJTI    string // overrides the minted token's jti
		wantStatus int
		wantCode   string
	}{
		{name: "ok/own_token_by_session", giveAuth: "session", giveOwner: "alice", wantStatus: http.StatusOK},
		{name: "ok/any_token_by_api_key", giveAuth: "api_key", giveOwner: "bob", wantStatus: http.StatusOK},
		{name: "ok/unknown_jti_by_api_key", giveAuth: "api_key", giveOwner: "alice", giveJTI: "minted-elsewhere", wantStatus: http.StatusOK},
		{name: "fail/other_users_token", giveAuth: "session", giveOwner: "bob", wantStatus: http.StatusNotFound, wantCode: "unknown_token"},
		{name: "fail/unknown_jti_by_session", giveAuth: "session", giveOwner: "alice", giveJTI: "minted-elsewhere", wantStatus: http.StatusNotFound, wantCode: "unknown_token"},
		{name: "fail/no_csrf", giveAuth: "session_no_csrf", giveOwner: "alice", wantStatus: http.StatusForbidden, wantCode: "csrf_invalid"},
		{name: "fail/bad_api_key", giveAuth: "bad_api_key", giveOwner: "alice", wantStatus: http.StatusUnauthorized, wantCode: "invalid_api_key"},
		{name: "fail/unauthenticated", giveAuth: "none", giveOwner: "alice", wantStatus: http.StatusUnauthorized, wantCode: "unauthenticated"},
		{name: "fail/jti_too_long", giveAuth: "api_key", giveOwner: "alice", giveJTI: strings.Repeat("x", 129), wantStatus: http.StatusBadRequest, wantCode: "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, testConfig(t))
			owner := ts.browser(t)
			ownerCSRF := owner.signIn(tt.giveOwner, tt.giveOwner+"-demo-pw")
			task := map[string]string{"alice": "transfer-123", "bob": "transfer-200"}[tt.giveOwner]
			_, jti := owner.apiHandoff(ownerCSRF, task)
			if tt.giveJTI != "" {
				jti = tt.giveJTI
			}
			caller := ts.browser(t)
			header := http.Header{}
			switch tt.giveAuth {
			case "session":
				header.Set("X-CSRF-Token", caller.signIn("alice", "alice-demo-pw"))
			case "session_no_csrf":
				caller.signIn("alice", "alice-demo-pw")
			case "api_key":
				header.Set(apiKeyHeader, testAPIKey)
			case "bad_api_key":
				header.Set(apiKeyHeader, "wrong-key-0123456789")
			}

			res := caller.PostJSON("/api/v1/handoffs/"+url.PathEscape(jti)+"/revoke", "", header)

			require.Equal(t, tt.wantStatus, res.StatusCode, res.Body)
			revoked := slices.ContainsFunc(revocationList(t, ts).Tokens, func(e token.RevokedToken) bool { return e.ID == jti })
			if tt.wantCode != "" {
				assert.Equal(t, tt.wantCode, errorCode(t, res))
				assert.False(t, revoked)
				return
			}
			var got apiRevokeResponse
			require.NoError(t, json.Unmarshal([]byte(res.Body), &got))
			assert.Equal(t, apiRevokeResponse{ID: jti, Status: "revoked"}, got)
			assert.True(t, revoked)
		})
	}
}

func TestRevokedTokenIsRefused(t *testing.T) {
	ts := newTestServer(t, testConfig(t))
	b := ts.browser(t)
	csrf := b.signIn("alice", "alice-demo-pw")
	revokedToken, jti := b.apiHandoff(csrf, "transfer-123")
	otherToken, _ := b.apiHandoff(csrf, "transfer-123")

	res := b.PostJSON("/api/v1/handoffs/"+jti+"/revoke", "", http.Header{"X-Csrf-Token": {csrf}})

	require.Equal(t, http.StatusOK, res.StatusCode, res.Body)
	v := revocationVerifier(t, ts)
	_, err := v.Verify(context.Background(), revokedToken, expectTransfer("transfer-123", demoParams))
	assert.Equal(t, token.ReasonRevoked, token.ReasonOf(err))
	_, err = v.Verify(context.Background(), otherToken, expectTransfer("transfer-123", demoParams))
	assert.NoError(t, err, "only that token")
}

func TestRevokeTokenCommand(t *testing.T) {
	cfg := testConfig(t)
	ts := newTestServer(t, cfg)
	tests := []struct {
		name     string
		giveArgs []string
		wantCode int
		wantJTI  string
	}{
		{name: "ok/default_expiry", giveArgs: []string{"--jti", "cli-1"}, wantJTI: "cli-1"},
		{name: "ok/expiry", giveArgs: []string{"--jti", "cli-2", "--exp", time.Now().Add(time.Minute).UTC().Format(time.RFC3339)}, wantJTI: "cli-2"},
		{name: "ok/jti_starting_with_dash", giveArgs: []string{"--jti", "-cli-4"}, wantJTI: "-cli-4"},
		{name: "ok/jti_inline_starting_with_dash", giveArgs: []string{"--jti=--cli-5"}, wantJTI: "--cli-5"},
		{name: "fail/no_jti", wantCode: 2},
		{name: "fail/bad_expiry", giveArgs: []string{"--jti", "cli-3", "--exp", "tomorrow"}, wantCode: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"revoke-token", "--revocation-dir", cfg.RevocationDir}, tt.giveArgs...)

			code, stdout, stderr := runCLI(t, args...)

			require.Equal(t, tt.wantCode, code, stderr)
			if tt.wantCode != 0 {
				return
			}
			assert.Contains(t, stdout, tt.wantJTI)
			assert.True(t, slices.ContainsFunc(revocationList(t, ts).Tokens, func(e token.RevokedToken) bool { return e.ID == tt.wantJTI }),
				"the running server lists it at once")
		})
	}
}

// keyStates returns kid -> state as `keys list` prints them.
func keyStates(t testing.TB, dir string) map[string]string {
	t.Helper()
	code, stdout, stderr := runCLI(t, "keys", "list", "--keys-dir", dir)
	require.Equal(t, 0, code, stderr)
	rows := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n")[1:] {
		f := strings.Fields(line)
		rows[f[0]] = f[2]
	}
	return rows
}

func TestKeysRotateCommand(t *testing.T) {
	cfg := testConfig(t)
	ts := newTestServer(t, cfg)
	old := ts.app.currentKeyID()
	rotate := func(args ...string) (int, string, string) {
		return runCLI(t, append([]string{"keys", "rotate", "--keys-dir", cfg.KeysDir}, args...)...)
	}

	code, _, stderr := rotate("--jwks-max-age", "5m", "--publish-for", "1m")
	require.Equal(t, 2, code, "published for less than the JWKS max-age: %s", stderr)

	code, stdout, stderr := rotate("--jwks-max-age", "1s", "--publish-for", "1s")
	require.Equal(t, 0, code, stderr)
	states := keyStates(t, cfg.KeysDir)
	require.Len(t, states, 2)
	var next string
	for kid, st := range states {
		if kid != old {
			next = kid
			assert.Equal(t, "next", st)
		}
	}
	assert.Contains(t, stdout, next)
	require.NoError(t, ts.app.reloadKeys())
	assert.ElementsMatch(t, []string{old, next}, publishedKids(t, ts), "the next key is published at once")

	code, _, stderr = rotate("--jwks-max-age", "1s", "--publish-for", "1s")
	assert.Equal(t, 1, code, "one rotation at a time: %s", stderr)

	require.Eventually(t, func() bool {
		require.NoError(t, ts.app.reloadKeys())
		return ts.app.currentKeyID() == next
	}, 5*time.Second, 20*time.Millisecond, "the next key signs once its publication time is over")
	assert.Equal(t, map[string]string{old: "retired", next: "current"}, keyStates(t, cfg.KeysDir))
	assert.ElementsMatch(t, []string{old, next}, publishedKids(t, ts), "the retired key stays published")
}

// Fixed Ed25519 keys: the 32 bytes of each seed are all this byte. About
// 1 in 64 kids starts with '-', and the command must take any of them.
const (
	plainKidSeed      = 0  // 9ZP03Nu8GrXPAUkbKNxHOKBzxPX83SShgFkRNK-f2lw
	dashKidSeed       = 12 // -Y4E9TMm6RHXdEMV2FRRKJiFNF_gobJnrL4wNhDQHX8
	doubleDashKidSeed = 7  // --6IM5l0OosLj9yWskISYhUA3n_3CURQkmrYMSha_ck
)

// generateFixedKey writes the fixed Ed25519 key of seed to dir, current
// from now, and returns its kid.
func generateFixedKey(t testing.TB, dir string, seed byte) string {
	t.Helper()
	ring, err := keys.Open(keys.KeyringConfig{Dir: dir, Rand: bytes.NewReader(bytes.Repeat([]byte{seed}, ed25519.SeedSize))})
	require.NoError(t, err)
	info, err := ring.Generate(token.EdDSA, time.Time{})
	require.NoError(t, err)
	return info.ID
}

func TestKeysRevokeCommand(t *testing.T) {
	tests := []struct {
		name          string
		giveSeed      byte
		giveArgs      func(kid string, dirs []string) []string // after "keys revoke"; dirs are --keys-dir and --revocation-dir
		wantKidPrefix string                                   // guards the fixture: how the kid starts, or "" for no '-'
		wantCode      int
	}{
		{name: "ok/current_key_is_replaced", giveSeed: plainKidSeed,
			giveArgs: func(kid string, dirs []string) []string { return append(dirs, kid) }},
		{name: "ok/kid_after_flags", giveSeed: plainKidSeed,
			giveArgs: func(kid string, dirs []string) []string { return append(dirs, "--key-alg", "ES256", kid) }},
		{name: "ok/kid_before_flags", giveSeed: plainKidSeed,
			giveArgs: func(kid string, dirs []string) []string { return append([]string{kid}, dirs...) }},
		{name: "ok/dash_kid_after_flags", giveSeed: dashKidSeed, wantKidPrefix: "-",
			giveArgs: func(kid string, dirs []string) []string { return append(dirs, kid) }},
		{name: "ok/dash_kid_before_flags", giveSeed: dashKidSeed, wantKidPrefix: "-",
			giveArgs: func(kid string, dirs []string) []string { return append([]string{kid}, dirs...) }},
		{name: "ok/dash_kid_among_flags", giveSeed: dashKidSeed, wantKidPrefix: "-",
			giveArgs: func(kid string, dirs []string) []string { return append([]string{"--key-alg", "ES256", kid}, dirs...) }},
		{name: "ok/double_dash_kid", giveSeed: doubleDashKidSeed, wantKidPrefix: "--",
			giveArgs: func(kid string, dirs []string) []string { return append(dirs, kid) }},
		{name: "ok/double_dash_kid_after_end_of_flags", giveSeed: doubleDashKidSeed, wantKidPrefix: "--",
			giveArgs: func(kid string, dirs []string) []string { return append(dirs, "--", kid) }},
		{name: "fail/unknown_kid", giveSeed: plainKidSeed, wantCode: 1,
			giveArgs: func(_ string, dirs []string) []string { return append(dirs, "no-such-kid") }},
		{name: "fail/unknown_dash_kid", giveSeed: dashKidSeed, wantKidPrefix: "-", wantCode: 1,
			giveArgs: func(_ string, dirs []string) []string { return append(dirs, "-no-such-kid") }},
		{name: "fail/no_kid", giveSeed: plainKidSeed, wantCode: 2,
			giveArgs: func(_ string, dirs []string) []string { return dirs }},
		{name: "fail/unknown_flag", giveSeed: dashKidSeed, wantKidPrefix: "-", wantCode: 2,
			giveArgs: func(kid string, dirs []string) []string { return append(dirs, "--no-such-flag", kid) }},
		{name: "fail/two_kids", giveSeed: plainKidSeed, wantCode: 2,
			giveArgs: func(kid string, dirs []string) []string { return append(dirs, kid, kid) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			kid := generateFixedKey(t, cfg.KeysDir, tt.giveSeed)
			if tt.wantKidPrefix == "" {
				require.False(t, strings.HasPrefix(kid, "-"), kid)
			} else {
				require.True(t, strings.HasPrefix(kid, tt.wantKidPrefix) && !strings.HasPrefix(kid, tt.wantKidPrefix+"-"), kid)
			}
			ts := newTestServer(t, cfg)
			require.Equal(t, kid, ts.app.currentKeyID())
			b := ts.browser(t)
			csrf := b.signIn("alice", "alice-demo-pw")
			before, _ := b.apiHandoff(csrf, "transfer-123")
			oldKeys := ts.app.keys.PublishedKeys()
			dirs := []string{"--keys-dir", cfg.KeysDir, "--revocation-dir", cfg.RevocationDir}
			args := append([]string{"keys", "revoke"}, tt.giveArgs(kid, dirs)...)

			code, stdout, stderr := runCLI(t, args...)

			require.Equal(t, tt.wantCode, code, stderr)
			require.NoError(t, ts.app.reloadKeys())
			if tt.wantCode != 0 {
				assert.Equal(t, []string{kid}, publishedKids(t, ts))
				assert.Empty(t, revocationList(t, ts).Keys)
				return
			}
			replacement := ts.app.currentKeyID()
			assert.NotEqual(t, kid, replacement)
			assert.Contains(t, stdout, replacement)
			assert.Equal(t, []string{replacement}, publishedKids(t, ts), "the revoked key left the JWKS at once")
			listed := revocationList(t, ts).Keys
			require.Len(t, listed, 1)
			assert.Equal(t, kid, listed[0].KeyID)

			after, _ := b.apiHandoff(csrf, "transfer-123")
			v := revocationVerifier(t, ts)
			_, err := v.Verify(context.Background(), after, expectTransfer("transfer-123", demoParams))
			assert.NoError(t, err, "the replacement signs")
			// A verifier that still holds the old key refuses its tokens
			// through the list.
			static, err := keys.NewStatic(oldKeys...)
			require.NoError(t, err)
			stale, err := token.NewVerifier(token.VerifierConfig{Issuers: []token.TrustedIssuer{{Issuer: testIssuer, Keys: static}}, Audience: payments,
				Replay: durableReplay{mustMemoryReplay(t)}, Revocation: ts.app.revocations})
			require.NoError(t, err)
			_, err = stale.Verify(context.Background(), before, expectTransfer("transfer-123", demoParams))
			assert.Equal(t, token.ReasonRevoked, token.ReasonOf(err))
		})
	}
}

func TestRotateIfDue(t *testing.T) {
	tests := []struct {
		name        string
		giveAge     time.Duration // how long the current key has signed
		wantRotated bool
	}{
		{name: "ok/due", giveAge: 2 * time.Hour, wantRotated: true},
		{name: "ok/not_due", giveAge: 30 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.RotateEvery = time.Hour
			past, err := keys.Open(keys.KeyringConfig{Dir: cfg.KeysDir, Now: func() time.Time { return time.Now().Add(-tt.giveAge) }})
			require.NoError(t, err)
			_, err = past.Generate(token.EdDSA, time.Time{})
			require.NoError(t, err)
			ts := newTestServer(t, cfg)

			require.NoError(t, ts.app.rotateIfDue())
			require.NoError(t, ts.app.rotateIfDue(), "a second check while the rotation is under way")

			var next []keys.Info
			for _, k := range openKeyring(t, cfg.KeysDir).Keys() {
				if k.State == keys.Next {
					next = append(next, k)
				}
			}
			if !tt.wantRotated {
				assert.Empty(t, next)
				return
			}
			require.Len(t, next, 1, "one rotation, not one per check")
			assert.WithinDuration(t, time.Now().Add(cfg.publishFor()), next[0].ActivatesAt, 2*time.Second)
			require.Len(t, ts.logs.JSONLines(t, "key rotation started"), 1)
		})
	}
}

// TestInstancesShareDirectories: two instances on the same keys and
// revocation directories publish the same keys and the same revocations,
// whichever instance recorded them.
func TestInstancesShareDirectories(t *testing.T) {
	cfg := testConfig(t)
	a, b := newTestServer(t, cfg), newTestServer(t, cfg)
	alice := a.browser(t)
	csrf := alice.signIn("alice", "alice-demo-pw")
	_, jti := alice.apiHandoff(csrf, "transfer-123")

	res := alice.PostJSON("/api/v1/handoffs/"+jti+"/revoke", "", http.Header{"X-Csrf-Token": {csrf}})
	require.Equal(t, http.StatusOK, res.StatusCode, res.Body)
	code, _, stderr := runCLI(t, "keys", "rotate", "--keys-dir", cfg.KeysDir, "--jwks-max-age", "1m")
	require.Equal(t, 0, code, stderr)
	require.NoError(t, a.app.reloadKeys())
	require.NoError(t, b.app.reloadKeys())

	assert.Equal(t, a.app.currentKeyID(), b.app.currentKeyID())
	assert.ElementsMatch(t, publishedKids(t, a), publishedKids(t, b))
	assert.Len(t, publishedKids(t, b), 2)
	listed := revocationList(t, b).Tokens
	require.Len(t, listed, 1, "revoked on a, listed by b")
	assert.Equal(t, jti, listed[0].ID)
}

func TestRevocationDirDefault(t *testing.T) {
	tests := []struct {
		name        string
		giveKeysDir string
		giveRevDir  string
		want        string
	}{
		{name: "ok/demo_default", giveKeysDir: ".data/server1/keys", want: ".data/server1/revocations"},
		{name: "ok/beside_keys", giveKeysDir: "/srv/handoff/keys", want: "/srv/handoff/revocations"},
		{name: "ok/configured", giveKeysDir: "/srv/handoff/keys", giveRevDir: "/shared/revoked", want: "/shared/revoked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := defaultConfig()
			cfg.KeysDir, cfg.RevocationDir = tt.giveKeysDir, tt.giveRevDir

			assert.Equal(t, tt.want, cfg.revocationDir())
		})
	}
}
