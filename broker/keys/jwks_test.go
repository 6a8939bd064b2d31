package keys_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/handoffbroker/handoff/broker/brokertest"
	"github.com/handoffbroker/handoff/broker/internal/fixture"
	"github.com/handoffbroker/handoff/broker/keys"
	"github.com/handoffbroker/handoff/broker/token"
)

// jwkJSON encodes key as a JWK with the given members; an empty member is
// left out.
func jwkJSON(t testing.TB, key any, kid, alg, use string) string {
	t.Helper()
	b, err := (&jose.JSONWebKey{Key: key, KeyID: kid, Algorithm: alg, Use: use}).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func jwksOf(ks ...string) string { return `{"keys":[` + strings.Join(ks, ",") + `]}` }

func TestParseJWKS(t *testing.T) {
	ed, ec := fixture.NewKey(t, token.EdDSA), fixture.NewKey(t, token.ES256)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edPub := jwkJSON(t, ed.Pub.Key, "ed", "EdDSA", "sig")
	ecPub := jwkJSON(t, ec.Pub.Key, "ec", "ES256", "sig")

	tests := []struct {
		name     string
		give     string
		wantKIDs []string
		wantErr  bool
	}{
		{name: "ok/both_algorithms", give: jwksOf(edPub, ecPub), wantKIDs: []string{"ed", "ec"}},
		{name: "ok/empty_set", give: `{"keys":[]}`},
		{name: "ok/unknown_members_ignored", give: `{"keys":[` + edPub + `],"issuer":"x"}`, wantKIDs: []string{"ed"}},
		{name: "ok/skips_private_ed25519", give: jwksOf(jwkJSON(t, ed.Priv, "edpriv", "EdDSA", "sig"), ecPub), wantKIDs: []string{"ec"}},
		{name: "ok/skips_private_ecdsa", give: jwksOf(edPub, jwkJSON(t, ec.Priv, "ecpriv", "ES256", "sig")), wantKIDs: []string{"ed"}},
		{name: "ok/skips_use_enc", give: jwksOf(edPub, jwkJSON(t, ec.Pub.Key, "ec", "ES256", "enc")), wantKIDs: []string{"ed"}},
		{name: "ok/skips_missing_use", give: jwksOf(edPub, jwkJSON(t, ec.Pub.Key, "ec", "ES256", "")), wantKIDs: []string{"ed"}},
		{name: "ok/skips_rsa", give: jwksOf(edPub, jwkJSON(t, &rsaKey.PublicKey, "rsa", "RS256", "sig")), wantKIDs: []string{"ed"}},
		{name: "ok/skips_p384", give: jwksOf(edPub, jwkJSON(t, &p384.PublicKey, "p384", "ES384", "sig")), wantKIDs: []string{"ed"}},
		{name: "ok/skips_hmac", give: jwksOf(edPub, `{"kty":"oct","k":"c2VjcmV0","alg":"HS256","use":"sig","kid":"oct"}`), wantKIDs: []string{"ed"}},
		{name: "ok/skips_unknown_alg", give: jwksOf(edPub, jwkJSON(t, ec.Pub.Key, "ec", "ES256K", "sig")), wantKIDs: []string{"ed"}},
		{name: "ok/skips_missing_alg", give: jwksOf(edPub, jwkJSON(t, ec.Pub.Key, "ec", "", "sig")), wantKIDs: []string{"ed"}},
		{name: "ok/skips_eddsa_alg_on_ec_key", give: jwksOf(edPub, jwkJSON(t, ec.Pub.Key, "ec", "EdDSA", "sig")), wantKIDs: []string{"ed"}},
		{name: "ok/skips_es256_alg_on_ed_key", give: jwksOf(jwkJSON(t, ed.Pub.Key, "ed", "ES256", "sig"), ecPub), wantKIDs: []string{"ec"}},
		{name: "ok/skips_p384_key_labelled_es256", give: jwksOf(edPub, jwkJSON(t, &p384.PublicKey, "p384", "ES256", "sig")), wantKIDs: []string{"ed"}},
		{name: "ok/skips_missing_kid", give: jwksOf(edPub, jwkJSON(t, ec.Pub.Key, "", "ES256", "sig")), wantKIDs: []string{"ed"}},
		{name: "ok/skips_long_kid", give: jwksOf(edPub, jwkJSON(t, ec.Pub.Key, strings.Repeat("k", 129), "ES256", "sig")), wantKIDs: []string{"ed"}},
		{name: "ok/skips_duplicate_kid_both", give: jwksOf(edPub, jwkJSON(t, ec.Pub.Key, "dup", "ES256", "sig"), jwkJSON(t, fixture.NewKey(t, token.ES256).Pub.Key, "dup", "ES256", "sig")), wantKIDs: []string{"ed"}},
		{name: "ok/skips_duplicate_kid_three_times", give: jwksOf(jwkJSON(t, ed.Pub.Key, "dup", "EdDSA", "sig"), jwkJSON(t, ec.Pub.Key, "dup", "ES256", "sig"), jwkJSON(t, ed.Pub.Key, "dup", "EdDSA", "sig"))},
		{name: "ok/skips_point_off_curve", give: jwksOf(edPub, `{"kty":"EC","crv":"P-256","x":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","y":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE","alg":"ES256","use":"sig","kid":"bad"}`), wantKIDs: []string{"ed"}},
		{name: "ok/skips_short_ed25519", give: jwksOf(ecPub, `{"kty":"OKP","crv":"Ed25519","x":"AAAA","alg":"EdDSA","use":"sig","kid":"short"}`), wantKIDs: []string{"ec"}},
		{name: "ok/skips_non_object_entry", give: `{"keys":[1,"x",null,` + edPub + `]}`, wantKIDs: []string{"ed"}},

		{name: "fail/not_json", give: `keys: []`, wantErr: true},
		{name: "fail/array", give: `[` + edPub + `]`, wantErr: true},
		{name: "fail/single_jwk", give: edPub, wantErr: true},
		{name: "fail/no_keys_member", give: `{}`, wantErr: true},
		{name: "fail/keys_null", give: `{"keys":null}`, wantErr: true},
		{name: "fail/keys_object", give: `{"keys":{}}`, wantErr: true},
		{name: "fail/duplicate_keys_member", give: `{"keys":[],"keys":[` + edPub + `]}`, wantErr: true},
		{name: "fail/empty", give: ``, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ks, err := keys.ParseJWKS([]byte(tt.give))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseJWKS succeeded with %d keys", len(ks))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var kids []string
			for _, k := range ks {
				kids = append(kids, k.KeyID)
			}
			if !slices.Equal(kids, tt.wantKIDs) {
				t.Fatalf("kids = %v, want %v", kids, tt.wantKIDs)
			}
			if len(ks) > 0 {
				if _, err := keys.NewStatic(ks...); err != nil {
					t.Errorf("parsed keys are not usable: %v", err)
				}
			}
		})
	}
}

func TestParseJWKS_bounded(t *testing.T) {
	var jwks []string
	for i := range keys.MaxJWKSKeys + 6 {
		jwks = append(jwks, jwkJSON(t, fixture.NewKey(t, token.EdDSA).Pub.Key, fmt.Sprint("k", i), "EdDSA", "sig"))
	}
	ks, err := keys.ParseJWKS([]byte(jwksOf(jwks...)))
	if err != nil {
		t.Fatal(err)
	}
	if len(ks) != keys.MaxJWKSKeys {
		t.Fatalf("kept %d keys, want %d", len(ks), keys.MaxJWKSKeys)
	}
}

func TestMarshalJWKS(t *testing.T) {
	ed, ec := fixture.NewKey(t, token.EdDSA), fixture.NewKey(t, token.ES256)
	raw, err := keys.MarshalJWKS([]token.PublicKey{ed.Pub, ec.Pub})
	if err != nil {
		t.Fatal(err)
	}
	brokertest.PublicJWKS(t, raw)
	ks, err := keys.ParseJWKS(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(ks) != 2 || ks[0].KeyID != ed.Pub.KeyID || ks[1].KeyID != ec.Pub.KeyID {
		t.Fatalf("round trip = %+v", ks)
	}

	bad := []token.PublicKey{
		{KeyID: "x", Algorithm: token.ES256, Key: ed.Pub.Key},
		{KeyID: "", Algorithm: token.EdDSA, Key: ed.Pub.Key},
		{KeyID: "priv", Algorithm: token.EdDSA, Key: ed.Priv},
	}
	for _, k := range bad {
		if _, err := keys.MarshalJWKS([]token.PublicKey{k}); err == nil {
			t.Errorf("MarshalJWKS accepted %q (%T, %s)", k.KeyID, k.Key, k.Algorithm)
		}
	}
}

func TestStaticKeys(t *testing.T) {
	ed, ec := fixture.NewKey(t, token.EdDSA), fixture.NewKey(t, token.ES256)
	src, err := keys.NewStatic(ed.Pub, ec.Pub)
	if err != nil {
		t.Fatal(err)
	}
	got, err := src.LookupKey(context.Background(), ec.Pub.KeyID)
	if err != nil || got.KeyID != ec.Pub.KeyID || got.Algorithm != token.ES256 {
		t.Errorf("LookupKey = %+v, %v", got, err)
	}
	_, err = src.LookupKey(context.Background(), "nope")
	fixture.WantReason(t, err, token.ReasonUnknownKey)

	if _, err := keys.NewStatic(); err == nil {
		t.Error("NewStatic() with no keys succeeded")
	}
	dup := ec.Pub
	dup.KeyID = ed.Pub.KeyID
	if _, err := keys.NewStatic(ed.Pub, dup); err == nil {
		t.Error("NewStatic accepted a duplicate kid")
	}
}
