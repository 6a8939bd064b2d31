package broker_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/json"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/broker"
)

// seededES256Key returns the same P-256 key on every run.
func seededES256Key(t testing.TB) testKey {
	t.Helper()
	d := sha256.Sum256([]byte("handoff broker fuzz key p-256"))
	priv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d[:])
	if err != nil {
		t.Fatal(err)
	}
	return keyFromSigner(t, broker.ES256, priv)
}

// FuzzVerify feeds arbitrary strings to the verifier. It must never panic,
// and it must accept only tokens whose signature verifies, checked here
// with the standard library alone, under a trusted key; the fuzzer cannot
// forge a signature, so any other acceptance is a verifier bug.
func FuzzVerify(f *testing.F) {
	ed, ec := seededEd25519Key(f), seededES256Key(f)
	for _, k := range []testKey{ed, ec} {
		tok := validToken(f, k)
		f.Add(tok)
		parts := strings.Split(tok, ".")
		f.Add(parts[0] + "." + parts[1] + ".")
		f.Add(tok + "=")
		f.Add(strings.ToUpper(tok))
		h := k.header()
		h["alg"] = "none"
		f.Add(k.sign(f, h, validClaims(testJTI)))
		h = k.header()
		h["typ"] = "JWT"
		f.Add(k.sign(f, h, validClaims(testJTI)))
		f.Add(k.signRaw(f, mustJSON(f, k.header()), `{"exp":1,"exp":2}`))
		c := validClaims(testJTI)
		c["aud"] = []string{testAudience, "x"}
		f.Add(k.sign(f, k.header(), c))
	}
	f.Add("")
	f.Add("..")
	f.Add("a.b.c.d.e")
	f.Add(`{"payload":"e30","signatures":[]}`)

	keys, err := broker.NewStaticKeys(ed.pub, ec.pub)
	if err != nil {
		f.Fatal(err)
	}
	trusted := map[string]broker.PublicKey{ed.pub.KeyID: ed.pub, ec.pub.KeyID: ec.pub}
	store, err := broker.NewMemoryReplayStore(broker.MemoryReplayConfig{Now: func() time.Time { return testNow.Add(-time.Hour) }})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { store.Close() })
	v, err := broker.NewVerifier(broker.VerifierConfig{
		Issuers: []string{testIssuer}, Audience: testAudience, Keys: keys, Replay: store,
		Now: func() time.Time { return testNow },
	})
	if err != nil {
		f.Fatal(err)
	}

	for _, k := range []testKey{ed, ec} {
		if ex := v.Explain(context.Background(), validToken(f, k), broker.Expect{}); ex.Err != nil {
			f.Fatalf("the harness refuses a valid %s token: %v", k.alg, ex.Err)
		}
	}

	f.Fuzz(func(t *testing.T, token string) {
		ex := v.Explain(context.Background(), token, broker.Expect{})
		if ex.Err != nil {
			if broker.ReasonOf(ex.Err) == "" {
				t.Fatalf("rejection without a reason: %v", ex.Err)
			}
			if ex.Token != nil {
				t.Fatal("rejected token returned claims")
			}
			return
		}
		c := ex.Token.Claims()
		key, ok := trusted[c.KeyID]
		if !ok {
			t.Fatalf("accepted under untrusted kid %q", c.KeyID)
		}
		parts := strings.Split(token, ".")
		if len(parts) != 3 {
			t.Fatalf("accepted a token of %d segments", len(parts))
		}
		sig, err := b64.DecodeString(parts[2])
		if err != nil {
			t.Fatalf("accepted an undecodable signature: %v", err)
		}
		if !signatureValid(key, []byte(parts[0]+"."+parts[1]), sig) {
			t.Fatalf("accepted a token whose signature does not verify under %s", c.KeyID)
		}
		if c.Issuer != testIssuer || c.Audience != testAudience || !testNow.Before(c.ExpiresAt.Add(broker.DefaultLeeway)) {
			t.Fatalf("accepted claims %+v", c)
		}
	})
}

func signatureValid(key broker.PublicKey, input, sig []byte) bool {
	switch k := key.Key.(type) {
	case ed25519.PublicKey:
		return ed25519.Verify(k, input, sig)
	case *ecdsa.PublicKey:
		if len(sig) != 64 {
			return false
		}
		sum := sha256.Sum256(input)
		return ecdsa.Verify(k, sum[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:]))
	}
	return false
}

// FuzzParseJWKS feeds arbitrary documents to ParseJWKS. It must never
// panic, and every key it returns must be a valid public verification key
// with a unique kid: private members never survive.
func FuzzParseJWKS(f *testing.F) {
	ed, ec := seededEd25519Key(f), seededES256Key(f)
	pub, err := broker.MarshalJWKS([]broker.PublicKey{ed.pub, ec.pub})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(pub)
	f.Add([]byte(jwksOf(jwkJSON(f, ed.priv, "priv", "EdDSA", "sig"), jwkJSON(f, ec.pub.Key, "ec", "ES256", "sig"))))
	f.Add([]byte(jwksOf(jwkJSON(f, ec.priv, "priv", "ES256", "sig"), jwkJSON(f, ec.pub.Key, "priv", "ES256", "sig"))))
	f.Add([]byte(jwksOf(jwkJSON(f, ed.pub.Key, "x", "ES256", "enc"))))
	f.Add([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + rfc8037X + `","d":"` + rfc8037D + `","kid":"a","alg":"EdDSA","use":"sig"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0","alg":"HS256","use":"sig","kid":"h"}]}`))
	f.Add([]byte(`{"keys":[]}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))

	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := broker.ParseJWKS(data)
		if err != nil {
			if keys != nil {
				t.Fatal("keys returned with an error")
			}
			return
		}
		if len(keys) > broker.MaxJWKSKeys {
			t.Fatalf("%d keys, more than MaxJWKSKeys", len(keys))
		}
		for _, k := range keys {
			switch key := k.Key.(type) {
			case ed25519.PublicKey:
				if k.Algorithm != broker.EdDSA || len(key) != ed25519.PublicKeySize {
					t.Fatalf("bad Ed25519 key %+v", k)
				}
			case *ecdsa.PublicKey:
				if k.Algorithm != broker.ES256 || key.Curve != elliptic.P256() {
					t.Fatalf("bad ECDSA key %+v", k)
				}
			default:
				t.Fatalf("key %q of type %T survived", k.KeyID, k.Key)
			}
		}
		if len(keys) == 0 {
			return
		}
		if _, err := broker.NewStaticKeys(keys...); err != nil {
			t.Fatalf("returned keys are not usable: %v", err)
		}
		out, err := broker.MarshalJWKS(keys)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Keys []map[string]json.RawMessage `json:"keys"`
		}
		if err := json.Unmarshal(out, &doc); err != nil {
			t.Fatal(err)
		}
		for _, k := range doc.Keys {
			if _, ok := k["d"]; ok {
				t.Fatal("a private member survived")
			}
		}
	})
}
