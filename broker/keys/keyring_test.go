package keys_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
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

// RFC 8037 Appendix A.1 (Ed25519 key) and A.3 (its RFC 7638 thumbprint).
const (
	rfc8037D          = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
	rfc8037X          = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
	rfc8037Thumbprint = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
)

func keyIDs(infos []keys.Info) []string {
	var ids []string
	for _, i := range infos {
		ids = append(ids, i.ID)
	}
	return ids
}

func sameKeyInfo(a, b keys.Info) bool {
	return a.ID == b.ID && a.Algorithm == b.Algorithm && a.State == b.State &&
		a.CreatedAt.Equal(b.CreatedAt) && a.ActivatesAt.Equal(b.ActivatesAt) && a.RetiredAt.Equal(b.RetiredAt)
}

func states(infos []keys.Info) map[string]keys.State {
	out := make(map[string]keys.State)
	for _, i := range infos {
		out[i.ID] = i.State
	}
	return out
}

func TestThumbprint_rfc8037(t *testing.T) {
	x, err := base64.RawURLEncoding.DecodeString(rfc8037X)
	if err != nil {
		t.Fatal(err)
	}
	got, err := keys.Thumbprint(ed25519.PublicKey(x))
	if err != nil {
		t.Fatal(err)
	}
	if got != rfc8037Thumbprint {
		t.Fatalf("Thumbprint = %q, want %q", got, rfc8037Thumbprint)
	}
}

func TestKeyring_filesAndReload(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	clock := brokertest.NewClock(fixture.Now)
	ring := fixture.OpenKeyring(t, dir, clock)
	ed := fixture.Generate(t, ring, token.EdDSA, time.Time{})
	ec := fixture.Generate(t, ring, token.ES256, fixture.Now.Add(time.Hour))

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

	again := fixture.OpenKeyring(t, dir, clock)
	if got, want := again.Keys(), ring.Keys(); !slices.EqualFunc(got, want, sameKeyInfo) {
		t.Errorf("reopened keys =\n%+v\nwant\n%+v", got, want)
	}

	// A token minted by one instance verifies against the other's keys.
	m := fixture.NewMinter(t, ring, clock)
	minted, err := m.Mint(fixture.MintRequest())
	if err != nil {
		t.Fatal(err)
	}
	if minted.KeyID != ed.ID || minted.Algorithm != token.EdDSA {
		t.Errorf("minted with %s %s, want the current key %s", minted.KeyID, minted.Algorithm, ed.ID)
	}
	verifyWith(t, again, clock, minted.Token, "")

	// Another instance's new key appears on Reload.
	late := fixture.Generate(t, again, token.EdDSA, fixture.Now.Add(2*time.Hour))
	if err := ring.Reload(); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(keyIDs(ring.Keys()), late.ID) {
		t.Errorf("Reload did not pick up %s", late.ID)
	}
}

func TestOpenKeyring_keyFiles(t *testing.T) {
	privateJWK := map[string]any{"kty": "OKP", "crv": "Ed25519", "d": rfc8037D, "x": rfc8037X, "alg": "EdDSA", "use": "sig", "kid": rfc8037Thumbprint, "created_at": fixture.Now.Unix(), "activates_at": fixture.Now.Unix()}
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
			if err := os.WriteFile(filepath.Join(dir, tt.giveFile), []byte(fixture.MustJSON(t, tt.giveJWK)), 0o600); err != nil {
				t.Fatal(err)
			}
			ring, err := keys.Open(keys.KeyringConfig{Dir: dir, Now: brokertest.NewClock(fixture.Now).Now})
			if tt.wantErr {
				if err == nil {
					t.Fatal("Open accepted a bad key file")
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
	clock := brokertest.NewClock(fixture.Now)
	ring := fixture.OpenKeyring(t, t.TempDir(), clock)
	fixture.Generate(t, ring, token.EdDSA, time.Time{})
	fixture.Generate(t, ring, token.ES256, fixture.Now.Add(time.Hour))

	raw, err := ring.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	published := brokertest.PublicJWKS(t, raw)
	if len(published) != 2 {
		t.Fatalf("JWKS has %d keys, want 2", len(published))
	}
	for _, k := range published {
		if k["use"] != "sig" || k["kid"] == nil || k["kid"] == "" || (k["alg"] != "EdDSA" && k["alg"] != "ES256") {
			t.Errorf("JWKS key lacks kid, alg or use: %v", k)
		}
	}

	ks, err := keys.ParseJWKS(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(ks) != 2 {
		t.Fatalf("ParseJWKS kept %d keys, want 2", len(ks))
	}
	for _, k := range ks {
		tp, err := keys.Thumbprint(k.Key)
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
	clock := brokertest.NewClock(fixture.Now)
	ring := fixture.OpenKeyring(t, dir, clock)
	a := fixture.Generate(t, ring, token.EdDSA, time.Time{})
	rotateAt := fixture.Now.Add(time.Hour)
	b := fixture.Generate(t, ring, token.ES256, rotateAt)
	m := fixture.NewMinter(t, ring, clock)

	wantStates := func(wantA, wantB keys.State) {
		t.Helper()
		got := states(ring.Keys())
		if got[a.ID] != wantA || got[b.ID] != wantB {
			t.Fatalf("at %v: states = %v, want A %s, B %s", clock.Now().Sub(fixture.Now), got, wantA, wantB)
		}
	}
	wantPublished := func(want ...string) {
		t.Helper()
		ks, err := keys.ParseJWKS(fixture.Must(ring.JWKS()))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, k := range ks {
			got = append(got, k.KeyID)
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("published %v, want %v", got, want)
		}
	}

	wantStates(keys.Current, keys.Next)
	wantPublished(a.ID, b.ID)

	clock.Set(rotateAt.Add(-30 * time.Second))
	fromA, err := m.Mint(fixture.MintRequest())
	if err != nil {
		t.Fatal(err)
	}
	if fromA.KeyID != a.ID {
		t.Fatalf("minted with %s before rotation, want A", fromA.KeyID)
	}

	clock.Set(rotateAt)
	wantStates(keys.Retired, keys.Current)
	if info := ring.Keys()[0]; info.ID != a.ID || !info.RetiredAt.Equal(rotateAt) {
		t.Errorf("A = %+v, want RetiredAt %v", info, rotateAt)
	}
	fromB, err := m.Mint(fixture.MintRequest())
	if err != nil {
		t.Fatal(err)
	}
	if fromB.KeyID != b.ID || fromB.Algorithm != token.ES256 {
		t.Fatalf("minted with %s after rotation, want B", fromB.KeyID)
	}
	clock.Advance(10 * time.Second)
	verifyWith(t, ring, clock, fromA.Token, "")
	verifyWith(t, ring, clock, fromB.Token, "")
	wantPublished(a.ID, b.ID)

	clock.Set(rotateAt.Add(token.DefaultMaxTTL + token.MaxLeeway - time.Second))
	wantStates(keys.Retired, keys.Current)
	if gone, err := ring.Prune(); err != nil || len(gone) != 0 {
		t.Fatalf("Prune while A is retired = %v, %v", gone, err)
	}

	clock.Set(rotateAt.Add(token.DefaultMaxTTL + token.MaxLeeway))
	wantStates(keys.Expired, keys.Current)
	wantPublished(b.ID)
	if _, err := ring.LookupKey(context.Background(), a.ID); token.ReasonOf(err) != token.ReasonUnknownKey {
		t.Errorf("LookupKey(expired) = %v, want unknown_key", err)
	}
	gone, err := ring.Prune()
	if err != nil || !slices.Equal(gone, []string{a.ID}) {
		t.Fatalf("Prune = %v, %v, want [%s]", gone, err, a.ID)
	}
	if _, err := os.Stat(filepath.Join(dir, a.ID+".jwk")); !os.IsNotExist(err) {
		t.Errorf("pruned key file still there: %v", err)
	}
	if got := keyIDs(fixture.OpenKeyring(t, dir, clock).Keys()); !slices.Equal(got, []string{b.ID}) {
		t.Errorf("after Prune the directory holds %v, want [%s]", got, b.ID)
	}
}

func TestKeyring_revoke(t *testing.T) {
	dir := t.TempDir()
	clock := brokertest.NewClock(fixture.Now)
	ring := fixture.OpenKeyring(t, dir, clock)
	a := fixture.Generate(t, ring, token.EdDSA, time.Time{})
	b := fixture.Generate(t, ring, token.EdDSA, fixture.Now.Add(time.Hour))

	if err := ring.Revoke(b.ID); err != nil {
		t.Fatal(err)
	}
	ks, err := keys.ParseJWKS(fixture.Must(ring.JWKS()))
	if err != nil {
		t.Fatal(err)
	}
	if len(ks) != 1 || ks[0].KeyID != a.ID {
		t.Errorf("JWKS after Revoke = %v, want only %s", ks, a.ID)
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
	if _, err := fixture.NewMinter(t, ring, clock).Mint(fixture.MintRequest()); err == nil {
		t.Error("Mint succeeded with every key revoked")
	}
}

func TestKeyring_onlyNextKeyDoesNotSign(t *testing.T) {
	clock := brokertest.NewClock(fixture.Now)
	ring := fixture.OpenKeyring(t, t.TempDir(), clock)
	fixture.Generate(t, ring, token.EdDSA, fixture.Now.Add(time.Minute))
	m := fixture.NewMinter(t, ring, clock)
	if _, err := m.Mint(fixture.MintRequest()); err == nil {
		t.Fatal("Mint signed with a key that is not active yet")
	}
	clock.Advance(time.Minute)
	if _, err := m.Mint(fixture.MintRequest()); err != nil {
		t.Fatalf("Mint once the key is active: %v", err)
	}
}

func TestKeyring_badConfig(t *testing.T) {
	if _, err := keys.Open(keys.KeyringConfig{}); err == nil {
		t.Error("Open without Dir succeeded")
	}
	if _, err := keys.NewEphemeral("HS256"); err == nil {
		t.Error("NewEphemeral(HS256) succeeded")
	}
	ring := fixture.OpenKeyring(t, t.TempDir(), brokertest.NewClock(fixture.Now))
	if _, err := ring.Generate("RS256", time.Time{}); err == nil {
		t.Error("Generate(RS256) succeeded")
	}
}

// verifyWith verifies token at clock's time against keys, expecting reason.
func verifyWith(t testing.TB, ks token.KeySource, clock *brokertest.Clock, tok string, reason token.Reason) {
	t.Helper()
	v := fixture.NewVerifier(t, token.VerifierConfig{
		Issuers: []token.TrustedIssuer{{Issuer: fixture.Issuer, Keys: ks}}, Audience: fixture.Audience,
		Replay: fixture.NewStore(t, brokertest.NewClock(fixture.Now.Add(-time.Hour)), token.MemoryReplayConfig{}),
		Now:    clock.Now,
	})
	_, err := v.Verify(context.Background(), tok, token.Expect{AnyTask: true})
	fixture.WantReason(t, err, reason)
}
