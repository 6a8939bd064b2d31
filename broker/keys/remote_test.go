package keys_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/broker/brokertest"
	"github.com/handoffbroker/handoff/broker/fetch"
	"github.com/handoffbroker/handoff/broker/internal/fixture"
	"github.com/handoffbroker/handoff/broker/keys"
	"github.com/handoffbroker/handoff/broker/token"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// remoteIssuer is an issuer's JWKS endpoint under httptest, publishing the
// keys of real keyrings. override swaps in another behaviour (an outage, a
// hostile answer) until restore.
type remoteIssuer struct {
	srv          *httptest.Server
	hits         atomic.Int64
	cacheControl string
	etag         bool
	handler      atomic.Pointer[http.HandlerFunc]

	mu    sync.Mutex
	rings []*keys.Keyring
}

type remoteIssuerOptions struct {
	cacheControl string // sent as Cache-Control when set
	etag         bool   // send an ETag and honour If-None-Match
}

// newRemoteIssuer starts an endpoint publishing one fresh EdDSA key.
func newRemoteIssuer(t testing.TB, opts remoteIssuerOptions) *remoteIssuer {
	t.Helper()
	iss := &remoteIssuer{cacheControl: opts.cacheControl, etag: opts.etag}
	iss.addKeyring(t, token.EdDSA)
	iss.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		iss.hits.Add(1)
		if h := iss.handler.Load(); h != nil {
			(*h)(w, r)
			return
		}
		iss.serveJWKS(w, r)
	}))
	t.Cleanup(iss.srv.Close)
	return iss
}

func (iss *remoteIssuer) url() string { return iss.srv.URL + "/jwks" }

// addKeyring adds a keyring with one fresh key to those the issuer publishes
// and returns it, for minting with that key alone.
func (iss *remoteIssuer) addKeyring(t testing.TB, alg token.Algorithm) *keys.Keyring {
	t.Helper()
	kr, err := keys.NewEphemeral(alg)
	require.NoError(t, err)
	iss.mu.Lock()
	defer iss.mu.Unlock()
	iss.rings = append(iss.rings, kr)
	return kr
}

// kid returns the id of the only key of the i-th keyring.
func (iss *remoteIssuer) kid(t testing.TB, i int) string {
	t.Helper()
	iss.mu.Lock()
	defer iss.mu.Unlock()
	ks := iss.rings[i].PublishedKeys()
	require.Len(t, ks, 1)
	return ks[0].KeyID
}

func (iss *remoteIssuer) jwks() ([]byte, error) {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	var ks []token.PublicKey
	for _, kr := range iss.rings {
		ks = append(ks, kr.PublishedKeys()...)
	}
	return keys.MarshalJWKS(ks)
}

func (iss *remoteIssuer) serveJWKS(w http.ResponseWriter, r *http.Request) {
	body, err := iss.jwks()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if iss.cacheControl != "" {
		w.Header().Set("Cache-Control", iss.cacheControl)
	}
	if iss.etag {
		sum := sha256.Sum256(body)
		tag := fmt.Sprintf(`"%x"`, sum[:8])
		w.Header().Set("ETag", tag)
		if r.Header.Get("If-None-Match") == tag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Write(body)
}

func (iss *remoteIssuer) override(h http.HandlerFunc) { iss.handler.Store(&h) }
func (iss *remoteIssuer) restore()                    { iss.handler.Store(nil) }

// remoteHangUp drops the connection without answering, like an issuer that
// is down behind a load balancer.
func remoteHangUp(w http.ResponseWriter, _ *http.Request) {
	if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
		conn.Close()
	}
}

func remoteStatus(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) { http.Error(w, http.StatusText(code), code) }
}

func remoteBody(body []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) { w.Write(body) }
}

// remoteHold returns a handler that answers normally once release is
// closed (or the client gives up).
func (iss *remoteIssuer) remoteHold(release <-chan struct{}) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
			iss.serveJWKS(w, r)
		case <-r.Context().Done():
		}
	}
}

// newTestRemoteKeys builds RemoteKeys for url on clock, after edit adjusts
// the config.
func newTestRemoteKeys(t testing.TB, url string, clock *brokertest.Clock, edit func(*keys.RemoteConfig)) *keys.Remote {
	t.Helper()
	cfg := keys.RemoteConfig{URL: url, Now: clock.Now}
	if edit != nil {
		edit(&cfg)
	}
	rk, err := keys.NewRemote(cfg)
	require.NoError(t, err)
	return rk
}

func TestRemoteKeysConfig(t *testing.T) {
	tests := []struct {
		name         string
		give         keys.RemoteConfig
		wantProblems int
	}{
		{name: "ok/defaults", give: keys.RemoteConfig{URL: "https://issuer.test/jwks"}},
		{name: "ok/http_loopback", give: keys.RemoteConfig{URL: "http://127.0.0.1:8081/.well-known/jwks.json"}},
		{name: "ok/min_refresh_above_default_refresh", give: keys.RemoteConfig{URL: "https://issuer.test/jwks", MinRefresh: 10 * time.Minute}},
		{name: "fail/missing_url", give: keys.RemoteConfig{}, wantProblems: 1},
		{name: "fail/relative_url", give: keys.RemoteConfig{URL: "/jwks"}, wantProblems: 1},
		{name: "fail/file_url", give: keys.RemoteConfig{URL: "file:///etc/jwks.json"}, wantProblems: 1},
		{name: "fail/credentials_in_url", give: keys.RemoteConfig{URL: "https://user@issuer.test/jwks"}, wantProblems: 1},
		{name: "fail/negative_timeout", give: keys.RemoteConfig{URL: "https://issuer.test/jwks", Timeout: -time.Second}, wantProblems: 1},
		{name: "fail/negative_max_response", give: keys.RemoteConfig{URL: "https://issuer.test/jwks", MaxResponseBytes: -1}, wantProblems: 1},
		{name: "fail/min_refresh_above_max", give: keys.RemoteConfig{URL: "https://issuer.test/jwks", MinRefresh: 2 * time.Hour, MaxRefresh: time.Hour, DefaultRefresh: 2 * time.Hour}, wantProblems: 2},
		{name: "fail/default_refresh_out_of_range", give: keys.RemoteConfig{URL: "https://issuer.test/jwks", DefaultRefresh: 2 * time.Hour}, wantProblems: 1},
		{name: "fail/negative_cooldown", give: keys.RemoteConfig{URL: "https://issuer.test/jwks", UnknownKidCooldown: -time.Second}, wantProblems: 1},
		{name: "fail/max_stale_below_max_refresh", give: keys.RemoteConfig{URL: "https://issuer.test/jwks", MaxStale: time.Minute}, wantProblems: 1},
		{name: "fail/unsupported_algorithm", give: keys.RemoteConfig{URL: "https://issuer.test/jwks", Algorithms: []token.Algorithm{"HS256"}}, wantProblems: 1},
		{
			name: "fail/every_problem_reported",
			give: keys.RemoteConfig{
				URL:                "ftp://issuer.test/jwks",
				Timeout:            -1,
				UnknownKidCooldown: -1,
				Algorithms:         []token.Algorithm{"none"},
			},
			wantProblems: 4,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rk, err := keys.NewRemote(tt.give)
			if tt.wantProblems == 0 {
				require.NoError(t, err)
				require.NotNil(t, rk)
				return
			}
			require.Error(t, err)
			assert.Len(t, fixture.JoinedErrors(err), tt.wantProblems, "%v", err)
		})
	}
}

func TestRemoteKeysRefreshInterval(t *testing.T) {
	tests := []struct {
		name             string
		giveCacheControl string
		wantInterval     time.Duration
	}{
		{name: "ok/no_header_uses_default", wantInterval: 5 * time.Minute},
		{name: "ok/max_age_honoured", giveCacheControl: "public, max-age=600", wantInterval: 10 * time.Minute},
		{name: "ok/max_age_below_min_clamped", giveCacheControl: "max-age=1", wantInterval: time.Minute},
		{name: "ok/max_age_above_max_clamped", giveCacheControl: "max-age=999999", wantInterval: time.Hour},
		{name: "ok/max_age_overflowing_clamped", giveCacheControl: "max-age=99999999999999999999", wantInterval: time.Hour},
		{name: "ok/malformed_max_age_uses_default", giveCacheControl: "max-age=soon", wantInterval: 5 * time.Minute},
		{name: "ok/no_cache_without_max_age_uses_default", giveCacheControl: "no-cache", wantInterval: 5 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iss := newRemoteIssuer(t, remoteIssuerOptions{cacheControl: tt.giveCacheControl})
			clock := brokertest.NewClock(fixture.Now)
			var log fixture.FetchLog
			rk := newTestRemoteKeys(t, iss.url(), clock, func(c *keys.RemoteConfig) { c.OnFetch = log.Record })
			require.False(t, rk.Ready())

			require.NoError(t, rk.Refresh(t.Context()))

			st := rk.Status()
			assert.Equal(t, fixture.Now, st.FetchedAt)
			assert.Equal(t, fixture.Now.Add(tt.wantInterval), st.RefreshAt)
			assert.Equal(t, 1, st.Keys)
			assert.Empty(t, st.LastError)
			assert.True(t, rk.Ready())
			assert.Equal(t, []string{fetch.ResultOK}, log.All())

			kid := iss.kid(t, 0)
			for range 10 {
				key, err := rk.LookupKey(t.Context(), kid)
				require.NoError(t, err)
				assert.Equal(t, kid, key.KeyID)
				assert.Equal(t, token.EdDSA, key.Algorithm)
			}
			assert.EqualValues(t, 1, iss.hits.Load(), "a known kid must not cost a fetch")
		})
	}
}

func TestRemoteKeysNeverFetched(t *testing.T) {
	iss := newRemoteIssuer(t, remoteIssuerOptions{})
	iss.override(remoteStatus(http.StatusServiceUnavailable))
	rk := newTestRemoteKeys(t, iss.url(), brokertest.NewClock(fixture.Now), nil)

	require.Error(t, rk.Refresh(t.Context()))
	_, err := rk.LookupKey(t.Context(), iss.kid(t, 0))
	fixture.WantReason(t, err, token.ReasonUnavailable)
	assert.False(t, rk.Ready())
	st := rk.Status()
	assert.True(t, st.FetchedAt.IsZero())
	assert.Zero(t, st.Keys)
	assert.NotEmpty(t, st.LastError)
}

func TestRemoteKeysIssuerDown(t *testing.T) {
	const (
		maxStale = 3 * time.Hour
		cooldown = 10 * time.Second
	)
	tests := []struct {
		name     string
		giveDown http.HandlerFunc
	}{
		{name: "fail/status_500", giveDown: remoteStatus(http.StatusInternalServerError)},
		{name: "fail/connection_dropped", giveDown: remoteHangUp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iss := newRemoteIssuer(t, remoteIssuerOptions{})
			clock := brokertest.NewClock(fixture.Now)
			rk := newTestRemoteKeys(t, iss.url(), clock, func(c *keys.RemoteConfig) {
				c.MaxStale = maxStale
				c.UnknownKidCooldown = cooldown
			})
			kid := iss.kid(t, 0)
			require.NoError(t, rk.Refresh(t.Context()))

			iss.override(tt.giveDown)
			clock.Advance(time.Hour)
			require.Error(t, rk.Refresh(t.Context()))
			st := rk.Status()
			assert.NotEmpty(t, st.LastError)
			assert.Equal(t, fixture.Now, st.FetchedAt, "a failed fetch keeps the last good set")

			_, err := rk.LookupKey(t.Context(), kid)
			require.NoError(t, err, "cached keys keep verifying while the issuer is down")

			clock.Set(fixture.Now.Add(maxStale))
			_, err = rk.LookupKey(t.Context(), kid)
			require.NoError(t, err, "cached keys are served up to MaxStale")
			require.True(t, rk.Ready())
			hits := iss.hits.Load()

			clock.Advance(time.Second)
			assert.False(t, rk.Ready())
			_, err = rk.LookupKey(t.Context(), kid)
			fixture.WantReason(t, err, token.ReasonUnavailable)
			assert.Equal(t, hits+1, iss.hits.Load(), "a lookup past MaxStale tries one fetch")

			iss.restore()
			_, err = rk.LookupKey(t.Context(), kid)
			fixture.WantReason(t, err, token.ReasonUnavailable)
			assert.Equal(t, hits+1, iss.hits.Load(), "no second fetch within the cool-down")

			clock.Advance(cooldown)
			_, err = rk.LookupKey(t.Context(), kid)
			require.NoError(t, err, "the issuer is back")
			assert.Equal(t, hits+2, iss.hits.Load())
			assert.True(t, rk.Ready())
			assert.Empty(t, rk.Status().LastError)
		})
	}
}

func TestRemoteKeysUnknownKidFlood(t *testing.T) {
	const (
		goroutines = 50
		perWorker  = 20
	)
	iss := newRemoteIssuer(t, remoteIssuerOptions{})
	rk := newTestRemoteKeys(t, iss.url(), brokertest.NewClock(fixture.Now), nil)
	kid := iss.kid(t, 0)
	require.NoError(t, rk.Refresh(t.Context()))

	// Hold the flood's one fetch open, so that every other call has to
	// finish while it is in flight.
	release := make(chan struct{})
	iss.override(iss.remoteHold(release))
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })

	var finished atomic.Int64 // workers that made all their calls
	reasons := make(chan token.Reason, goroutines*perWorker)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range perWorker {
				_, err := rk.LookupKey(context.Background(), fmt.Sprintf("made-up-%d-%d", g, i))
				reasons <- token.ReasonOf(err)
			}
			finished.Add(1)
		})
	}

	require.Eventually(t, func() bool { return finished.Load() == goroutines-1 }, 10*time.Second, 5*time.Millisecond,
		"every worker but the one whose call fetches finishes without waiting for the fetch")
	for range 100 {
		_, err := rk.LookupKey(t.Context(), kid)
		require.NoError(t, err, "known kids verify while the flood's fetch is in flight")
	}

	releaseOnce.Do(func() { close(release) })
	wg.Wait()
	close(reasons)
	for r := range reasons {
		require.Equal(t, token.ReasonUnknownKey, r)
	}
	assert.LessOrEqual(t, iss.hits.Load(), int64(2), "the initial fetch and at most one for the whole flood")
}

func TestRemoteKeysKeyAddedAfterFetch(t *testing.T) {
	iss := newRemoteIssuer(t, remoteIssuerOptions{})
	rk := newTestRemoteKeys(t, iss.url(), brokertest.NewClock(fixture.Now), nil)
	require.NoError(t, rk.Refresh(t.Context()))

	iss.addKeyring(t, token.ES256)
	newKid := iss.kid(t, 1)
	key, err := rk.LookupKey(t.Context(), newKid)
	require.NoError(t, err)
	assert.Equal(t, token.ES256, key.Algorithm)
	assert.EqualValues(t, 2, iss.hits.Load(), "one refresh for the new kid")

	_, err = rk.LookupKey(t.Context(), newKid)
	require.NoError(t, err)
	assert.EqualValues(t, 2, iss.hits.Load(), "then it is cached")
}

// TestRemoteKeysFirstFetchByLookupKeepsUnknownKidRefresh: when a lookup,
// not Refresh or Start, fetches the verifier's very first set (a revocation
// list verified at start-up, racing the Start loop), a key the issuer adds
// right after still gets its unknown-kid refresh, with no cool-down wait.
func TestRemoteKeysFirstFetchByLookupKeepsUnknownKidRefresh(t *testing.T) {
	iss := newRemoteIssuer(t, remoteIssuerOptions{})
	rk := newTestRemoteKeys(t, iss.url(), brokertest.NewClock(fixture.Now), nil)

	_, err := rk.LookupKey(t.Context(), iss.kid(t, 0))
	require.NoError(t, err, "the first lookup fetches the set")
	assert.EqualValues(t, 1, iss.hits.Load())

	iss.addKeyring(t, token.EdDSA)
	_, err = rk.LookupKey(t.Context(), iss.kid(t, 1))
	require.NoError(t, err, "the new key is fetched at once, not after a cool-down")
	assert.EqualValues(t, 2, iss.hits.Load())

	_, err = rk.LookupKey(t.Context(), "no-such-kid")
	fixture.WantReason(t, err, token.ReasonUnknownKey)
	assert.EqualValues(t, 2, iss.hits.Load(), "the unknown-kid cool-down still holds")
}

func TestRemoteKeysVerifierAcceptsNewKey(t *testing.T) {
	iss := newRemoteIssuer(t, remoteIssuerOptions{})
	rk := newTestRemoteKeys(t, iss.url(), brokertest.NewClock(time.Now()), nil)
	require.NoError(t, rk.Refresh(t.Context()))

	v, err := token.NewVerifier(token.VerifierConfig{
		Issuers:  []token.TrustedIssuer{{Issuer: fixture.Issuer, Keys: rk}},
		Audience: fixture.Audience,
		Replay:   fixture.NewStore(t, brokertest.NewClock(time.Now().Add(-time.Hour)), token.MemoryReplayConfig{}),
	})
	require.NoError(t, err)

	newRing := iss.addKeyring(t, token.ES256)
	m, err := token.NewMinter(token.MinterConfig{Issuer: fixture.Issuer, Keys: newRing})
	require.NoError(t, err)
	tok, err := m.Mint(token.MintRequest{
		Subject:  "alice",
		Audience: fixture.Audience,
		Task:     token.Task{ID: "transfer-42", Action: "approve"},
	})
	require.NoError(t, err)

	got, err := v.Verify(t.Context(), tok.Token, token.Expect{AnyTask: true})
	require.NoError(t, err)
	assert.Equal(t, iss.kid(t, 1), got.Claims().KeyID)
	assert.Equal(t, token.ES256, got.Claims().Algorithm)
	assert.EqualValues(t, 2, iss.hits.Load())
}

func TestRemoteKeysUnknownKidCooldown(t *testing.T) {
	const cooldown = 10 * time.Second
	iss := newRemoteIssuer(t, remoteIssuerOptions{})
	clock := brokertest.NewClock(fixture.Now)
	rk := newTestRemoteKeys(t, iss.url(), clock, func(c *keys.RemoteConfig) { c.UnknownKidCooldown = cooldown })
	require.NoError(t, rk.Refresh(t.Context()))
	known := iss.kid(t, 0)

	// Each step runs in order on the same keys.Remote.
	steps := []struct {
		name        string
		giveAdvance time.Duration
		giveKid     string
		wantHits    int64
		wantReason  token.Reason
	}{
		{name: "fail/first_unknown_kid_fetches", giveKid: "nope-1", wantHits: 2, wantReason: token.ReasonUnknownKey},
		{name: "fail/second_unknown_kid_within_cooldown", giveKid: "nope-2", wantHits: 2, wantReason: token.ReasonUnknownKey},
		{name: "ok/known_kid_within_cooldown", giveKid: known, wantHits: 2},
		{name: "fail/just_before_cooldown_ends", giveAdvance: cooldown - time.Nanosecond, giveKid: "nope-3", wantHits: 2, wantReason: token.ReasonUnknownKey},
		{name: "fail/cooldown_over_fetches_again", giveAdvance: time.Nanosecond, giveKid: "nope-4", wantHits: 3, wantReason: token.ReasonUnknownKey},
		{name: "fail/new_cooldown", giveAdvance: cooldown / 2, giveKid: "nope-5", wantHits: 3, wantReason: token.ReasonUnknownKey},
	}
	for _, st := range steps {
		clock.Advance(st.giveAdvance)
		_, err := rk.LookupKey(t.Context(), st.giveKid)
		fixture.WantReason(t, err, st.wantReason)
		assert.Equal(t, st.wantHits, iss.hits.Load(), st.name)
	}
}

func TestRemoteKeysBadResponse(t *testing.T) {
	const maxBytes = 4096
	padded := func(t testing.TB, iss *remoteIssuer) http.HandlerFunc {
		body, err := iss.jwks()
		require.NoError(t, err)
		// Valid JSON, valid JWKS, only too long.
		return remoteBody(append(body, strings.Repeat(" ", maxBytes)...))
	}
	fixed := func(h http.HandlerFunc) func(testing.TB, *remoteIssuer) http.HandlerFunc {
		return func(testing.TB, *remoteIssuer) http.HandlerFunc { return h }
	}
	tests := []struct {
		name        string
		giveHandler func(testing.TB, *remoteIssuer) http.HandlerFunc
		giveTimeout time.Duration
	}{
		{name: "fail/larger_than_limit", giveHandler: padded},
		{
			name: "fail/larger_than_limit_without_length",
			giveHandler: func(t testing.TB, iss *remoteIssuer) http.HandlerFunc {
				body := padded(t, iss)
				return func(w http.ResponseWriter, r *http.Request) {
					w.(http.Flusher).Flush() // chunked: no Content-Length to check up front
					body(w, r)
				}
			},
		},
		{name: "fail/status_404", giveHandler: fixed(remoteStatus(http.StatusNotFound))},
		{name: "fail/not_json", giveHandler: fixed(remoteBody([]byte("<html>maintenance</html>")))},
		{name: "fail/no_keys_member", giveHandler: fixed(remoteBody([]byte(`{"kids":[]}`)))},
		{name: "fail/no_usable_key", giveHandler: fixed(remoteBody([]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0","kid":"h","alg":"HS256","use":"sig"}]}`)))},
		{
			name: "fail/slower_than_timeout",
			giveHandler: func(t testing.TB, iss *remoteIssuer) http.HandlerFunc {
				release := make(chan struct{})
				t.Cleanup(func() { close(release) })
				return iss.remoteHold(release)
			},
			giveTimeout: 200 * time.Millisecond,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iss := newRemoteIssuer(t, remoteIssuerOptions{})
			var log fixture.FetchLog
			rk := newTestRemoteKeys(t, iss.url(), brokertest.NewClock(fixture.Now), func(c *keys.RemoteConfig) {
				c.MaxResponseBytes = maxBytes
				c.Timeout = tt.giveTimeout
				c.OnFetch = log.Record
			})
			require.NoError(t, rk.Refresh(t.Context()))

			iss.override(tt.giveHandler(t, iss))
			require.Error(t, rk.Refresh(t.Context()))

			st := rk.Status()
			assert.NotEmpty(t, st.LastError)
			assert.Equal(t, fixture.Now, st.FetchedAt)
			assert.Equal(t, 1, st.Keys)
			assert.Equal(t, []string{fetch.ResultOK, fetch.ResultError}, log.All())
			_, err := rk.LookupKey(t.Context(), iss.kid(t, 0))
			require.NoError(t, err, "the last good set stays in use")
		})
	}
}

func TestRemoteKeysIgnoresUnusableKeys(t *testing.T) {
	good := fixture.NewKey(t, token.EdDSA)
	ec := fixture.NewKey(t, token.ES256)
	private := fixture.NewKey(t, token.EdDSA)

	doc, err := keys.MarshalJWKS([]token.PublicKey{good.Pub, ec.Pub})
	require.NoError(t, err)
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	require.NoError(t, json.Unmarshal(doc, &set))
	priv := private.Priv.(ed25519.PrivateKey)
	hmacSecret := make([]byte, 32)
	_, err = rand.Read(hmacSecret)
	require.NoError(t, err)
	set.Keys = append(set.Keys,
		map[string]any{
			"kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": private.Pub.KeyID,
			"x": base64.RawURLEncoding.EncodeToString(priv.Public().(ed25519.PublicKey)), "d": base64.RawURLEncoding.EncodeToString(priv.Seed()),
		},
		map[string]any{"kty": "oct", "use": "sig", "alg": "HS256", "kid": "hmac-key", "k": base64.RawURLEncoding.EncodeToString(hmacSecret)},
	)

	iss := newRemoteIssuer(t, remoteIssuerOptions{})
	iss.override(remoteBody([]byte(fixture.MustJSON(t, set))))
	rk := newTestRemoteKeys(t, iss.url(), brokertest.NewClock(fixture.Now), func(c *keys.RemoteConfig) {
		c.Algorithms = []token.Algorithm{token.EdDSA}
	})
	require.NoError(t, rk.Refresh(t.Context()))
	assert.Equal(t, 1, rk.Status().Keys)

	tests := []struct {
		name       string
		giveKid    string
		wantReason token.Reason
	}{
		{name: "ok/public_eddsa_key", giveKid: good.Pub.KeyID},
		{name: "fail/private_key_ignored", giveKid: private.Pub.KeyID, wantReason: token.ReasonUnknownKey},
		{name: "fail/hmac_key_ignored", giveKid: "hmac-key", wantReason: token.ReasonUnknownKey},
		{name: "fail/algorithm_not_configured", giveKid: ec.Pub.KeyID, wantReason: token.ReasonUnknownKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := rk.LookupKey(t.Context(), tt.giveKid)
			fixture.WantReason(t, err, tt.wantReason)
			if tt.wantReason == "" {
				assert.Equal(t, good.Pub.Key, key.Key)
			}
		})
	}
}

func TestRemoteKeysNotModified(t *testing.T) {
	iss := newRemoteIssuer(t, remoteIssuerOptions{etag: true})
	clock := brokertest.NewClock(fixture.Now)
	var log fixture.FetchLog
	rk := newTestRemoteKeys(t, iss.url(), clock, func(c *keys.RemoteConfig) { c.OnFetch = log.Record })
	require.NoError(t, rk.Refresh(t.Context()))

	clock.Advance(10 * time.Minute)
	require.NoError(t, rk.Refresh(t.Context()))

	assert.Equal(t, []string{fetch.ResultOK, fetch.ResultNotModified}, log.All())
	st := rk.Status()
	assert.Equal(t, clock.Now(), st.FetchedAt, "a 304 counts as a fresh fetch")
	assert.Equal(t, 1, st.Keys)
	_, err := rk.LookupKey(t.Context(), iss.kid(t, 0))
	require.NoError(t, err)
}

func TestRemoteKeysRedirects(t *testing.T) {
	tests := []struct {
		name     string
		giveURL  string
		wantErr  bool
		wantHits int64
	}{
		{name: "ok/one_redirect", giveURL: "/old", wantHits: 2},
		{name: "fail/redirect_loop", giveURL: "/loop", wantErr: true, wantHits: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iss := newRemoteIssuer(t, remoteIssuerOptions{})
			iss.override(func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/old":
					http.Redirect(w, r, "/jwks", http.StatusFound)
				case "/loop":
					http.Redirect(w, r, "/loop", http.StatusFound)
				default:
					iss.serveJWKS(w, r)
				}
			})
			rk := newTestRemoteKeys(t, iss.srv.URL+tt.giveURL, brokertest.NewClock(fixture.Now), nil)
			err := rk.Refresh(t.Context())
			if tt.wantErr {
				require.Error(t, err)
			} else {
				require.NoError(t, err)
			}
			assert.Equal(t, tt.wantHits, iss.hits.Load())
		})
	}
}

func TestRemoteKeysLookupHonoursContext(t *testing.T) {
	iss := newRemoteIssuer(t, remoteIssuerOptions{})
	release := make(chan struct{})
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	iss.override(iss.remoteHold(release))
	rk := newTestRemoteKeys(t, iss.url(), brokertest.NewClock(fixture.Now), nil)
	kid := iss.kid(t, 0)

	ctx, cancel := context.WithCancel(t.Context())
	errs := make(chan error, 1)
	go func() {
		_, err := rk.LookupKey(ctx, kid)
		errs <- err
	}()
	require.Eventually(t, func() bool { return iss.hits.Load() == 1 }, 10*time.Second, 5*time.Millisecond)
	cancel()
	fixture.WantReason(t, <-errs, token.ReasonUnavailable)

	releaseOnce.Do(func() { close(release) })
	require.Eventually(t, rk.Ready, 10*time.Second, 5*time.Millisecond,
		"the shared fetch outlives the caller that gave up on it")
	_, err := rk.LookupKey(t.Context(), kid)
	require.NoError(t, err)
	assert.EqualValues(t, 1, iss.hits.Load())
}

// TestRemoteKeysRefreshLandedWhileWaiting pauses a lookup of a new kid after
// it found the cached set wanting, lets another refresh land meanwhile, and
// checks that the lookup uses that refresh instead of fetching again.
func TestRemoteKeysRefreshLandedWhileWaiting(t *testing.T) {
	iss := newRemoteIssuer(t, remoteIssuerOptions{})
	clock := brokertest.NewClock(fixture.Now)
	var pause atomic.Bool
	paused, resume := make(chan struct{}), make(chan struct{})
	rk := newTestRemoteKeys(t, iss.url(), clock, func(c *keys.RemoteConfig) {
		c.Now = func() time.Time {
			if pause.CompareAndSwap(true, false) {
				close(paused)
				<-resume
			}
			return clock.Now()
		}
	})
	require.NoError(t, rk.Refresh(t.Context()))

	iss.addKeyring(t, token.ES256)
	newKid := iss.kid(t, 1)
	pause.Store(true)
	type result struct {
		key token.PublicKey
		err error
	}
	got := make(chan result, 1)
	go func() {
		key, err := rk.LookupKey(context.Background(), newKid)
		got <- result{key, err}
	}()
	<-paused
	require.NoError(t, rk.Refresh(t.Context()))
	require.EqualValues(t, 2, iss.hits.Load())
	close(resume)

	r := <-got
	require.NoError(t, r.err)
	assert.Equal(t, newKid, r.key.KeyID)
	assert.EqualValues(t, 2, iss.hits.Load(), "the lookup used the refresh that landed while it waited")
}

func TestRemoteKeysConcurrentLookupAndRefresh(t *testing.T) {
	iss := newRemoteIssuer(t, remoteIssuerOptions{})
	clock := brokertest.NewClock(fixture.Now)
	rk := newTestRemoteKeys(t, iss.url(), clock, nil)
	require.NoError(t, rk.Refresh(t.Context()))
	kid := iss.kid(t, 0)

	var knownFailures atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				if _, err := rk.LookupKey(context.Background(), kid); err != nil {
					knownFailures.Add(1)
				}
			}
		})
	}
	for g := range 4 {
		wg.Go(func() {
			for i := range 50 {
				_, err := rk.LookupKey(context.Background(), fmt.Sprintf("unknown-%d-%d", g, i))
				if r := token.ReasonOf(err); r != token.ReasonUnknownKey {
					t.Errorf("unknown kid: reason %q, want %q", r, token.ReasonUnknownKey)
				}
			}
		})
	}
	for range 4 {
		wg.Go(func() {
			for range 20 {
				if err := rk.Refresh(context.Background()); err != nil {
					t.Errorf("Refresh: %v", err)
				}
				_ = rk.Status()
				_ = rk.Ready()
			}
		})
	}
	wg.Go(func() {
		for range 50 {
			clock.Advance(time.Second)
		}
	})
	wg.Wait()
	assert.Zero(t, knownFailures.Load())
}

func TestRemoteKeysStart(t *testing.T) {
	iss := newRemoteIssuer(t, remoteIssuerOptions{})
	iss.override(remoteStatus(http.StatusBadGateway))
	rk := newTestRemoteKeys(t, iss.url(), brokertest.NewClock(time.Now()), func(c *keys.RemoteConfig) {
		c.Now = time.Now
		c.MinRefresh = 20 * time.Millisecond
		c.MaxRefresh = 20 * time.Millisecond
	})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	rk.Start(ctx)
	rk.Start(ctx)
	require.Eventually(t, func() bool { return iss.hits.Load() >= 3 }, 10*time.Second, 5*time.Millisecond,
		"the loop fetches at once and retries after failures")
	assert.False(t, rk.Ready())
	assert.NotEmpty(t, rk.Status().LastError)

	iss.restore()
	require.Eventually(t, rk.Ready, 10*time.Second, 5*time.Millisecond, "the loop recovers")
	hits := iss.hits.Load()
	require.Eventually(t, func() bool { return iss.hits.Load() >= hits+3 }, 10*time.Second, 5*time.Millisecond,
		"the loop refreshes before the set expires")
	_, err := rk.LookupKey(t.Context(), iss.kid(t, 0))
	require.NoError(t, err)

	cancel()
}
