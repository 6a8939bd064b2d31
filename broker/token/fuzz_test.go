package token_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/broker/internal/fixture"
	"github.com/handoffbroker/handoff/broker/keys"
	"github.com/handoffbroker/handoff/broker/token"
)

// FuzzVerify feeds arbitrary strings to the verifier. It must never panic,
// and it must accept only tokens whose signature verifies, checked here
// with the standard library alone, under a trusted key; the fuzzer cannot
// forge a signature, so any other acceptance is a verifier bug.
func FuzzVerify(f *testing.F) {
	ed, ec := fixture.SeededEd25519Key(f), fixture.SeededES256Key(f)
	for _, k := range []fixture.Key{ed, ec} {
		tok := validToken(f, k)
		f.Add(tok)
		parts := strings.Split(tok, ".")
		f.Add(parts[0] + "." + parts[1] + ".")
		f.Add(tok + "=")
		f.Add(strings.ToUpper(tok))
		h := k.Header()
		h["alg"] = "none"
		f.Add(k.Sign(f, h, fixture.ValidClaims(testJTI)))
		h = k.Header()
		h["typ"] = "JWT"
		f.Add(k.Sign(f, h, fixture.ValidClaims(testJTI)))
		f.Add(k.SignRaw(f, fixture.MustJSON(f, k.Header()), `{"exp":1,"exp":2}`))
		c := fixture.ValidClaims(testJTI)
		c["aud"] = []string{fixture.Audience, "x"}
		f.Add(k.Sign(f, k.Header(), c))
	}
	f.Add("")
	f.Add("..")
	f.Add("a.b.c.d.e")
	f.Add(`{"payload":"e30","signatures":[]}`)

	static, err := keys.NewStatic(ed.Pub, ec.Pub)
	if err != nil {
		f.Fatal(err)
	}
	trusted := map[string]token.PublicKey{ed.Pub.KeyID: ed.Pub, ec.Pub.KeyID: ec.Pub}
	store, err := token.NewMemoryReplayStore(token.MemoryReplayConfig{Now: func() time.Time { return fixture.Now.Add(-time.Hour) }})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { store.Close() })
	v, err := token.NewVerifier(token.VerifierConfig{
		Issuers: []token.TrustedIssuer{{Issuer: fixture.Issuer, Keys: static}}, Audience: fixture.Audience, Replay: store,
		Now: func() time.Time { return fixture.Now },
	})
	if err != nil {
		f.Fatal(err)
	}

	for _, k := range []fixture.Key{ed, ec} {
		if ex := v.Explain(context.Background(), validToken(f, k), token.Expect{AnyTask: true}); ex.Err != nil {
			f.Fatalf("the harness refuses a valid %s token: %v", k.Alg, ex.Err)
		}
	}

	f.Fuzz(func(t *testing.T, tok string) {
		ex := v.Explain(context.Background(), tok, token.Expect{AnyTask: true})
		if ex.Err != nil {
			if token.ReasonOf(ex.Err) == "" {
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
		parts := strings.Split(tok, ".")
		if len(parts) != 3 {
			t.Fatalf("accepted a token of %d segments", len(parts))
		}
		sig, err := base64.RawURLEncoding.DecodeString(parts[2])
		if err != nil {
			t.Fatalf("accepted an undecodable signature: %v", err)
		}
		if !signatureValid(key, []byte(parts[0]+"."+parts[1]), sig) {
			t.Fatalf("accepted a token whose signature does not verify under %s", c.KeyID)
		}
		if c.Issuer != fixture.Issuer || c.Audience != fixture.Audience || !fixture.Now.Before(c.ExpiresAt.Add(token.DefaultLeeway)) {
			t.Fatalf("accepted claims %+v", c)
		}
	})
}

func signatureValid(key token.PublicKey, input, sig []byte) bool {
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
