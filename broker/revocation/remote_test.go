package revocation_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/broker/brokertest"
	"github.com/handoffbroker/handoff/broker/fetch"
	"github.com/handoffbroker/handoff/broker/internal/fixture"
	"github.com/handoffbroker/handoff/broker/keys"
	"github.com/handoffbroker/handoff/broker/revocation"
	"github.com/handoffbroker/handoff/broker/token"
)

// listIssuer is the revocation list endpoint of a test issuer
// (brokertest.Issuer, named fixture.Issuer), with the faults the kit does
// not inject and a log of each request's If-None-Match and answer.
type listIssuer struct {
	kit   *brokertest.Issuer
	srv   *httptest.Server
	ring  *keys.Keyring
	mint  *token.Minter
	state *revocation.State

	only304  atomic.Bool            // answer 304 to everything, as an on-path attacker might
	override atomic.Pointer[string] // a body to serve instead of the list
	mu       sync.Mutex
	ifNone   []string // If-None-Match of each request
	served   []int    // status of each response
}

func newListIssuer(t testing.TB, clock *brokertest.Clock) *listIssuer {
	t.Helper()
	kit := brokertest.StartIssuer(t, brokertest.WithIssuer(fixture.Issuer), brokertest.WithNow(clock.Now),
		brokertest.WithRevocationListTTL(time.Minute))
	li := &listIssuer{kit: kit, ring: kit.Keyring(), mint: kit.Minter(), state: kit.Revocations()}
	li.srv = httptest.NewServer(http.HandlerFunc(li.serve))
	t.Cleanup(li.srv.Close)
	return li
}

// setDown makes the list answer 503 while down is true.
func (li *listIssuer) setDown(down bool) { li.kit.SetDown(brokertest.RevocationsPath, down) }

func (li *listIssuer) serve(w http.ResponseWriter, r *http.Request) {
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	defer func() {
		li.mu.Lock()
		li.ifNone = append(li.ifNone, r.Header.Get("If-None-Match"))
		li.served = append(li.served, rec.status)
		li.mu.Unlock()
	}()
	if li.only304.Load() {
		rec.WriteHeader(http.StatusNotModified)
		return
	}
	if body := li.override.Load(); body != nil {
		rec.Write([]byte(*body))
		return
	}
	r.URL.Path = brokertest.RevocationsPath
	li.kit.Handler().ServeHTTP(rec, r)
}

// statusRecorder remembers the status written through it.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (li *listIssuer) lastRequest() (ifNoneMatch string, status int) {
	li.mu.Lock()
	defer li.mu.Unlock()
	return li.ifNone[len(li.ifNone)-1], li.served[len(li.served)-1]
}

func newTestRemoteRevocations(t testing.TB, li *listIssuer, clock *brokertest.Clock, give func(*revocation.RemoteConfig)) (*revocation.Remote, *fixture.FetchLog) {
	t.Helper()
	results := &fixture.FetchLog{}
	cfg := revocation.RemoteConfig{
		URL: li.srv.URL, Keys: li.ring, Issuer: fixture.Issuer, Now: clock.Now, OnFetch: results.Record,
	}
	if give != nil {
		give(&cfg)
	}
	r, err := revocation.NewRemote(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r, results
}

func mustRefresh(t testing.TB, r *revocation.Remote) {
	t.Helper()
	if err := r.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestRemoteRevocations_pollAndETag(t *testing.T) {
	ctx := context.Background()
	clock := brokertest.NewClock(fixture.Now)
	li := newListIssuer(t, clock)
	r, results := newTestRemoteRevocations(t, li, clock, nil)

	mustRefresh(t, r)
	if results.Last() != fetch.ResultOK || !r.Ready() {
		t.Fatalf("first poll: result %q, ready %v", results.Last(), r.Ready())
	}
	wantRevoked(t, r.CheckRevoked(ctx, tokenRef("jti-1")), "")

	clock.Advance(5 * time.Second)
	mustRefresh(t, r)
	if ifNone, status := li.lastRequest(); ifNone == "" || status != http.StatusNotModified {
		t.Fatalf("unchanged list: If-None-Match %q, status %d; want a conditional request answered 304", ifNone, status)
	}
	if results.Last() != fetch.ResultNotModified {
		t.Fatalf("OnFetch = %q, want %q", results.Last(), fetch.ResultNotModified)
	}
	if got := r.Status().FetchedAt; !got.Equal(clock.Now()) {
		t.Fatalf("a 304 did not refresh the list's freshness: FetchedAt %v", got)
	}

	if err := li.state.RevokeToken("jti-1", fixture.Now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := li.state.RevokeSubject("bob", fixture.Now, fixture.Now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	clock.Advance(5 * time.Second)
	mustRefresh(t, r)
	if results.Last() != fetch.ResultOK {
		t.Fatalf("changed list: OnFetch = %q, want %q", results.Last(), fetch.ResultOK)
	}
	wantRevoked(t, r.CheckRevoked(ctx, tokenRef("jti-1")), "jti")
	wantRevoked(t, r.CheckRevoked(ctx, tokenRef("jti-2")), "")
	// Signed out exactly on a second: tokens issued in it are revoked too.
	if got, want := r.SubjectNotBefore("bob"), fixture.Now.Add(time.Second); !got.Equal(want) {
		t.Fatalf("SubjectNotBefore(bob) = %v, want %v", got, want)
	}
	if st := r.Status(); st.Entries != 2 || st.LastError != "" {
		t.Fatalf("Status = %+v, want 2 entries and no error", st)
	}
}

func TestRemoteRevocations_failClosed(t *testing.T) {
	ctx := context.Background()
	clock := brokertest.NewClock(fixture.Now)
	li := newListIssuer(t, clock)
	r, results := newTestRemoteRevocations(t, li, clock, nil)

	fixture.WantReason(t, r.CheckRevoked(ctx, tokenRef("jti-1")), token.ReasonUnavailable) // never fetched
	mustRefresh(t, r)
	fixture.WantReason(t, r.CheckRevoked(ctx, tokenRef("jti-1")), "")

	li.setDown(true)
	clock.Advance(30 * time.Second)
	if err := r.Refresh(ctx); err == nil {
		t.Fatal("Refresh against a failing issuer succeeded")
	}
	if results.Last() != fetch.ResultError || r.Status().LastError == "" {
		t.Fatalf("failed poll not reported: OnFetch %q, status %+v", results.Last(), r.Status())
	}
	// Within MaxStale (60s) the held list still answers.
	fixture.WantReason(t, r.CheckRevoked(ctx, tokenRef("jti-1")), "")

	clock.Advance(31 * time.Second)
	fixture.WantReason(t, r.CheckRevoked(ctx, tokenRef("jti-1")), token.ReasonUnavailable)
	if r.Ready() {
		t.Fatal("Ready with a stale list")
	}

	li.setDown(false)
	mustRefresh(t, r)
	fixture.WantReason(t, r.CheckRevoked(ctx, tokenRef("jti-1")), "")
	if !r.Ready() {
		t.Fatal("not Ready after recovering")
	}
}

func TestRemoteRevocations_failOpen(t *testing.T) {
	ctx := context.Background()
	clock := brokertest.NewClock(fixture.Now)
	li := newListIssuer(t, clock)
	r, _ := newTestRemoteRevocations(t, li, clock, func(cfg *revocation.RemoteConfig) { cfg.FailOpen = true })
	fixture.WantReason(t, r.CheckRevoked(ctx, tokenRef("jti-1")), "")
	if err := li.state.RevokeToken("jti-1", fixture.Now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	mustRefresh(t, r)
	clock.Advance(2 * time.Minute)
	// Stale, but what the held list says still counts.
	wantRevoked(t, r.CheckRevoked(ctx, tokenRef("jti-1")), "jti")
	fixture.WantReason(t, r.CheckRevoked(ctx, tokenRef("jti-2")), "")
}

func TestRemoteRevocations_HeldRevocation(t *testing.T) {
	tests := []struct {
		name      string
		giveEntry func(s *revocation.State) error
		giveRef   func(token.TokenRef) token.TokenRef
		giveAge   time.Duration // clock advance after the poll
		wantClaim string
	}{
		{name: "ok/nothing_listed", giveEntry: func(*revocation.State) error { return nil }},
		{name: "ok/other_token_key_and_subject", giveEntry: func(s *revocation.State) error {
			return errors.Join(s.RevokeToken("jti-2", fixture.Now.Add(time.Minute)),
				s.RevokeKey("kid-2", fixture.Now.Add(time.Hour)),
				s.RevokeSubject("bob", fixture.Now, fixture.Now.Add(time.Hour)))
		}},
		{name: "fail/key_revoked", giveEntry: func(s *revocation.State) error {
			return s.RevokeKey("kid-1", fixture.Now.Add(time.Hour))
		}, wantClaim: "kid"},
		{name: "fail/jti_revoked", giveEntry: func(s *revocation.State) error {
			return s.RevokeToken("jti-1", fixture.Now.Add(time.Minute))
		}, wantClaim: "jti"},
		{name: "fail/subject_signed_out", giveEntry: func(s *revocation.State) error {
			return s.RevokeSubject("alice", fixture.Now, fixture.Now.Add(time.Hour))
		}, wantClaim: "sub"},
		{name: "ok/issued_after_sign_out", giveEntry: func(s *revocation.State) error {
			return s.RevokeSubject("alice", fixture.Now, fixture.Now.Add(time.Hour))
		}, giveRef: func(r token.TokenRef) token.TokenRef { r.IssuedAt = fixture.Now.Add(time.Second); return r }},
		{name: "fail/stale_list_still_counts", giveEntry: func(s *revocation.State) error {
			return s.RevokeKey("kid-1", fixture.Now.Add(time.Hour))
		}, giveAge: 2 * time.Minute, wantClaim: "kid"},
		{name: "ok/other_issuer", giveEntry: func(s *revocation.State) error {
			return s.RevokeKey("kid-1", fixture.Now.Add(time.Hour))
		}, giveRef: func(r token.TokenRef) token.TokenRef { r.Issuer = "https://other.example"; return r }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := brokertest.NewClock(fixture.Now)
			li := newListIssuer(t, clock)
			r, _ := newTestRemoteRevocations(t, li, clock, nil)
			ref := tokenRef("jti-1")
			if tt.giveRef != nil {
				ref = tt.giveRef(ref)
			}
			wantRevoked(t, r.HeldRevocation(ref), "") // no list held yet
			if err := tt.giveEntry(li.state); err != nil {
				t.Fatal(err)
			}
			mustRefresh(t, r)
			clock.Advance(tt.giveAge)

			wantRevoked(t, r.HeldRevocation(ref), tt.wantClaim)
		})
	}
}

func TestRemoteRevocations_refusedLists(t *testing.T) {
	tests := []struct {
		name string
		// giveBody returns the body the issuer serves after a first good poll.
		giveBody func(t testing.TB, li *listIssuer, clock *brokertest.Clock) string
	}{
		{
			name: "fail/handoff_token",
			giveBody: func(t testing.TB, li *listIssuer, _ *brokertest.Clock) string {
				minted, err := li.mint.Mint(fixture.MintRequest())
				if err != nil {
					t.Fatal(err)
				}
				return minted.Token
			},
		},
		{
			name: "fail/foreign_key",
			giveBody: func(t testing.TB, _ *listIssuer, clock *brokertest.Clock) string {
				_, other := fixture.NewRevocationIssuer(t, clock)
				return fixture.SignList(t, other, token.RevocationList{})
			},
		},
		{
			name: "fail/rollback_to_older_list",
			giveBody: func(t testing.TB, li *listIssuer, clock *brokertest.Clock) string {
				old := brokertest.NewClock(clock.Now().Add(-10 * time.Second))
				return fixture.SignList(t, fixture.NewMinter(t, li.ring, old), token.RevocationList{})
			},
		},
		{
			name:     "fail/garbage",
			giveBody: func(testing.TB, *listIssuer, *brokertest.Clock) string { return "not a token" },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			clock := brokertest.NewClock(fixture.Now)
			li := newListIssuer(t, clock)
			if err := li.state.RevokeToken("jti-1", fixture.Now.Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
			r, results := newTestRemoteRevocations(t, li, clock, nil)
			mustRefresh(t, r)
			clock.Advance(5 * time.Second)
			body := tt.giveBody(t, li, clock)
			li.override.Store(&body)
			if err := r.Refresh(ctx); err == nil {
				t.Fatal("a bad list was accepted")
			}
			if results.Last() != fetch.ResultError {
				t.Fatalf("OnFetch = %q, want %q", results.Last(), fetch.ResultError)
			}
			// The good list is kept.
			wantRevoked(t, r.CheckRevoked(ctx, tokenRef("jti-1")), "jti")
		})
	}
}

// TestRemoteRevocations_notModifiedForExpiredList checks that an unsigned
// 304 cannot keep a list alive past its own "exp".
func TestRemoteRevocations_notModifiedForExpiredList(t *testing.T) {
	ctx := context.Background()
	clock := brokertest.NewClock(fixture.Now)
	li := newListIssuer(t, clock)
	r, _ := newTestRemoteRevocations(t, li, clock, nil)
	mustRefresh(t, r)
	li.only304.Store(true)
	clock.Advance(30 * time.Second)
	mustRefresh(t, r) // the list (1 min) is still valid
	clock.Advance(time.Minute)
	if err := r.Refresh(ctx); err == nil {
		t.Fatal("a 304 refreshed an expired list")
	}
	li.only304.Store(false)
	mustRefresh(t, r)
	if ifNone, status := li.lastRequest(); ifNone != "" || status != http.StatusOK {
		t.Fatalf("after a 304 for an expired list: If-None-Match %q, status %d; want an unconditional 200", ifNone, status)
	}
	fixture.WantReason(t, r.CheckRevoked(ctx, tokenRef("jti-1")), "")
}

func TestRemoteRevocations_otherIssuer(t *testing.T) {
	clock := brokertest.NewClock(fixture.Now)
	li := newListIssuer(t, clock)
	r, _ := newTestRemoteRevocations(t, li, clock, nil)
	mustRefresh(t, r)
	ref := tokenRef("jti-1")
	ref.Issuer = "https://other.test"
	fixture.WantReason(t, r.CheckRevoked(context.Background(), ref), token.ReasonUnavailable)
}

// memorySharer is an in-memory RevocationSharer, standing in for the
// replicas' shared store.
type memorySharer struct {
	mu   sync.Mutex
	keys map[string]time.Time
	now  func() time.Time
}

func (m *memorySharer) MarkRevoked(_ context.Context, key string, until time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.keys[key] = until
	return nil
}

func (m *memorySharer) IsRevoked(_ context.Context, key string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	until, ok := m.keys[key]
	return ok && m.now().Before(until), nil
}

func TestRemoteRevocations_shared(t *testing.T) {
	ctx := context.Background()
	clock := brokertest.NewClock(fixture.Now)
	li := newListIssuer(t, clock)
	shared := &memorySharer{keys: make(map[string]time.Time), now: clock.Now}
	withShared := func(cfg *revocation.RemoteConfig) { cfg.Shared = shared }
	fast, _ := newTestRemoteRevocations(t, li, clock, withShared)
	slow, _ := newTestRemoteRevocations(t, li, clock, withShared)
	mustRefresh(t, fast)
	mustRefresh(t, slow)

	if err := li.state.RevokeToken("jti-1", fixture.Now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	mustRefresh(t, fast)
	// slow has not polled since, but learns it through the shared store.
	wantRevoked(t, slow.CheckRevoked(ctx, tokenRef("jti-1")), "jti")
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if got := slices.Collect(maps.Keys(shared.keys)); !slices.Equal(got, []string{revocation.SharedKey(fixture.Issuer, "jti-1")}) {
		t.Fatalf("shared keys = %v", got)
	}
}

// TestRemoteRevocations_verifier runs the whole path: a token the issuer
// revoked is refused by Verify once the list arrived.
func TestRemoteRevocations_verifier(t *testing.T) {
	ctx := context.Background()
	clock := brokertest.NewClock(fixture.Now)
	li := newListIssuer(t, clock)
	r, _ := newTestRemoteRevocations(t, li, clock, nil)
	mustRefresh(t, r)
	cfg := fixture.VerifierConfig(t, li.ring.PublishedKeys()...)
	cfg.Now, cfg.Revocation = clock.Now, r
	v := fixture.NewVerifier(t, cfg)

	first, err := li.mint.Mint(fixture.MintRequest())
	if err != nil {
		t.Fatal(err)
	}
	second, err := li.mint.Mint(fixture.MintRequest())
	if err != nil {
		t.Fatal(err)
	}
	if err := li.state.RevokeToken(second.ID, second.ExpiresAt); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	mustRefresh(t, r)
	if _, err := v.Verify(ctx, first.Token, token.Expect{AnyTask: true}); err != nil {
		t.Fatalf("unrevoked token: %v", err)
	}
	_, err = v.Verify(ctx, second.Token, token.Expect{AnyTask: true})
	wantRevoked(t, err, "jti")
}

func TestNewRemoteRevocations_config(t *testing.T) {
	_, err := revocation.NewRemote(revocation.RemoteConfig{
		URL: "ftp://issuer.test/revocations", Interval: time.Minute, MaxStale: time.Second,
	})
	// URL, Keys, Issuer, MaxStale < Interval, all at once.
	if got := len(fixture.JoinedErrors(err)); got != 4 {
		t.Fatalf("got %d problems (%v), want 4", got, err)
	}
}

// acceptAllReplay is a ReplayStore that never refuses, so a benchmark can
// verify one token over and over.
type acceptAllReplay struct{}

func (acceptAllReplay) Consume(context.Context, string, time.Time) error { return nil }

// BenchmarkVerifyWithRevocation measures what a revocation check adds to
// Verify: "baseline" has none, "state" a revocation.State of 1,000 entries,
// "remote" a revocation.Remote holding a list of 10,000; "ed25519_raw" is
// the bare signature check every verification pays, and the *_check_only
// cases time CheckRevoked alone.
func BenchmarkVerifyWithRevocation(b *testing.B) {
	ctx := context.Background()
	clock := brokertest.NewClock(fixture.Now)
	li := newListIssuer(b, clock)
	for i := range 1_000 {
		if err := li.state.RevokeToken(fmt.Sprintf("state-%d", i), fixture.Now.Add(time.Hour)); err != nil {
			b.Fatal(err)
		}
	}
	big := token.RevocationList{}
	for i := range 10_000 {
		big.Tokens = append(big.Tokens, token.RevokedToken{ID: fmt.Sprintf("remote-%d", i), ExpiresAt: fixture.Now.Add(time.Hour)})
	}
	body := fixture.SignList(b, li.mint, big)
	li.override.Store(&body)
	remote, _ := newTestRemoteRevocations(b, li, clock, nil)
	mustRefresh(b, remote)
	if remote.Status().Entries != 10_000 {
		b.Fatalf("remote holds %d entries", remote.Status().Entries)
	}
	minted, err := li.mint.Mint(fixture.MintRequest())
	if err != nil {
		b.Fatal(err)
	}

	for _, bc := range []struct {
		name string
		rev  token.RevocationChecker
	}{
		{name: "baseline"},
		{name: "state", rev: li.state},
		{name: "remote", rev: remote},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := fixture.VerifierConfig(b, li.ring.PublishedKeys()...)
			cfg.Now, cfg.Replay, cfg.Revocation = clock.Now, acceptAllReplay{}, bc.rev
			v := fixture.NewVerifier(b, cfg)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(ctx, minted.Token, token.Expect{AnyTask: true}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	ref := token.TokenRef{Issuer: fixture.Issuer, Subject: "alice", ID: minted.ID, KeyID: minted.KeyID, IssuedAt: minted.IssuedAt, ExpiresAt: minted.ExpiresAt}
	for _, bc := range []struct {
		name string
		rev  token.RevocationChecker
	}{
		{name: "state_check_only", rev: li.state},
		{name: "remote_check_only", rev: remote},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := bc.rev.CheckRevoked(ctx, ref); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("ed25519_raw", func(b *testing.B) {
		pub, priv, err := ed25519.GenerateKey(nil)
		if err != nil {
			b.Fatal(err)
		}
		msg := []byte(minted.Token)
		sig := ed25519.Sign(priv, msg)
		for b.Loop() {
			if !ed25519.Verify(pub, msg, sig) {
				b.Fatal("bad signature")
			}
		}
	})
}
