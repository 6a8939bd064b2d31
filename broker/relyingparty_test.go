package broker

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/broker/brokertest"
	"github.com/handoffbroker/handoff/broker/fetch"
	"github.com/handoffbroker/handoff/broker/internal/fixture"
	"github.com/handoffbroker/handoff/broker/token"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const testAudience = "https://relying.test"

// newTestIssuer starts the kit's issuer on clock: keys, JWKS, handoff
// configuration and, unless noList, a signed revocation list.
func newTestIssuer(t testing.TB, clock *brokertest.Clock, noList bool) *brokertest.Issuer {
	t.Helper()
	opts := []brokertest.Option{brokertest.WithNow(clock.Now)}
	if noList {
		opts = append(opts, brokertest.WithoutRevocations())
	}
	return brokertest.StartIssuer(t, opts...)
}

// mint signs a token for alice to testAudience for task.
func mint(t testing.TB, is *brokertest.Issuer, task token.Task) token.Minted {
	t.Helper()
	return is.MintFull(t, token.MintRequest{Subject: "alice", Audience: testAudience, Task: task})
}

var demoTask = token.Task{ID: "transfer-1", Action: "approve"}

// newTestRP starts a relying party on is, discovered, and waits until it
// is ready; the clock is moved past the memory store's start second.
func newTestRP(t testing.TB, clock *brokertest.Clock, is *brokertest.Issuer, edit func(*Config)) *RelyingParty {
	t.Helper()
	cfg := Config{Issuer: is.URL, Audience: testAudience, Now: clock.Now, DiscoveryRetry: 10 * time.Millisecond}
	if edit != nil {
		edit(&cfg)
	}
	rp, err := NewRelyingParty(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = rp.Close() })
	clock.Advance(5 * time.Second)
	return rp
}

// newReadyRP starts the kit's issuer, with a revocation list, and a
// relying party on it (edit, when set, changes its Config), and waits
// until the relying party is ready.
func newReadyRP(t testing.TB, edit func(*Config)) (*brokertest.Clock, *brokertest.Issuer, *RelyingParty) {
	t.Helper()
	clock := brokertest.NewClock(time.Now().Truncate(time.Second))
	is := newTestIssuer(t, clock, false)
	rp := newTestRP(t, clock, is, edit)
	waitRPReady(t, rp)
	return clock, is, rp
}

func waitRPReady(t testing.TB, rp *RelyingParty) {
	t.Helper()
	require.Eventually(t, func() bool { return rp.Ready(context.Background()) == nil }, 20*time.Second, 5*time.Millisecond, "the relying party never became ready")
}

func TestNew_Config(t *testing.T) {
	tests := []struct {
		name       string
		giveConfig Config
		wantErrs   int
		wantReason fetch.URLReason
	}{
		{name: "ok/issuer_and_audience", giveConfig: Config{Issuer: "https://issuer.test", Audience: testAudience}},
		{name: "ok/revocation_off", giveConfig: Config{Issuer: "https://issuer.test", Audience: testAudience, JWKSURL: "https://issuer.test/jwks", RevocationURL: RevocationOff}},
		{name: "fail/empty", giveConfig: Config{}, wantErrs: 2},
		{name: "fail/jwks_url_without_revocation_url", giveConfig: Config{Issuer: "https://issuer.test", Audience: testAudience, JWKSURL: "https://issuer.test/jwks"}, wantErrs: 1},
		{name: "fail/http_jwks_url_for_https_issuer", giveConfig: Config{Issuer: "https://issuer.test", Audience: testAudience, JWKSURL: "http://issuer.test/jwks", RevocationURL: RevocationOff},
			wantErrs: 1, wantReason: fetch.URLNotHTTPS},
		{name: "fail/leeway_too_long", giveConfig: Config{Issuer: "https://issuer.test", Audience: testAudience, Leeway: time.Hour}, wantErrs: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rp, err := New(tt.giveConfig)

			if tt.wantErrs == 0 {
				require.NoError(t, err)
				require.NoError(t, rp.Close())
				return
			}
			require.Error(t, err)
			assert.Len(t, fixture.JoinedErrors(err), tt.wantErrs, err.Error())
			if tt.wantReason != "" {
				assert.Equal(t, tt.wantReason, fetch.URLReasonOf(err))
			}
		})
	}
}

// TestConfigValidate_Names: Validate names each field the caller's way,
// so a program reports problems as its users spell the settings.
func TestConfigValidate_Names(t *testing.T) {
	cfg := Config{Issuer: "https://issuer.test", JWKSURL: "http://issuer.test/jwks", RevocationMaxStale: time.Second}
	flags := map[string]string{"Audience": "audience", "JWKSURL": "jwks-url", "RevocationURL": "revocation-url",
		"RevocationMaxStale": "revocation-max-stale", "RevocationInterval": "revocation-interval"}

	err := cfg.Validate(func(field string) string { return flags[field] })

	require.Error(t, err)
	assert.Equal(t, fetch.URLNotHTTPS, fetch.URLReasonOf(err))
	assert.Len(t, fixture.JoinedErrors(err), 4, err.Error())
	for _, want := range []string{"audience is required", "jwks-url: ", `revocation-url is required with jwks-url: `, "revocation-max-stale 1s must be at least revocation-interval 5s"} {
		assert.Contains(t, err.Error(), want)
	}
	assert.NotContains(t, err.Error(), "field ", "every field is named by the caller's names")
	assert.Contains(t, Config{}.Validate(nil).Error(), "field Issuer is required")
}

func TestRelyingParty_DiscoversVerifiesOnce(t *testing.T) {
	_, is, rp := newReadyRP(t, nil)
	m := mint(t, is, demoTask)

	ex := rp.Explain(t.Context(), m.Token, token.Expect{Task: &demoTask})
	first, err := rp.Verify(t.Context(), m.Token, token.Expect{Task: &demoTask})
	_, again := rp.Verify(t.Context(), m.Token, token.Expect{Task: &demoTask})

	require.NoError(t, ex.Err, "Explain accepts a fresh token")
	require.NoError(t, err, "Explain did not consume it")
	assert.Equal(t, "alice", first.Claims().Subject)
	fixture.WantReason(t, again, token.ReasonReplayed)
	st := rp.Status()
	assert.Equal(t, is.JWKSURL, st.JWKSURL)
	assert.Equal(t, is.RevocationURL, st.RevocationURL)
}

func TestRelyingParty_Revoked(t *testing.T) {
	_, is, rp := newReadyRP(t, nil)
	m := mint(t, is, demoTask)
	is.RevokeToken(t, m.ID, m.ExpiresAt)
	require.NoError(t, rp.Refresh(t.Context()))

	_, err := rp.Verify(t.Context(), m.Token, token.Expect{Task: &demoTask})

	fixture.WantReason(t, err, token.ReasonRevoked)
	fixture.WantReason(t, rp.HeldRevocation(token.TokenRef{Issuer: is.URL, Subject: "alice", ID: m.ID, KeyID: m.KeyID, IssuedAt: m.IssuedAt}), token.ReasonRevoked)
}

func TestRelyingParty_Readiness(t *testing.T) {
	tests := []struct {
		name       string
		giveNoList bool
		giveEdit   func(*Config)
		wantReady  bool
		wantChecks map[string]error
	}{
		{name: "ok/discovered", wantReady: true},
		{name: "ok/revocation_off", giveNoList: true, wantReady: true,
			giveEdit:   func(c *Config) { c.RevocationURL = RevocationOff },
			wantChecks: map[string]error{"revocations": ErrRevocationOff}},
		{name: "fail/issuer_advertises_no_list", giveNoList: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := brokertest.NewClock(time.Now().Truncate(time.Second))
			is := newTestIssuer(t, clock, tt.giveNoList)
			rp := newTestRP(t, clock, is, tt.giveEdit)

			if !tt.wantReady {
				require.Never(t, func() bool { return rp.Ready(t.Context()) == nil }, 200*time.Millisecond, 10*time.Millisecond)
				_, err := rp.Verify(t.Context(), mint(t, is, demoTask).Token, token.Expect{Task: &demoTask})
				fixture.WantReason(t, err, token.ReasonUnavailable)
				return
			}
			waitRPReady(t, rp)
			for _, c := range rp.Checks() {
				assert.ErrorIs(t, c.Check(t.Context()), tt.wantChecks[c.Name], c.Name)
			}
			_, err := rp.Verify(t.Context(), mint(t, is, demoTask).Token, token.Expect{Task: &demoTask})
			require.NoError(t, err)
		})
	}
}

// TestRelyingParty_ExplainOnly: an unstarted explain-only relying party,
// refreshed once, explains tokens as a started one verifies them, without
// pollers, without consuming, and without refusing tokens older than it.
func TestRelyingParty_ExplainOnly(t *testing.T) {
	tests := []struct {
		name           string
		giveNoList     bool
		giveKeys       bool // Config.Keys: the issuer's keyring, no JWKS fetched
		giveRevoke     bool
		wantRefreshErr error
		wantRevocation bool // the revocation step ran
		wantReason     token.Reason
	}{
		{name: "ok/discovered", wantRevocation: true},
		{name: "ok/keys_given_list_discovered", giveKeys: true, wantRevocation: true},
		{name: "ok/no_list_advertised_leaves_revocation_out", giveNoList: true, wantRefreshErr: ErrNoRevocationEndpoint},
		{name: "fail/revoked", giveRevoke: true, wantRevocation: true, wantReason: token.ReasonRevoked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := brokertest.NewClock(time.Now().Truncate(time.Second))
			is := newTestIssuer(t, clock, tt.giveNoList)
			m := mint(t, is, demoTask)
			if tt.giveRevoke {
				is.RevokeToken(t, m.ID, m.ExpiresAt)
			}
			cfg := Config{Issuer: is.URL, Audience: testAudience, ExplainOnly: true, Now: clock.Now}
			if tt.giveKeys {
				cfg.Keys = is.Keys()
			}
			rp, err := New(cfg)
			require.NoError(t, err)
			t.Cleanup(func() { _ = rp.Close() })

			refreshErr := rp.Refresh(t.Context())
			ex := rp.Explain(t.Context(), m.Token, token.Expect{Task: &demoTask})
			_, verifyErr := rp.Verify(t.Context(), m.Token, token.Expect{Task: &demoTask})

			if tt.wantRefreshErr == nil {
				require.NoError(t, refreshErr)
			} else {
				var re *RefreshError
				require.ErrorAs(t, refreshErr, &re)
				assert.ErrorIs(t, re.RevocationList, tt.wantRefreshErr)
				assert.NoError(t, re.JWKS, "the keys are taken without a list")
			}
			ran := slices.ContainsFunc(ex.Steps, func(st token.Step) bool { return st.Name == token.StepRevocation })
			assert.Equal(t, tt.wantRevocation, ran, "%+v", ex.Steps)
			if tt.wantReason != "" {
				fixture.WantReason(t, ex.Err, tt.wantReason)
			} else {
				require.NoError(t, ex.Err, "a token minted before the relying party started is explained, not refused")
			}
			if tt.wantReason != "" {
				fixture.WantReason(t, verifyErr, tt.wantReason)
			} else {
				fixture.WantReason(t, verifyErr, token.ReasonUnavailable)
			}
			if tt.wantReason == "" && tt.wantRevocation {
				assert.ErrorIs(t, verifyErr, errExplainOnly, "Verify never records a use here")
			}
			ex = rp.Explain(t.Context(), m.Token, token.Expect{Task: &demoTask})
			assert.Equal(t, tt.wantReason, token.ReasonOf(ex.Err), "nothing was consumed")
		})
	}
}

// TestRelyingParty_ExplainRevokedUnpublishedKey: a token whose key the
// issuer revoked and no longer publishes is explained as revoked, and
// still refused by Verify as signed by an unknown key.
func TestRelyingParty_ExplainRevokedUnpublishedKey(t *testing.T) {
	_, is, rp := newReadyRP(t, func(c *Config) { c.JWKSCooldown = time.Nanosecond })
	m := mint(t, is, demoTask)
	is.RevokeKey(t, m.KeyID)
	is.ReplaceKey(t, m.KeyID)
	require.NoError(t, rp.Refresh(t.Context()))

	ex := rp.Explain(t.Context(), m.Token, token.Expect{Task: &demoTask})
	_, err := rp.Verify(t.Context(), m.Token, token.Expect{Task: &demoTask})

	fixture.WantReason(t, ex.Err, token.ReasonRevoked)
	require.NotEmpty(t, ex.Steps)
	assert.Equal(t, token.StepKey, ex.Steps[len(ex.Steps)-1].Name)
	assert.Contains(t, []token.Reason{token.ReasonUnknownKey, token.ReasonRevoked}, token.ReasonOf(err))
}

func TestNew_ConfigExplainOnlyAndKeys(t *testing.T) {
	is := brokertest.StartIssuer(t)
	store, err := token.NewMemoryReplayStore(token.MemoryReplayConfig{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })

	_, err = New(Config{Issuer: is.URL, Audience: testAudience, ExplainOnly: true, Replay: store, Keys: is.Keys(), JWKSURL: is.JWKSURL, RevocationURL: RevocationOff})

	require.Error(t, err)
	assert.Len(t, fixture.JoinedErrors(err), 2, err.Error())
	assert.ErrorContains(t, err, "field JWKSURL must be empty with field Keys")
	assert.ErrorContains(t, err, "field Replay must be nil with field ExplainOnly")
}

// TestRelyingParty_StartAfterRefresh: Start discovers what an earlier
// Refresh could not: here the list the issuer advertises only later.
func TestRelyingParty_StartAfterRefresh(t *testing.T) {
	clock := brokertest.NewClock(time.Now().Truncate(time.Second))
	is := newTestIssuer(t, clock, true)
	rp, err := New(Config{Issuer: is.URL, Audience: testAudience, Now: clock.Now, DiscoveryRetry: 10 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { _ = rp.Close() })
	require.ErrorIs(t, rp.Refresh(t.Context()), ErrNoRevocationEndpoint)
	require.Error(t, rp.Ready(t.Context()), "no list, no readiness")

	is.PublishRevocations(true)
	rp.Start(t.Context())

	waitRPReady(t, rp)
	assert.Equal(t, is.RevocationURL, rp.Status().RevocationURL)
}

// TestRelyingParty_ExplainRevocationOff: with revocation off, Explain
// reports no revocation step, rather than a passed check that never ran.
func TestRelyingParty_ExplainRevocationOff(t *testing.T) {
	clock := brokertest.NewClock(time.Now().Truncate(time.Second))
	is := newTestIssuer(t, clock, true)
	rp := newTestRP(t, clock, is, func(c *Config) { c.RevocationURL = RevocationOff })
	waitRPReady(t, rp)
	m := mint(t, is, demoTask)

	ex := rp.Explain(t.Context(), m.Token, token.Expect{Task: &demoTask})

	require.NoError(t, ex.Err)
	for _, st := range ex.Steps {
		assert.NotEqual(t, token.StepRevocation, st.Name, "revocation is off: nothing was checked")
	}
}
