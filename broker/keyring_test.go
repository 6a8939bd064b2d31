package broker_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/broker"
)

// RFC 8037 Appendix A.1 (Ed25519 key) and A.3 (its RFC 7638 thumbprint).
const (
	rfc8037D          = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
	rfc8037X          = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
	rfc8037Thumbprint = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
)

func openTestKeyring(t testing.TB, dir string, clock *fakeClock) *broker.Keyring {
	t.Helper()
	k, err := broker.OpenKeyring(broker.KeyringConfig{Dir: dir, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func generate(t testing.TB, k *broker.Keyring, alg broker.Algorithm, activatesAt time.Time) broker.KeyInfo {
	t.Helper()
	info, err := k.Generate(alg, activatesAt)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func keyIDs(infos []broker.KeyInfo) []string {
	var ids []string
	for _, i := range infos {
		ids = append(ids, i.ID)
	}
	return ids
}

func sameKeyInfo(a, b broker.KeyInfo) bool {
	return a.ID == b.ID && a.Algorithm == b.Algorithm && a.State == b.State &&
		a.CreatedAt.Equal(b.CreatedAt) && a.ActivatesAt.Equal(b.ActivatesAt) && a.RetiredAt.Equal(b.RetiredAt)
}

func states(infos []broker.KeyInfo) map[string]broker.KeyState {
	out := make(map[string]broker.KeyState)
	for _, i := range infos {
		out[i.ID] = i.State
	}
	return out
}

func TestThumbprint_rfc8037(t *testing.T) {
	x, err := b64.DecodeString(rfc8037X)
	if err != nil {
		t.Fatal(err)
	}
	got, err := broker.Thumbprint(ed25519.PublicKey(x))
	if err != nil {
		t.Fatal(err)
	}
	if got != rfc8037Thumbprint {
		t.Fatalf("Thumbprint = %q, want %q", got, rfc8037Thumbprint)
	}
}

func TestKeyring_filesAndReload(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	clock := newClock(testNow)
	ring := openTestKeyring(t, dir, clock)
	ed := generate(t, ring, broker.EdDSA, time.Time{})
	ec := generate(t, ring, broker.ES256, testNow.Add(time.Hour))

	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("key directory mode = %v, want 0700", st.Mode().Perm())
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %v, want 0600", e.Name(), fi.Mode().Perm())
		}
	}
	slices.Sort(names)
	wantNames := []string{ed.ID + ".jwk", ec.ID + ".jwk"}
	slices.Sort(wantNames)
	if !slices.Equal(names, wantNames) {
		t.Errorf("files = %v, want %v", names, wantNames)
	}

	again := openTestKeyring(t, dir, clock)
	if got, want := again.Keys(), ring.Keys(); !slices.EqualFunc(got, want, sameKeyInfo) {
		t.Errorf("reopened keys =\n%+v\nwant\n%+v", got, want)
	}

	// A token minted by one instance verifies against the other's keys.
	m := newTestMinter(t, ring, clock)
	minted, err := m.Mint(testMintRequest())
	if err != nil {
		t.Fatal(err)
	}
	if minted.KeyID != ed.ID || minted.Algorithm != broker.EdDSA {
		t.Errorf("minted with %s %s, want the current key %s", minted.KeyID, minted.Algorithm, ed.ID)
	}
	verifyWith(t, again, clock, minted.Token, "")

	// Another instance's new key appears on Reload.
	late := generate(t, again, broker.EdDSA, testNow.Add(2*time.Hour))
	if err := ring.Reload(); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(keyIDs(ring.Keys()), late.ID) {
		t.Errorf("Reload did not pick up %s", late.ID)
	}
}

func TestOpenKeyring_keyFiles(t *testing.T) {
	privateJWK := map[string]any{"kty": "OKP", "crv": "Ed25519", "d": rfc8037D, "x": rfc8037X, "alg": "EdDSA", "use": "sig", "kid": rfc8037Thumbprint, "created_at": testNow.Unix(), "activates_at": testNow.Unix()}
	publicJWK := map[string]any{"kty": "OKP", "crv": "Ed25519", "x": rfc8037X, "alg": "EdDSA", "use": "sig", "kid": rfc8037Thumbprint}
	tests := []struct {
		name     string
		giveFile string
		giveJWK  map[string]any
		wantIDs  []string
		wantErr  bool
	}{
		{name: "ok/rfc8037_key_by_thumbprint", giveFile: rfc8037Thumbprint + ".jwk", giveJWK: privateJWK, wantIDs: []string{rfc8037Thumbprint}},
		{name: "ok/other_files_ignored", giveFile: "README", giveJWK: privateJWK},
		{name: "fail/name_not_thumbprint", giveFile: "my-key.jwk", giveJWK: privateJWK, wantErr: true},
		{name: "fail/public_key_only", giveFile: rfc8037Thumbprint + ".jwk", giveJWK: publicJWK, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, tt.giveFile), []byte(mustJSON(t, tt.giveJWK)), 0o600); err != nil {
				t.Fatal(err)
			}
			ring, err := broker.OpenKeyring(broker.KeyringConfig{Dir: dir, Now: newClock(testNow).Now})
			if tt.wantErr {
				if err == nil {
					t.Fatal("OpenKeyring accepted a bad key file")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := keyIDs(ring.Keys()); !slices.Equal(got, tt.wantIDs) {
				t.Fatalf("kids = %v, want %v", got, tt.wantIDs)
			}
		})
	}
}

func TestKeyring_JWKS(t *testing.T) {
	clock := newClock(testNow)
	ring := openTestKeyring(t, t.TempDir(), clock)
	generate(t, ring, broker.EdDSA, time.Time{})
	generate(t, ring, broker.ES256, testNow.Add(time.Hour))

	raw, err := ring.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Keys) != 2 {
		t.Fatalf("JWKS has %d keys, want 2", len(doc.Keys))
	}
	for _, k := range doc.Keys {
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi"} {
			if _, ok := k[private]; ok {
				t.Errorf("JWKS key %v has private member %q", k["kid"], private)
			}
		}
		if k["use"] != "sig" || k["kid"] == nil || k["kid"] == "" || (k["alg"] != "EdDSA" && k["alg"] != "ES256") {
			t.Errorf("JWKS key lacks kid, alg or use: %v", k)
		}
	}

	keys, err := broker.ParseJWKS(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 {
		t.Fatalf("ParseJWKS kept %d keys, want 2", len(keys))
	}
	for _, k := range keys {
		tp, err := broker.Thumbprint(k.Key)
		if err != nil {
			t.Fatal(err)
		}
		if k.KeyID != tp {
			t.Errorf("kid %q is not the key's RFC 7638 thumbprint %q", k.KeyID, tp)
		}
	}
}

// TestKeyring_states walks two keys through their lives on an injected
// clock: A signs first, B is published ahead as next, then takes over; A
// stays published (retired) while its tokens can live, then expires and is
// pruned.
func TestKeyring_states(t *testing.T) {
	dir := t.TempDir()
	clock := newClock(testNow)
	ring := openTestKeyring(t, dir, clock)
	a := generate(t, ring, broker.EdDSA, time.Time{})
	rotateAt := testNow.Add(time.Hour)
	b := generate(t, ring, broker.ES256, rotateAt)
	m := newTestMinter(t, ring, clock)

	wantStates := func(wantA, wantB broker.KeyState) {
		t.Helper()
		got := states(ring.Keys())
		if got[a.ID] != wantA || got[b.ID] != wantB {
			t.Fatalf("at %v: states = %v, want A %s, B %s", clock.Now().Sub(testNow), got, wantA, wantB)
		}
	}
	wantPublished := func(want ...string) {
		t.Helper()
		keys, err := broker.ParseJWKS(must(ring.JWKS()))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, k := range keys {
			got = append(got, k.KeyID)
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("published %v, want %v", got, want)
		}
	}

	wantStates(broker.KeyCurrent, broker.KeyNext)
	wantPublished(a.ID, b.ID)

	clock.Set(rotateAt.Add(-30 * time.Second))
	fromA, err := m.Mint(testMintRequest())
	if err != nil {
		t.Fatal(err)
	}
	if fromA.KeyID != a.ID {
		t.Fatalf("minted with %s before rotation, want A", fromA.KeyID)
	}

	clock.Set(rotateAt)
	wantStates(broker.KeyRetired, broker.KeyCurrent)
	if info := ring.Keys()[0]; info.ID != a.ID || !info.RetiredAt.Equal(rotateAt) {
		t.Errorf("A = %+v, want RetiredAt %v", info, rotateAt)
	}
	fromB, err := m.Mint(testMintRequest())
	if err != nil {
		t.Fatal(err)
	}
	if fromB.KeyID != b.ID || fromB.Algorithm != broker.ES256 {
		t.Fatalf("minted with %s after rotation, want B", fromB.KeyID)
	}
	clock.Advance(10 * time.Second)
	verifyWith(t, ring, clock, fromA.Token, "")
	verifyWith(t, ring, clock, fromB.Token, "")
	wantPublished(a.ID, b.ID)

	clock.Set(rotateAt.Add(broker.DefaultMaxTTL + broker.MaxLeeway - time.Second))
	wantStates(broker.KeyRetired, broker.KeyCurrent)
	if gone, err := ring.Prune(); err != nil || len(gone) != 0 {
		t.Fatalf("Prune while A is retired = %v, %v", gone, err)
	}

	clock.Set(rotateAt.Add(broker.DefaultMaxTTL + broker.MaxLeeway))
	wantStates(broker.KeyExpired, broker.KeyCurrent)
	wantPublished(b.ID)
	if _, err := ring.LookupKey(context.Background(), a.ID); broker.ReasonOf(err) != broker.ReasonUnknownKey {
		t.Errorf("LookupKey(expired) = %v, want unknown_key", err)
	}
	gone, err := ring.Prune()
	if err != nil || !slices.Equal(gone, []string{a.ID}) {
		t.Fatalf("Prune = %v, %v, want [%s]", gone, err, a.ID)
	}
	if _, err := os.Stat(filepath.Join(dir, a.ID+".jwk")); !os.IsNotExist(err) {
		t.Errorf("pruned key file still there: %v", err)
	}
	if got := keyIDs(openTestKeyring(t, dir, clock).Keys()); !slices.Equal(got, []string{b.ID}) {
		t.Errorf("after Prune the directory holds %v, want [%s]", got, b.ID)
	}
}

func TestKeyring_revoke(t *testing.T) {
	dir := t.TempDir()
	clock := newClock(testNow)
	ring := openTestKeyring(t, dir, clock)
	a := generate(t, ring, broker.EdDSA, time.Time{})
	b := generate(t, ring, broker.EdDSA, testNow.Add(time.Hour))

	if err := ring.Revoke(b.ID); err != nil {
		t.Fatal(err)
	}
	keys, err := broker.ParseJWKS(must(ring.JWKS()))
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0].KeyID != a.ID {
		t.Errorf("JWKS after Revoke = %v, want only %s", keys, a.ID)
	}
	if _, err := os.Stat(filepath.Join(dir, b.ID+".jwk")); !os.IsNotExist(err) {
		t.Errorf("revoked key file still there: %v", err)
	}
	if err := ring.Revoke(b.ID); err == nil {
		t.Error("second Revoke succeeded")
	}

	// A compromised current key stops signing at once.
	if err := ring.Revoke(a.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := newTestMinter(t, ring, clock).Mint(testMintRequest()); err == nil {
		t.Error("Mint succeeded with every key revoked")
	}
}

func TestKeyring_onlyNextKeyDoesNotSign(t *testing.T) {
	clock := newClock(testNow)
	ring := openTestKeyring(t, t.TempDir(), clock)
	generate(t, ring, broker.EdDSA, testNow.Add(time.Minute))
	m := newTestMinter(t, ring, clock)
	if _, err := m.Mint(testMintRequest()); err == nil {
		t.Fatal("Mint signed with a key that is not active yet")
	}
	clock.Advance(time.Minute)
	if _, err := m.Mint(testMintRequest()); err != nil {
		t.Fatalf("Mint once the key is active: %v", err)
	}
}

func TestKeyring_badConfig(t *testing.T) {
	if _, err := broker.OpenKeyring(broker.KeyringConfig{}); err == nil {
		t.Error("OpenKeyring without Dir succeeded")
	}
	if _, err := broker.NewEphemeralKeyring("HS256"); err == nil {
		t.Error("NewEphemeralKeyring(HS256) succeeded")
	}
	ring := openTestKeyring(t, t.TempDir(), newClock(testNow))
	if _, err := ring.Generate("RS256", time.Time{}); err == nil {
		t.Error("Generate(RS256) succeeded")
	}
}

// verifyWith verifies token at clock's time against keys, expecting reason.
func verifyWith(t testing.TB, keys broker.KeySource, clock *fakeClock, token string, reason broker.Reason) {
	t.Helper()
	v := newTestVerifier(t, broker.VerifierConfig{
		Issuers: []string{testIssuer}, Audience: testAudience, Keys: keys,
		Replay: newTestStore(t, newClock(testNow.Add(-time.Hour)), broker.MemoryReplayConfig{}),
		Now:    clock.Now,
	})
	_, err := v.Verify(context.Background(), token, broker.Expect{})
	wantReason(t, err, reason)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
