package broker_test

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/broker"
)

// jwksKids returns the kids the keyring's JWKS document publishes, sorted.
func jwksKids(t testing.TB, k *broker.Keyring) []string {
	t.Helper()
	doc, err := k.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	keys, err := broker.ParseJWKS(doc)
	if err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, pk := range keys {
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
	clock := newClock(testNow)
	open := func() *broker.Keyring {
		k, err := broker.OpenKeyring(broker.KeyringConfig{Dir: dir, RetainRetired: retain, Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	a, b := open(), open()
	old := generate(t, a, broker.EdDSA, time.Time{})
	rotated, err := a.Rotate(broker.EdDSA, publishFor)
	if err != nil {
		t.Fatal(err)
	}
	if !rotated.ActivatesAt.Equal(testNow.Add(publishFor)) || rotated.State != broker.KeyNext {
		t.Fatalf("Rotate = %+v, want a next key activating at %v", rotated, testNow.Add(publishFor))
	}
	next := rotated.ID

	tests := []struct {
		name       string
		giveAt     time.Duration // since the rotation
		wantStates map[string]broker.KeyState
		wantJWKS   []string
		wantSigner string
	}{
		{
			name:       "ok/published_before_activation",
			giveAt:     publishFor - time.Second,
			wantStates: map[string]broker.KeyState{old.ID: broker.KeyCurrent, next: broker.KeyNext},
			wantJWKS:   sortedOf(old.ID, next),
			wantSigner: old.ID,
		},
		{
			name:       "ok/activates_on_time",
			giveAt:     publishFor,
			wantStates: map[string]broker.KeyState{old.ID: broker.KeyRetired, next: broker.KeyCurrent},
			wantJWKS:   sortedOf(old.ID, next),
			wantSigner: next,
		},
		{
			name:       "ok/retired_key_still_published",
			giveAt:     publishFor + retain - time.Second,
			wantStates: map[string]broker.KeyState{old.ID: broker.KeyRetired, next: broker.KeyCurrent},
			wantJWKS:   sortedOf(old.ID, next),
			wantSigner: next,
		},
		{
			name:       "ok/retired_key_expires",
			giveAt:     publishFor + retain,
			wantStates: map[string]broker.KeyState{old.ID: broker.KeyExpired, next: broker.KeyCurrent},
			wantJWKS:   []string{next},
			wantSigner: next,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock.Set(testNow.Add(tt.giveAt))
			for name, k := range map[string]*broker.Keyring{"rotated": a, "reloaded": b} {
				if err := k.Reload(); err != nil {
					t.Fatal(err)
				}
				if got := states(k.Keys()); !maps.Equal(got, tt.wantStates) {
					t.Errorf("%s: states = %v, want %v", name, got, tt.wantStates)
				}
				if got := jwksKids(t, k); !slices.Equal(got, tt.wantJWKS) {
					t.Errorf("%s: JWKS kids = %v, want %v", name, got, tt.wantJWKS)
				}
				minted, err := newTestMinter(t, k, clock).Mint(testMintRequest())
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
		giveSetup  func(t testing.TB, k *broker.Keyring)
		giveFor    time.Duration
		wantErr    bool
		wantInFlow bool // ErrRotationInProgress
	}{
		{
			name:      "ok/rotate_from_current",
			giveSetup: func(t testing.TB, k *broker.Keyring) { generate(t, k, broker.EdDSA, time.Time{}) },
			giveFor:   time.Minute,
		},
		{
			name: "fail/rotation_in_progress",
			giveSetup: func(t testing.TB, k *broker.Keyring) {
				generate(t, k, broker.EdDSA, time.Time{})
				generate(t, k, broker.EdDSA, testNow.Add(time.Hour))
			},
			giveFor:    time.Minute,
			wantErr:    true,
			wantInFlow: true,
		},
		{
			name:      "fail/no_current_key",
			giveSetup: func(testing.TB, *broker.Keyring) {},
			giveFor:   time.Minute,
			wantErr:   true,
		},
		{
			name:      "fail/zero_publish_time",
			giveSetup: func(t testing.TB, k *broker.Keyring) { generate(t, k, broker.EdDSA, time.Time{}) },
			giveFor:   0,
			wantErr:   true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := openTestKeyring(t, t.TempDir(), newClock(testNow))
			tt.giveSetup(t, k)
			before := len(k.Keys())
			_, err := k.Rotate(broker.ES256, tt.giveFor)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Rotate error = %v, want error %v", err, tt.wantErr)
			}
			if got := errors.Is(err, broker.ErrRotationInProgress); got != tt.wantInFlow {
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
		k                                  *broker.Keyring
		clock                              *fakeClock
		expired, retired, current, nextKey string
	}
	setup := func(t testing.TB) ring {
		t.Helper()
		clock := newClock(testNow.Add(-20 * time.Minute))
		k, err := broker.OpenKeyring(broker.KeyringConfig{Dir: t.TempDir(), RetainRetired: retain, Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		r := ring{k: k, clock: clock}
		r.expired = generate(t, k, broker.EdDSA, testNow.Add(-20*time.Minute)).ID
		r.retired = generate(t, k, broker.EdDSA, testNow.Add(-13*time.Minute)).ID
		r.current = generate(t, k, broker.EdDSA, testNow.Add(-time.Minute)).ID
		r.nextKey = generate(t, k, broker.EdDSA, testNow.Add(time.Hour)).ID
		clock.Set(testNow)
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
			repl, err := r.k.RevokeAndReplace(kid, broker.ES256)
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
			minted, err := newTestMinter(t, r.k, r.clock).Mint(testMintRequest())
			if err != nil {
				t.Fatalf("minting after revoke: %v", err)
			}
			wantSigner := r.current
			if repl != nil {
				wantSigner = repl.ID
				if repl.State != broker.KeyCurrent || repl.Algorithm != broker.ES256 {
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
		if _, err := r.k.RevokeAndReplace("no-such-kid", broker.EdDSA); err == nil {
			t.Fatal("RevokeAndReplace of an unknown kid succeeded")
		}
	})
}
