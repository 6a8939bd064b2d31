package token_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/handoffbroker/handoff/broker/internal/fixture"
	"github.com/handoffbroker/handoff/broker/keys"
	"github.com/handoffbroker/handoff/broker/token"
)

// hs256 builds an HMAC-SHA256 token keyed with secret.
func hs256(t testing.TB, header map[string]any, claims map[string]any, secret []byte) string {
	t.Helper()
	input := base64.RawURLEncoding.EncodeToString([]byte(fixture.MustJSON(t, header))) + "." + base64.RawURLEncoding.EncodeToString([]byte(fixture.MustJSON(t, claims)))
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(input))
	return input + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// publicKeyBytes returns the encodings of k's public key an attacker might
// guess a confused verifier would use as an HMAC secret.
func publicKeyBytes(t testing.TB, k fixture.Key) map[string][]byte {
	t.Helper()
	out := make(map[string][]byte)
	switch pub := k.Pub.Key.(type) {
	case ed25519.PublicKey:
		out["raw"] = pub
	case *ecdsa.PublicKey:
		raw, err := pub.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		out["raw"] = raw
	}
	der, err := x509.MarshalPKIXPublicKey(k.Pub.Key)
	if err != nil {
		t.Fatal(err)
	}
	out["pkix"] = der
	jwks, err := keys.MarshalJWKS([]token.PublicKey{k.Pub})
	if err != nil {
		t.Fatal(err)
	}
	out["jwks"] = jwks
	return out
}

// TestVerify_attacks feeds the verifier tokens built the way known JWT
// attacks build them. Each must be refused with the stated reason, for both
// algorithms.
func TestVerify_attacks(t *testing.T) {
	type attack struct {
		name       string
		giveToken  func(t testing.TB, k fixture.Key) string
		wantReason token.Reason
	}
	withHeader := func(mut func(h map[string]any)) func(testing.TB, fixture.Key) string {
		return func(t testing.TB, k fixture.Key) string {
			h := k.Header()
			mut(h)
			return k.Sign(t, h, fixture.ValidClaims(testJTI))
		}
	}
	withClaims := func(mut func(c map[string]any)) func(testing.TB, fixture.Key) string {
		return func(t testing.TB, k fixture.Key) string {
			c := fixture.ValidClaims(testJTI)
			mut(c)
			return k.Sign(t, k.Header(), c)
		}
	}
	// withPayload signs raw payload JSON, with "VALID" replaced by the
	// members of the valid claims less those named in drop.
	withPayload := func(payload string, drop ...string) func(testing.TB, fixture.Key) string {
		return func(t testing.TB, k fixture.Key) string {
			c := fixture.ValidClaims(testJTI)
			for _, name := range drop {
				delete(c, name)
			}
			valid := fixture.MustJSON(t, c)
			return k.SignRaw(t, fixture.MustJSON(t, k.Header()), strings.Replace(payload, "VALID", valid[1:len(valid)-1], 1))
		}
	}
	iat := fixture.ValidClaims(testJTI)["iat"].(int64)
	expired := iat - 3600

	attacks := []attack{
		// Unsigned tokens (CVE-2015-9235 and kin).
		{name: "alg_none_empty_signature", wantReason: token.ReasonMalformed,
			giveToken: func(t testing.TB, k fixture.Key) string {
				h := k.Header()
				h["alg"] = "none"
				tok := k.Sign(t, h, fixture.ValidClaims(testJTI))
				return tok[:strings.LastIndexByte(tok, '.')+1]
			}},
		{name: "alg_none_with_signature", wantReason: token.ReasonUnsupportedAlg, giveToken: withHeader(func(h map[string]any) { h["alg"] = "none" })},
		{name: "alg_None_capitalised", wantReason: token.ReasonUnsupportedAlg, giveToken: withHeader(func(h map[string]any) { h["alg"] = "None" })},

		// Signature stripping.
		{name: "signature_removed", wantReason: token.ReasonMalformed,
			giveToken: func(t testing.TB, k fixture.Key) string {
				tok := validToken(t, k)
				return tok[:strings.LastIndexByte(tok, '.')]
			}},

		// Key confusion: the issuer's public key (in the form a confused
		// verifier might hand to HMAC) used as an HS256 secret.
		{name: "hs256_secret_raw_public_key", wantReason: token.ReasonUnsupportedAlg,
			giveToken: func(t testing.TB, k fixture.Key) string {
				h := k.Header()
				h["alg"] = "HS256"
				return hs256(t, h, fixture.ValidClaims(testJTI), publicKeyBytes(t, k)["raw"])
			}},
		{name: "hs256_secret_pkix_public_key", wantReason: token.ReasonUnsupportedAlg,
			giveToken: func(t testing.TB, k fixture.Key) string {
				h := k.Header()
				h["alg"] = "HS256"
				return hs256(t, h, fixture.ValidClaims(testJTI), publicKeyBytes(t, k)["pkix"])
			}},
		{name: "hs256_secret_jwks_json", wantReason: token.ReasonUnsupportedAlg,
			giveToken: func(t testing.TB, k fixture.Key) string {
				h := k.Header()
				h["alg"] = "HS256"
				return hs256(t, h, fixture.ValidClaims(testJTI), publicKeyBytes(t, k)["jwks"])
			}},

		// A kid that names no trusted key, or a path, or a URL.
		{name: "kid_unknown", wantReason: token.ReasonUnknownKey, giveToken: withHeader(func(h map[string]any) { h["kid"] = "attacker-key-1" })},
		{name: "kid_path", wantReason: token.ReasonUnknownKey, giveToken: withHeader(func(h map[string]any) { h["kid"] = "../../../../dev/null" })},
		{name: "kid_url", wantReason: token.ReasonUnknownKey, giveToken: withHeader(func(h map[string]any) { h["kid"] = "https://attacker.test/key.jwk" })},
		{name: "kid_sql", wantReason: token.ReasonUnknownKey, giveToken: withHeader(func(h map[string]any) { h["kid"] = "x' UNION SELECT 'key" })},

		// Embedded key (CVE-2018-0114): the attacker names their own key in
		// the header and signs with it, under their kid or the trusted one.
		{name: "embedded_jwk_attacker_kid", wantReason: token.ReasonBadHeader,
			giveToken: func(t testing.TB, k fixture.Key) string {
				evil := fixture.NewKey(t, k.Alg)
				h := evil.Header()
				h["jwk"] = jose.JSONWebKey{Key: evil.Pub.Key, KeyID: evil.Pub.KeyID, Algorithm: string(evil.Alg), Use: "sig"}
				return evil.Sign(t, h, fixture.ValidClaims(testJTI))
			}},
		{name: "embedded_jwk_trusted_kid", wantReason: token.ReasonBadHeader,
			giveToken: func(t testing.TB, k fixture.Key) string {
				evil := fixture.NewKey(t, k.Alg)
				h := k.Header()
				h["jwk"] = jose.JSONWebKey{Key: evil.Pub.Key, KeyID: k.Pub.KeyID, Algorithm: string(evil.Alg), Use: "sig"}
				return evil.Sign(t, h, fixture.ValidClaims(testJTI))
			}},
		{name: "jku_attacker_url", wantReason: token.ReasonBadHeader, giveToken: withHeader(func(h map[string]any) { h["jku"] = "https://attacker.test/jwks.json" })},

		// An extension the verifier would have to understand (RFC 7515 §4.1.11).
		{name: "crit_header", wantReason: token.ReasonBadHeader,
			giveToken: withHeader(func(h map[string]any) {
				h["crit"] = []string{"http://example.test/ext"}
				h["http://example.test/ext"] = true
			})},

		// Other serializations and JWE.
		{name: "json_serialization_flattened", wantReason: token.ReasonMalformed,
			giveToken: func(t testing.TB, k fixture.Key) string {
				p := strings.Split(validToken(t, k), ".")
				return fixture.MustJSON(t, map[string]string{"protected": p[0], "payload": p[1], "signature": p[2]})
			}},
		{name: "json_serialization_general", wantReason: token.ReasonMalformed,
			giveToken: func(t testing.TB, k fixture.Key) string {
				p := strings.Split(validToken(t, k), ".")
				return fixture.MustJSON(t, map[string]any{"payload": p[1], "signatures": []map[string]string{{"protected": p[0], "signature": p[2]}}})
			}},
		{name: "jwe_five_segments", wantReason: token.ReasonMalformed,
			giveToken: func(t testing.TB, k fixture.Key) string {
				hdr := base64.RawURLEncoding.EncodeToString([]byte(fixture.MustJSON(t, map[string]any{"alg": "dir", "enc": "A256GCM", "kid": k.Pub.KeyID, "typ": token.HandoffTokenType})))
				return hdr + ".." + base64.RawURLEncoding.EncodeToString(make([]byte, 12)) + "." + base64.RawURLEncoding.EncodeToString([]byte(fixture.MustJSON(t, fixture.ValidClaims(testJTI)))) + "." + base64.RawURLEncoding.EncodeToString(make([]byte, 16))
			}},

		// All-zero signatures: r = s = 0 is the "psychic signature"
		// (CVE-2022-21449); 64 zero bytes for Ed25519 too.
		{name: "zero_signature", wantReason: token.ReasonBadSignature,
			giveToken: func(t testing.TB, k fixture.Key) string {
				tok := validToken(t, k)
				return tok[:strings.LastIndexByte(tok, '.')+1] + base64.RawURLEncoding.EncodeToString(make([]byte, 64))
			}},

		// A multi-audience token is refused even when it names us: it
		// could be replayed at the other audience.
		{name: "aud_array_with_right_audience", wantReason: token.ReasonWrongAudience,
			giveToken: withClaims(func(c map[string]any) { c["aud"] = []string{fixture.Audience, "https://other.test"} })},

		// Cross-JWT confusion (RFC 8725 §2.8): an ordinary JWT, say an ID
		// token, is not a handoff token.
		{name: "typ_JWT", wantReason: token.ReasonBadType, giveToken: withHeader(func(h map[string]any) { h["typ"] = "JWT" })},

		// Parser differentials: duplicate names may be read as the first by
		// one parser and the last by another.
		{name: "duplicate_sub", wantReason: token.ReasonMalformed, giveToken: withPayload(`{VALID,"sub":"admin"}`)},
		{name: "duplicate_exp", wantReason: token.ReasonMalformed, giveToken: withPayload(`{VALID,"exp":253402300799}`)},
		{name: "duplicate_header_alg", wantReason: token.ReasonMalformed,
			giveToken: func(t testing.TB, k fixture.Key) string {
				h := fixture.MustJSON(t, k.Header())
				return k.SignRaw(t, `{"alg":"none",`+h[1:], fixture.MustJSON(t, fixture.ValidClaims(testJTI)))
			}},

		// Case variants must not stand in for the real claim names.
		{name: "case_variant_EXP_only", wantReason: token.ReasonMissingClaim,
			giveToken: func(t testing.TB, k fixture.Key) string {
				c := fixture.ValidClaims(testJTI)
				c["EXP"] = c["exp"]
				delete(c, "exp")
				return k.Sign(t, k.Header(), c)
			}},
		{name: "case_variant_EXP_extends_expired", wantReason: token.ReasonExpired,
			giveToken: withClaims(func(c map[string]any) {
				c["iat"], c["nbf"], c["exp"], c["EXP"] = expired-60, expired-60, expired, 253402300799
			})},
		{name: "case_variant_Aud", wantReason: token.ReasonWrongAudience,
			giveToken: withClaims(func(c map[string]any) { c["aud"], c["Aud"] = "https://other.test", fixture.Audience })},

		// NumericDate spellings a lax parser might accept.
		{name: "exp_string", wantReason: token.ReasonInvalidClaim, giveToken: withClaims(func(c map[string]any) { c["exp"] = "253402300799" })},
		{name: "exp_float", wantReason: token.ReasonInvalidClaim, giveToken: withPayload(`{VALID,"exp":1772366450.0}`, "exp")},
		{name: "exp_exponent", wantReason: token.ReasonInvalidClaim, giveToken: withPayload(`{"exp":1.77236645e9,VALID}`, "exp")},
		{name: "exp_negative", wantReason: token.ReasonInvalidClaim, giveToken: withClaims(func(c map[string]any) { c["exp"] = -1 })},
		{name: "exp_huge", wantReason: token.ReasonInvalidClaim, giveToken: withClaims(func(c map[string]any) { c["exp"] = uint64(1) << 63 })},
		{name: "exp_past_year_9999", wantReason: token.ReasonInvalidClaim, giveToken: withClaims(func(c map[string]any) { c["exp"] = 253402300800 })},
		{name: "exp_bool", wantReason: token.ReasonInvalidClaim, giveToken: withClaims(func(c map[string]any) { c["exp"] = true })},

		// Re-spellings of the same token.
		{name: "base64_padding", wantReason: token.ReasonMalformed,
			giveToken: func(t testing.TB, k fixture.Key) string { return validToken(t, k) + "==" }},
		{name: "base64_padding_header", wantReason: token.ReasonMalformed,
			giveToken: func(t testing.TB, k fixture.Key) string {
				h, rest, _ := strings.Cut(validToken(t, k), ".")
				return h + "=." + rest
			}},
		{name: "leading_space", wantReason: token.ReasonMalformed,
			giveToken: func(t testing.TB, k fixture.Key) string { return " " + validToken(t, k) }},
		{name: "trailing_newline", wantReason: token.ReasonMalformed,
			giveToken: func(t testing.TB, k fixture.Key) string { return validToken(t, k) + "\n" }},
		{name: "inner_whitespace", wantReason: token.ReasonMalformed,
			giveToken: func(t testing.TB, k fixture.Key) string { return strings.Replace(validToken(t, k), ".", ". ", 1) }},
		{name: "bearer_prefix", wantReason: token.ReasonMalformed,
			giveToken: func(t testing.TB, k fixture.Key) string { return "Bearer " + validToken(t, k) }},

		// Resource exhaustion: refused before any parsing.
		{name: "size_8KiB_plus_1", wantReason: token.ReasonTooLarge,
			giveToken: func(t testing.TB, k fixture.Key) string { return sizedToken(t, k, 8<<10+1) }},
		{name: "size_1MiB_garbage", wantReason: token.ReasonTooLarge,
			giveToken: func(testing.TB, fixture.Key) string { return strings.Repeat("A", 1<<20) }},
	}
	for _, alg := range token.Algorithms() {
		k := fixture.NewKey(t, alg)
		for _, tt := range attacks {
			t.Run(string(alg)+"/"+tt.name, func(t *testing.T) {
				v := fixture.NewVerifier(t, fixture.VerifierConfig(t, k.Pub))
				tok := tt.giveToken(t, k)
				_, err := v.Verify(context.Background(), tok, token.Expect{AnyTask: true})
				fixture.WantReason(t, err, tt.wantReason)
				if strings.Contains(err.Error(), tok) {
					t.Error("the error message contains the token")
				}
			})
		}
	}
}

// TestVerify_keyConfusionAcrossAlgorithms checks that a token cannot pick an
// algorithm for a key: an ES256 key never verifies an EdDSA token and the
// reverse, even when both keys are trusted.
func TestVerify_keyConfusionAcrossAlgorithms(t *testing.T) {
	ed, ec := fixture.NewKey(t, token.EdDSA), fixture.NewKey(t, token.ES256)
	v := fixture.NewVerifier(t, fixture.VerifierConfig(t, ed.Pub, ec.Pub))
	tests := []struct {
		name   string
		signer fixture.Key
		kidOf  fixture.Key
	}{
		{name: "fail/eddsa_token_es256_kid", signer: ed, kidOf: ec},
		{name: "fail/es256_token_eddsa_kid", signer: ec, kidOf: ed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.signer.Header()
			h["kid"] = tt.kidOf.Pub.KeyID
			_, err := v.Verify(context.Background(), tt.signer.Sign(t, h, fixture.ValidClaims(testJTI)), token.Expect{AnyTask: true})
			fixture.WantReason(t, err, token.ReasonUnsupportedAlg)
		})
	}
}

// TestVerify_tokenID checks that a rejection names the token's jti only once
// the signature has verified: a forged jti must not reach audit logs as if
// it were the issuer's.
func TestVerify_tokenID(t *testing.T) {
	k := fixture.NewKey(t, token.EdDSA)
	forged := fixture.NewKey(t, token.EdDSA).Sign(t, k.Header(), fixture.ValidClaims(testJTI))
	c := fixture.ValidClaims(testJTI)
	c["aud"] = "https://other.test"
	tests := []struct {
		name        string
		giveToken   string
		wantReason  token.Reason
		wantTokenID string
	}{
		{name: "fail/bad_signature_no_id", giveToken: forged, wantReason: token.ReasonBadSignature},
		{name: "fail/wrong_audience_names_id", giveToken: k.Sign(t, k.Header(), c), wantReason: token.ReasonWrongAudience, wantTokenID: testJTI},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := fixture.NewVerifier(t, fixture.VerifierConfig(t, k.Pub))
			_, err := v.Verify(context.Background(), tt.giveToken, token.Expect{AnyTask: true})
			fixture.WantReason(t, err, tt.wantReason)
			var be *token.Error
			if !errors.As(err, &be) || be.TokenID != tt.wantTokenID {
				t.Errorf("TokenID = %q, want %q", be.TokenID, tt.wantTokenID)
			}
		})
	}
}
