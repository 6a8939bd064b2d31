package broker

import (
	"context"
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
	clock := brokertest.NewClock(time.Now().Truncate(time.Second))
	is := newTestIssuer(t, clock, false)
	rp := newTestRP(t, clock, is, nil)
	waitRPReady(t, rp)
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
	clock := brokertest.NewClock(time.Now().Truncate(time.Second))
	is := newTestIssuer(t, clock, false)
	rp := newTestRP(t, clock, is, nil)
	waitRPReady(t, rp)
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
