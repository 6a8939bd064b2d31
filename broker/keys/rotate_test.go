package keys_test

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/broker/brokertest"
	"github.com/handoffbroker/handoff/broker/internal/fixture"
	"github.com/handoffbroker/handoff/broker/keys"
	"github.com/handoffbroker/handoff/broker/token"
)

// jwksKids returns the kids the keyring's JWKS document publishes, sorted.
func jwksKids(t testing.TB, k *keys.Keyring) []string {
	t.Helper()
	doc, err := k.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	pubs, err := keys.ParseJWKS(doc)
	if err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, pk := range pubs {
		kids = append(kids, pk.KeyID)
	}
	slices.Sort(kids)
	return kids
}

func sortedOf(ids ...string) []string {
	out := slices.Clone(ids)
	slices.Sort(out)
	return out
}

// TestKeyringRotation walks one rotation through every state, on two
// keyrings sharing a directory: the one that rotated and one that only
// reloads, which must agree on the signing key and the JWKS at each stage.
func TestKeyringRotation(t *testing.T) {
	const (
		publishFor = 5 * time.Minute
		retain     = 12 * time.Minute
	)
	dir := t.TempDir()
	clock := brokertest.NewClock(fixture.Now)
	open := func() *keys.Keyring {
		k, err := keys.Open(keys.KeyringConfig{Dir: dir, RetainRetired: retain, Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	a, b := open(), open()
	old := fixture.Generate(t, a, token.EdDSA, time.Time{})
	rotated, err := a.Rotate(token.EdDSA, publishFor)
	if err != nil {
		t.Fatal(err)
	}
	if !rotated.ActivatesAt.Equal(fixture.Now.Add(publishFor)) || rotated.State != keys.Next {
		t.Fatalf("Rotate = %+v, want a next key activating at %v", rotated, fixture.Now.Add(publishFor))
	}
	next := rotated.ID

	tests := []struct {
		name       string
		giveAt     time.Duration // since the rotation
		wantStates map[string]keys.State
		wantJWKS   []string
		wantSigner string
	}{
		{
			name:       "ok/published_before_activation",
			giveAt:     publishFor - time.Second,
			wantStates: map[string]keys.State{old.ID: keys.Current, next: keys.Next},
			wantJWKS:   sortedOf(old.ID, next),
			wantSigner: old.ID,
		},
		{
			name:       "ok/activates_on_time",
			giveAt:     publishFor,
			wantStates: map[string]keys.State{old.ID: keys.Retired, next: keys.Current},
			wantJWKS:   sortedOf(old.ID, next),
			wantSigner: next,
		},
		{
			name:       "ok/retired_key_still_published",
			giveAt:     publishFor + retain - time.Second,
			wantStates: map[string]keys.State{old.ID: keys.Retired, next: keys.Current},
			wantJWKS:   sortedOf(old.ID, next),
			wantSigner: next,
		},
		{
			name:       "ok/retired_key_expires",
			giveAt:     publishFor + retain,
			wantStates: map[string]keys.State{old.ID: keys.Expired, next: keys.Current},
			wantJWKS:   []string{next},
			wantSigner: next,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock.Set(fixture.Now.Add(tt.giveAt))
			for name, k := range map[string]*keys.Keyring{"rotated": a, "reloaded": b} {
				if err := k.Reload(); err != nil {
					t.Fatal(err)
				}
				if got := states(k.Keys()); !maps.Equal(got, tt.wantStates) {
					t.Errorf("%s: states = %v, want %v", name, got, tt.wantStates)
				}
				if got := jwksKids(t, k); !slices.Equal(got, tt.wantJWKS) {
					t.Errorf("%s: JWKS kids = %v, want %v", name, got, tt.wantJWKS)
				}
				minted, err := fixture.NewMinter(t, k, clock).Mint(fixture.MintRequest())
				if err != nil {
					t.Fatal(err)
				}
				if minted.KeyID != tt.wantSigner {
					t.Errorf("%s: signed with %s, want %s", name, minted.KeyID, tt.wantSigner)
				}
			}
		})
	}

	t.Run("ok/prune_deletes_expired", func(t *testing.T) {
		gone, err := b.Prune()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(gone, []string{old.ID}) {
			t.Fatalf("Prune = %v, want [%s]", gone, old.ID)
		}
		if _, err := os.Stat(filepath.Join(dir, old.ID+".jwk")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("expired key file still there: %v", err)
		}
		if err := a.Reload(); err != nil {
			t.Fatal(err)
		}
		if got := keyIDs(a.Keys()); !slices.Equal(got, []string{next}) {
			t.Fatalf("after another instance pruned, keys = %v, want [%s]", got, next)
		}
	})
}

func TestKeyringRotation_guards(t *testing.T) {
	tests := []struct {
		name       string
		giveSetup  func(t testing.TB, k *keys.Keyring)
		giveFor    time.Duration
		wantErr    bool
		wantInFlow bool // ErrRotationInProgress
	}{
		{
			name:      "ok/rotate_from_current",
			giveSetup: func(t testing.TB, k *keys.Keyring) { fixture.Generate(t, k, token.EdDSA, time.Time{}) },
			giveFor:   time.Minute,
		},
		{
			name: "fail/rotation_in_progress",
			giveSetup: func(t testing.TB, k *keys.Keyring) {
				fixture.Generate(t, k, token.EdDSA, time.Time{})
				fixture.Generate(t, k, token.EdDSA, fixture.Now.Add(time.Hour))
			},
			giveFor:    time.Minute,
			wantErr:    true,
			wantInFlow: true,
		},
		{
			name:      "fail/no_current_key",
			giveSetup: func(testing.TB, *keys.Keyring) {},
			giveFor:   time.Minute,
			wantErr:   true,
		},
		{
			name:      "fail/zero_publish_time",
			giveSetup: func(t testing.TB, k *keys.Keyring) { fixture.Generate(t, k, token.EdDSA, time.Time{}) },
			giveFor:   0,
			wantErr:   true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := fixture.OpenKeyring(t, t.TempDir(), brokertest.NewClock(fixture.Now))
			tt.giveSetup(t, k)
			before := len(k.Keys())
			_, err := k.Rotate(token.ES256, tt.giveFor)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Rotate error = %v, want error %v", err, tt.wantErr)
			}
			if got := errors.Is(err, keys.ErrRotationInProgress); got != tt.wantInFlow {
				t.Fatalf("errors.Is(err, ErrRotationInProgress) = %v, want %v (err %v)", got, tt.wantInFlow, err)
			}
			if tt.wantErr && len(k.Keys()) != before {
				t.Fatalf("a refused rotation added a key")
			}
		})
	}
}

func TestKeyringRotation_revokeAndReplace(t *testing.T) {
	const retain = 12 * time.Minute
	// Keys, in activation order: expired (retired 13m ago), retired (1m
	// ago), current; and a next key due in an hour.
	type ring struct {
		k                                  *keys.Keyring
		clock                              *brokertest.Clock
		expired, retired, current, nextKey string
	}
	setup := func(t testing.TB) ring {
		t.Helper()
		clock := brokertest.NewClock(fixture.Now.Add(-20 * time.Minute))
		k, err := keys.Open(keys.KeyringConfig{Dir: t.TempDir(), RetainRetired: retain, Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		r := ring{k: k, clock: clock}
		r.expired = fixture.Generate(t, k, token.EdDSA, fixture.Now.Add(-20*time.Minute)).ID
		r.retired = fixture.Generate(t, k, token.EdDSA, fixture.Now.Add(-13*time.Minute)).ID
		r.current = fixture.Generate(t, k, token.EdDSA, fixture.Now.Add(-time.Minute)).ID
		r.nextKey = fixture.Generate(t, k, token.EdDSA, fixture.Now.Add(time.Hour)).ID
		clock.Set(fixture.Now)
		return r
	}

	tests := []struct {
		name            string
		giveKid         func(r ring) string
		wantReplacement bool
	}{
		{name: "ok/current_is_replaced", giveKid: func(r ring) string { return r.current }, wantReplacement: true},
		{name: "ok/retired_needs_no_replacement", giveKid: func(r ring) string { return r.retired }},
		{name: "ok/next_needs_no_replacement", giveKid: func(r ring) string { return r.nextKey }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := setup(t)
			kid := tt.giveKid(r)
			repl, err := r.k.RevokeAndReplace(kid, token.ES256)
			if err != nil {
				t.Fatal(err)
			}
			if (repl != nil) != tt.wantReplacement {
				t.Fatalf("replacement = %+v, want one: %v", repl, tt.wantReplacement)
			}
			published := jwksKids(t, r.k)
			if slices.Contains(published, kid) {
				t.Errorf("revoked key %s still published", kid)
			}
			// With its successor gone, the expired key must not come back.
			if slices.Contains(published, r.expired) {
				t.Errorf("expired key %s published again", r.expired)
			}
			minted, err := fixture.NewMinter(t, r.k, r.clock).Mint(fixture.MintRequest())
			if err != nil {
				t.Fatalf("minting after revoke: %v", err)
			}
			wantSigner := r.current
			if repl != nil {
				wantSigner = repl.ID
				if repl.State != keys.Current || repl.Algorithm != token.ES256 {
					t.Errorf("replacement = %+v, want a current ES256 key", repl)
				}
			}
			if minted.KeyID != wantSigner {
				t.Errorf("signed with %s, want %s", minted.KeyID, wantSigner)
			}
		})
	}

	t.Run("fail/unknown_kid", func(t *testing.T) {
		r := setup(t)
		if _, err := r.k.RevokeAndReplace("no-such-kid", token.EdDSA); err == nil {
			t.Fatal("RevokeAndReplace of an unknown kid succeeded")
		}
	})
}
