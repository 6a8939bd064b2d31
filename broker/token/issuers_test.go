package token_test

import (
	"context"
	"testing"

	"github.com/handoffbroker/handoff/broker/brokertest"
	"github.com/handoffbroker/handoff/broker/internal/fixture"
	"github.com/handoffbroker/handoff/broker/keys"
	"github.com/handoffbroker/handoff/broker/token"
)

const (
	issuerA = "https://issuer-a.test"
	issuerB = "https://issuer-b.test"
)

// twoIssuers returns a key for each of issuerA and issuerB, and the trust
// configuration that pairs each issuer with its own key only. With
// sharedKid, both keys carry the same kid, as two unrelated issuers'
// JWKS may.
func twoIssuers(t testing.TB, sharedKid bool) (a, b fixture.Key, trust []token.TrustedIssuer) {
	t.Helper()
	a, b = fixture.NewKey(t, token.EdDSA), fixture.NewKey(t, token.EdDSA)
	if sharedKid {
		a.Pub.KeyID, b.Pub.KeyID = "key-1", "key-1"
	}
	srcA, err := keys.NewStatic(a.Pub)
	if err != nil {
		t.Fatal(err)
	}
	srcB, err := keys.NewStatic(b.Pub)
	if err != nil {
		t.Fatal(err)
	}
	return a, b, []token.TrustedIssuer{{Issuer: issuerA, Keys: srcA}, {Issuer: issuerB, Keys: srcB}}
}

// issuerCase is a token or list claiming giveIssuer, signed by issuer A's
// key or by B's.
type issuerCase struct {
	name       string
	sharedKid  bool
	giveIssuer string
	signByA    bool
	wantReason token.Reason
}

// signer returns the key tt signs with.
func (tt issuerCase) signer(a, b fixture.Key) fixture.Key {
	if tt.signByA {
		return a
	}
	return b
}

// TestVerify_keysPerIssuer checks that a verifier trusting two issuers
// takes a token's key only from the issuer the token claims: issuer A's
// key never signs for issuer B (cross-issuer key confusion), whether A's
// kid is unknown to B or both use the same kid.
func TestVerify_keysPerIssuer(t *testing.T) {
	tests := []issuerCase{
		{name: "ok/issuer_a_with_its_key", giveIssuer: issuerA, signByA: true},
		{name: "ok/issuer_b_with_its_key", giveIssuer: issuerB},
		{name: "ok/shared_kid_issuer_a", sharedKid: true, giveIssuer: issuerA, signByA: true},
		{name: "ok/shared_kid_issuer_b", sharedKid: true, giveIssuer: issuerB},
		{name: "fail/a_key_signs_for_b", giveIssuer: issuerB, signByA: true, wantReason: token.ReasonUnknownKey},
		{name: "fail/b_key_signs_for_a", giveIssuer: issuerA, wantReason: token.ReasonUnknownKey},
		{name: "fail/a_key_signs_for_b_shared_kid", sharedKid: true, giveIssuer: issuerB, signByA: true, wantReason: token.ReasonBadSignature},
		{name: "fail/untrusted_issuer", giveIssuer: fixture.Issuer, signByA: true, wantReason: token.ReasonWrongIssuer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b, trust := twoIssuers(t, tt.sharedKid)
			cfg := fixture.VerifierConfig(t, a.Pub)
			cfg.Issuers = trust
			v := fixture.NewVerifier(t, cfg)
			signer := tt.signer(a, b)
			c := fixture.ValidClaims(testJTI)
			c["iss"] = tt.giveIssuer

			got, err := v.Verify(context.Background(), signer.Sign(t, signer.Header(), c), token.Expect{AnyTask: true})
			fixture.WantReason(t, err, tt.wantReason)
			if tt.wantReason != "" {
				return
			}
			if cl := got.Claims(); cl.Issuer != tt.giveIssuer || cl.KeyID != signer.Pub.KeyID {
				t.Errorf("issuer, kid = %q, %q; want %q, %q", cl.Issuer, cl.KeyID, tt.giveIssuer, signer.Pub.KeyID)
			}
		})
	}
}

// TestRevocationList_keysPerIssuer is TestVerify_keysPerIssuer for the
// revocation list profile: issuer A's key cannot sign a list that withdraws
// issuer B's tokens.
func TestRevocationList_keysPerIssuer(t *testing.T) {
	tests := []issuerCase{
		{name: "ok/issuer_a_with_its_key", giveIssuer: issuerA, signByA: true},
		{name: "ok/issuer_b_with_its_key", giveIssuer: issuerB},
		{name: "fail/a_key_signs_for_b", giveIssuer: issuerB, signByA: true, wantReason: token.ReasonUnknownKey},
		{name: "fail/a_key_signs_for_b_shared_kid", sharedKid: true, giveIssuer: issuerB, signByA: true, wantReason: token.ReasonBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b, trust := twoIssuers(t, tt.sharedKid)
			v := fixture.NewListVerifier(t, token.RevocationListVerifierConfig{Issuers: trust, Now: brokertest.NewClock(fixture.Now).Now})
			signer := tt.signer(a, b)
			iat := fixture.Now.Unix()
			h := signer.Header()
			h["typ"] = token.RevocationListType
			list := signer.Sign(t, h, map[string]any{"iss": tt.giveIssuer, "iat": iat, "exp": iat + 300,
				"jtis": []any{map[string]any{"jti": "jti-1", "exp": iat + 60}}})

			got, err := v.Verify(context.Background(), list)
			fixture.WantReason(t, err, tt.wantReason)
			if tt.wantReason == "" && got.Issuer != tt.giveIssuer {
				t.Errorf("issuer = %q, want %q", got.Issuer, tt.giveIssuer)
			}
		})
	}
}
