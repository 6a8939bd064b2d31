package revocation_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/broker/brokertest"
	"github.com/handoffbroker/handoff/broker/internal/fixture"
	"github.com/handoffbroker/handoff/broker/revocation"
	"github.com/handoffbroker/handoff/broker/token"
)

func newTestRevocationState(t testing.TB, dir string, clock *brokertest.Clock) *revocation.State {
	t.Helper()
	s, err := revocation.NewState(revocation.StateConfig{Dir: dir, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tokenRef describes a token of alice issued 10 s before testNow, signed by
// "kid-1", like validClaims.
func tokenRef(jti string) token.TokenRef {
	iat := fixture.Now.Add(-10 * time.Second)
	return token.TokenRef{Issuer: fixture.Issuer, Subject: "alice", ID: jti, KeyID: "kid-1", IssuedAt: iat, ExpiresAt: iat.Add(time.Minute)}
}

// wantRevoked fails t unless err is a ReasonRevoked rejection naming claim,
// or nil when claim is "".
func wantRevoked(t testing.TB, err error, claim string) {
	t.Helper()
	if claim == "" {
		fixture.WantReason(t, err, "")
		return
	}
	fixture.WantReason(t, err, token.ReasonRevoked)
	var be *token.Error
	if errors.As(err, &be); be.Claim != claim {
		t.Fatalf("revoked for claim %q, want %q", be.Claim, claim)
	}
}

func TestRevocationState_check(t *testing.T) {
	revokeAll := func(t testing.TB, s *revocation.State) {
		t.Helper()
		for _, err := range []error{
			s.RevokeToken("jti-revoked", fixture.Now.Add(50*time.Second)),
			// alice signed out everywhere 5 s ago.
			s.RevokeSubject("alice", fixture.Now.Add(-5*time.Second), fixture.Now.Add(12*time.Minute)),
			s.RevokeKey("kid-compromised", fixture.Now.Add(24*time.Hour)),
		} {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		name      string
		giveRef   func(r *token.TokenRef)
		giveAfter time.Duration // clock advance before the check
		wantClaim string        // "" means not revoked
	}{
		{name: "fail/jti_revoked", giveRef: func(r *token.TokenRef) { r.ID = "jti-revoked" }, wantClaim: "jti"},
		{name: "fail/subject_token_before_nbf", wantClaim: "sub"},
		{name: "ok/subject_token_after_nbf", giveRef: func(r *token.TokenRef) { r.IssuedAt = fixture.Now }},
		{name: "ok/other_subject", giveRef: func(r *token.TokenRef) { r.Subject = "bob" }},
		{name: "fail/key_revoked", giveRef: func(r *token.TokenRef) { r.Subject, r.KeyID = "bob", "kid-compromised" }, wantClaim: "kid"},
		{
			name:      "fail/jti_kept_for_leeway",
			giveRef:   func(r *token.TokenRef) { r.Subject, r.ID = "bob", "jti-revoked" },
			giveAfter: 50*time.Second + token.MaxLeeway - time.Second,
			wantClaim: "jti",
		},
		{
			name:      "ok/jti_entry_expired",
			giveRef:   func(r *token.TokenRef) { r.Subject, r.ID = "bob", "jti-revoked" },
			giveAfter: 50*time.Second + token.MaxLeeway,
		},
		{name: "ok/subject_entry_expired", giveAfter: 12 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := brokertest.NewClock(fixture.Now)
			s := newTestRevocationState(t, "", clock)
			revokeAll(t, s)
			ref := tokenRef("jti-other")
			if tt.giveRef != nil {
				tt.giveRef(&ref)
			}
			clock.Advance(tt.giveAfter)
			wantRevoked(t, s.CheckRevoked(context.Background(), ref), tt.wantClaim)
		})
	}
}

// TestRevocationState_subjectSameSecond checks that a token minted in
// the second of a "sign out everywhere", before it, is revoked: iat has
// one-second resolution. It holds when the sign-out sits exactly on a
// second too, where a token minted at that instant has iat equal to it.
func TestRevocationState_subjectSameSecond(t *testing.T) {
	tests := []struct {
		name      string
		giveNbf   time.Time // the sign-out instant
		giveIat   time.Time
		wantClaim string // "" means not revoked
	}{
		{name: "fail/minted_earlier_in_the_second", giveNbf: fixture.Now.Add(700 * time.Millisecond), giveIat: fixture.Now, wantClaim: "sub"},
		{name: "fail/minted_at_the_instant_on_a_whole_second", giveNbf: fixture.Now, giveIat: fixture.Now, wantClaim: "sub"},
		{name: "fail/minted_the_second_before", giveNbf: fixture.Now, giveIat: fixture.Now.Add(-time.Second), wantClaim: "sub"},
		{name: "ok/minted_the_next_second", giveNbf: fixture.Now.Add(700 * time.Millisecond), giveIat: fixture.Now.Add(time.Second)},
		{name: "ok/minted_the_next_second_after_a_whole_second", giveNbf: fixture.Now, giveIat: fixture.Now.Add(time.Second)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := brokertest.NewClock(tt.giveNbf)
			s := newTestRevocationState(t, "", clock)
			if err := s.RevokeSubject("alice", clock.Now(), clock.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			ref := tokenRef("jti-1")
			ref.IssuedAt = tt.giveIat
			wantRevoked(t, s.CheckRevoked(context.Background(), ref), tt.wantClaim)
			if got, want := s.SubjectNotBefore("alice"), fixture.Now.Add(time.Second); !got.Equal(want) {
				t.Fatalf("SubjectNotBefore = %v, want %v", got, want)
			}
			if got := s.SubjectNotBefore("bob"); !got.IsZero() {
				t.Fatalf("SubjectNotBefore(bob) = %v, want zero", got)
			}
		})
	}
}

func TestRevocationState_snapshotDropsExpired(t *testing.T) {
	clock := brokertest.NewClock(fixture.Now)
	s := newTestRevocationState(t, t.TempDir(), clock)
	if err := s.RevokeToken("jti-short", fixture.Now); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeToken("jti-long", fixture.Now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := len(s.Snapshot().Tokens); got != 2 {
		t.Fatalf("snapshot has %d tokens, want 2", got)
	}
	clock.Advance(token.MaxLeeway)
	snap := s.Snapshot()
	if len(snap.Tokens) != 1 || snap.Tokens[0].ID != "jti-long" {
		t.Fatalf("snapshot tokens = %+v, want only jti-long", snap.Tokens)
	}
	n, err := s.Prune()
	if err != nil || n != 1 {
		t.Fatalf("Prune = %d, %v; want 1, nil", n, err)
	}
}

// TestRevocationState_sharedDirectory checks what several SERVER1
// instances and a restart see through one state directory.
func TestRevocationState_sharedDirectory(t *testing.T) {
	dir := t.TempDir()
	clock := brokertest.NewClock(fixture.Now)
	a := newTestRevocationState(t, dir, clock)
	b := newTestRevocationState(t, dir, clock)
	ctx := context.Background()

	if err := a.RevokeToken("jti-1", fixture.Now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := b.RevokeSubject("alice", fixture.Now, fixture.Now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*revocation.State{"a": a, "b": b, "restarted": newTestRevocationState(t, dir, clock)} {
		if err := s.Reload(); err != nil {
			t.Fatal(err)
		}
		ref := tokenRef("jti-1")
		ref.Subject = "bob"
		wantRevoked(t, s.CheckRevoked(ctx, ref), "jti")
		wantRevoked(t, s.CheckRevoked(ctx, tokenRef("jti-2")), "sub")
		if got := s.Snapshot(); len(got.Tokens) != 1 || len(got.Subjects) != 1 {
			t.Fatalf("%s: snapshot = %+v, want one token and one subject", name, got)
		}
	}

	clock.Advance(time.Minute + token.MaxLeeway)
	if n, err := a.Prune(); err != nil || n != 1 {
		t.Fatalf("Prune = %d, %v; want 1, nil", n, err)
	}
	if err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	if n, err := b.Prune(); err != nil || n != 0 {
		t.Fatalf("Prune after another instance pruned = %d, %v; want 0, nil", n, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("state directory holds %d files, want 1", len(entries))
	}
}

func TestRevocationState_corruptFileFailsClosed(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/jti-corrupt.json", []byte(`{"kind":"jti","value":"","exp":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := revocation.NewState(revocation.StateConfig{Dir: dir}); err == nil {
		t.Fatal("a state directory holding an unreadable entry was accepted")
	}
}

func TestRevocationState_full(t *testing.T) {
	clock := brokertest.NewClock(fixture.Now)
	s, err := revocation.NewState(revocation.StateConfig{MaxEntries: 2, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	for i, exp := range []time.Duration{time.Second, time.Hour} {
		if err := s.RevokeToken(fmt.Sprintf("jti-%d", i), fixture.Now.Add(exp)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RevokeToken("jti-2", fixture.Now.Add(time.Hour)); !errors.Is(err, revocation.ErrFull) {
		t.Fatalf("RevokeToken on a full state = %v, want ErrRevocationsFull", err)
	}
	clock.Advance(time.Second + token.MaxLeeway)
	if err := s.RevokeToken("jti-2", fixture.Now.Add(time.Hour)); err != nil {
		t.Fatalf("RevokeToken once an entry expired = %v, want success", err)
	}
	wantRevoked(t, s.CheckRevoked(context.Background(), tokenRef("jti-1")), "jti")
}

func TestRevocationState_concurrent(t *testing.T) {
	s := newTestRevocationState(t, t.TempDir(), brokertest.NewClock(fixture.Now))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 20 {
				jti := fmt.Sprintf("jti-%d-%d", i, j)
				if err := s.RevokeToken(jti, fixture.Now.Add(time.Minute)); err != nil {
					t.Error(err)
					return
				}
				if err := s.CheckRevoked(context.Background(), tokenRef(jti)); token.ReasonOf(err) != token.ReasonRevoked {
					t.Errorf("just revoked %s: CheckRevoked = %v", jti, err)
				}
				_ = s.Snapshot()
			}
		})
	}
	wg.Wait()
	if got := len(s.Snapshot().Tokens); got != 160 {
		t.Fatalf("snapshot has %d tokens, want 160", got)
	}
}

func TestRevocationPublisher(t *testing.T) {
	clock := brokertest.NewClock(fixture.Now)
	ring, m := fixture.NewRevocationIssuer(t, clock)
	s := newTestRevocationState(t, "", clock)
	p, err := revocation.NewPublisher(s, m, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	current := func() (string, string) {
		t.Helper()
		tok, etag, err := p.Current()
		if err != nil {
			t.Fatal(err)
		}
		return tok, etag
	}
	tok1, etag1 := current()
	if tok, etag := current(); tok != tok1 || etag != etag1 {
		t.Fatal("an unchanged state was signed again")
	}
	if err := s.RevokeToken("jti-1", fixture.Now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	tok2, etag2 := current()
	if etag2 == etag1 {
		t.Fatal("a revocation did not change the ETag")
	}
	l := verifyPublished(t, ring, clock, tok2)
	if len(l.Tokens) != 1 || l.Tokens[0].ID != "jti-1" {
		t.Fatalf("published list tokens = %+v, want jti-1", l.Tokens)
	}
	clock.Advance(30 * time.Second)
	if _, etag3 := current(); etag3 == etag2 {
		t.Fatal("a list half-way through its lifetime was not signed again")
	}
}

// TestRevocationPublisher_otherProcess checks that the list carries an
// entry another SERVER1 instance wrote to the shared directory a moment ago.
func TestRevocationPublisher_otherProcess(t *testing.T) {
	dir := t.TempDir()
	clock := brokertest.NewClock(fixture.Now)
	ring, m := fixture.NewRevocationIssuer(t, clock)
	p, err := revocation.NewPublisher(newTestRevocationState(t, dir, clock), m, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.Current(); err != nil {
		t.Fatal(err)
	}
	if err := newTestRevocationState(t, dir, clock).RevokeToken("jti-elsewhere", fixture.Now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	tok, _, err := p.Current()
	if err != nil {
		t.Fatal(err)
	}
	l := verifyPublished(t, ring, clock, tok)
	if len(l.Tokens) != 1 || l.Tokens[0].ID != "jti-elsewhere" {
		t.Fatalf("list tokens = %+v, want jti-elsewhere", l.Tokens)
	}
}

// verifyPublished verifies the list tok that the publisher signed with a
// key of ring, on clock, as a relying party would.
func verifyPublished(t testing.TB, ring token.KeySource, clock *brokertest.Clock, tok string) *token.RevocationList {
	t.Helper()
	v := fixture.NewListVerifier(t, token.RevocationListVerifierConfig{Issuers: []token.TrustedIssuer{{Issuer: fixture.Issuer, Keys: ring}}, Now: clock.Now})
	l, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	return l
}
