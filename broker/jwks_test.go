package broker_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/handoffbroker/handoff/broker"
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

func jwksOf(keys ...string) string { return `{"keys":[` + strings.Join(keys, ",") + `]}` }

func TestParseJWKS(t *testing.T) {
	ed, ec := newTestKey(t, broker.EdDSA), newTestKey(t, broker.ES256)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edPub := jwkJSON(t, ed.pub.Key, "ed", "EdDSA", "sig")
	ecPub := jwkJSON(t, ec.pub.Key, "ec", "ES256", "sig")

	tests := []struct {
		name     string
		give     string
		wantKIDs []string
		wantErr  bool
	}{
		{name: "ok/both_algorithms", give: jwksOf(edPub, ecPub), wantKIDs: []string{"ed", "ec"}},
		{name: "ok/empty_set", give: `{"keys":[]}`},
		{name: "ok/unknown_members_ignored", give: `{"keys":[` + edPub + `],"issuer":"x"}`, wantKIDs: []string{"ed"}},
		{name: "ok/skips_private_ed25519", give: jwksOf(jwkJSON(t, ed.priv, "edpriv", "EdDSA", "sig"), ecPub), wantKIDs: []string{"ec"}},
		{name: "ok/skips_private_ecdsa", give: jwksOf(edPub, jwkJSON(t, ec.priv, "ecpriv", "ES256", "sig")), wantKIDs: []string{"ed"}},
		{name: "ok/skips_use_enc", give: jwksOf(edPub, jwkJSON(t, ec.pub.Key, "ec", "ES256", "enc")), wantKIDs: []string{"ed"}},
		{name: "ok/skips_missing_use", give: jwksOf(edPub, jwkJSON(t, ec.pub.Key, "ec", "ES256", "")), wantKIDs: []string{"ed"}},
		{name: "ok/skips_rsa", give: jwksOf(edPub, jwkJSON(t, &rsaKey.PublicKey, "rsa", "RS256", "sig")), wantKIDs: []string{"ed"}},
		{name: "ok/skips_p384", give: jwksOf(edPub, jwkJSON(t, &p384.PublicKey, "p384", "ES384", "sig")), wantKIDs: []string{"ed"}},
		{name: "ok/skips_hmac", give: jwksOf(edPub, `{"kty":"oct","k":"c2VjcmV0","alg":"HS256","use":"sig","kid":"oct"}`), wantKIDs: []string{"ed"}},
		{name: "ok/skips_unknown_alg", give: jwksOf(edPub, jwkJSON(t, ec.pub.Key, "ec", "ES256K", "sig")), wantKIDs: []string{"ed"}},
		{name: "ok/skips_missing_alg", give: jwksOf(edPub, jwkJSON(t, ec.pub.Key, "ec", "", "sig")), wantKIDs: []string{"ed"}},
		{name: "ok/skips_eddsa_alg_on_ec_key", give: jwksOf(edPub, jwkJSON(t, ec.pub.Key, "ec", "EdDSA", "sig")), wantKIDs: []string{"ed"}},
		{name: "ok/skips_es256_alg_on_ed_key", give: jwksOf(jwkJSON(t, ed.pub.Key, "ed", "ES256", "sig"), ecPub), wantKIDs: []string{"ec"}},
		{name: "ok/skips_p384_key_labelled_es256", give: jwksOf(edPub, jwkJSON(t, &p384.PublicKey, "p384", "ES256", "sig")), wantKIDs: []string{"ed"}},
		{name: "ok/skips_missing_kid", give: jwksOf(edPub, jwkJSON(t, ec.pub.Key, "", "ES256", "sig")), wantKIDs: []string{"ed"}},
		{name: "ok/skips_long_kid", give: jwksOf(edPub, jwkJSON(t, ec.pub.Key, strings.Repeat("k", 129), "ES256", "sig")), wantKIDs: []string{"ed"}},
		{name: "ok/skips_duplicate_kid_both", give: jwksOf(edPub, jwkJSON(t, ec.pub.Key, "dup", "ES256", "sig"), jwkJSON(t, newTestKey(t, broker.ES256).pub.Key, "dup", "ES256", "sig")), wantKIDs: []string{"ed"}},
		{name: "ok/skips_duplicate_kid_three_times", give: jwksOf(jwkJSON(t, ed.pub.Key, "dup", "EdDSA", "sig"), jwkJSON(t, ec.pub.Key, "dup", "ES256", "sig"), jwkJSON(t, ed.pub.Key, "dup", "EdDSA", "sig"))},
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
			keys, err := broker.ParseJWKS([]byte(tt.give))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseJWKS succeeded with %d keys", len(keys))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var kids []string
			for _, k := range keys {
				kids = append(kids, k.KeyID)
			}
			if !slices.Equal(kids, tt.wantKIDs) {
				t.Fatalf("kids = %v, want %v", kids, tt.wantKIDs)
			}
			if len(keys) > 0 {
				if _, err := broker.NewStaticKeys(keys...); err != nil {
					t.Errorf("parsed keys are not usable: %v", err)
				}
			}
		})
	}
}

func TestParseJWKS_bounded(t *testing.T) {
	var jwks []string
	for i := range broker.MaxJWKSKeys + 6 {
		jwks = append(jwks, jwkJSON(t, newTestKey(t, broker.EdDSA).pub.Key, fmt.Sprint("k", i), "EdDSA", "sig"))
	}
	keys, err := broker.ParseJWKS([]byte(jwksOf(jwks...)))
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != broker.MaxJWKSKeys {
		t.Fatalf("kept %d keys, want %d", len(keys), broker.MaxJWKSKeys)
	}
}

func TestMarshalJWKS(t *testing.T) {
	ed, ec := newTestKey(t, broker.EdDSA), newTestKey(t, broker.ES256)
	raw, err := broker.MarshalJWKS([]broker.PublicKey{ed.pub, ec.pub})
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range doc.Keys {
		if _, ok := k["d"]; ok {
			t.Errorf("key %v has a private member", k["kid"])
		}
	}
	keys, err := broker.ParseJWKS(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0].KeyID != ed.pub.KeyID || keys[1].KeyID != ec.pub.KeyID {
		t.Fatalf("round trip = %+v", keys)
	}

	bad := []broker.PublicKey{
		{KeyID: "x", Algorithm: broker.ES256, Key: ed.pub.Key},
		{KeyID: "", Algorithm: broker.EdDSA, Key: ed.pub.Key},
		{KeyID: "priv", Algorithm: broker.EdDSA, Key: ed.priv},
	}
	for _, k := range bad {
		if _, err := broker.MarshalJWKS([]broker.PublicKey{k}); err == nil {
			t.Errorf("MarshalJWKS accepted %q (%T, %s)", k.KeyID, k.Key, k.Algorithm)
		}
	}
}

func TestStaticKeys(t *testing.T) {
	ed, ec := newTestKey(t, broker.EdDSA), newTestKey(t, broker.ES256)
	src, err := broker.NewStaticKeys(ed.pub, ec.pub)
	if err != nil {
		t.Fatal(err)
	}
	got, err := src.LookupKey(context.Background(), ec.pub.KeyID)
	if err != nil || got.KeyID != ec.pub.KeyID || got.Algorithm != broker.ES256 {
		t.Errorf("LookupKey = %+v, %v", got, err)
	}
	_, err = src.LookupKey(context.Background(), "nope")
	wantReason(t, err, broker.ReasonUnknownKey)

	if _, err := broker.NewStaticKeys(); err == nil {
		t.Error("NewStaticKeys() with no keys succeeded")
	}
	dup := ec.pub
	dup.KeyID = ed.pub.KeyID
	if _, err := broker.NewStaticKeys(ed.pub, dup); err == nil {
		t.Error("NewStaticKeys accepted a duplicate kid")
	}
}
