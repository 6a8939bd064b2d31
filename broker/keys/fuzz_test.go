package keys_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"encoding/json"
	"testing"

	"github.com/handoffbroker/handoff/broker/internal/fixture"
	"github.com/handoffbroker/handoff/broker/keys"
	"github.com/handoffbroker/handoff/broker/token"
)

// FuzzParseJWKS feeds arbitrary documents to ParseJWKS. It must never
// panic, and every key it returns must be a valid public verification key
// with a unique kid: private members never survive.
func FuzzParseJWKS(f *testing.F) {
	ed, ec := fixture.SeededEd25519Key(f), fixture.SeededES256Key(f)
	pub, err := keys.MarshalJWKS([]token.PublicKey{ed.Pub, ec.Pub})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(pub)
	f.Add([]byte(jwksOf(jwkJSON(f, ed.Priv, "priv", "EdDSA", "sig"), jwkJSON(f, ec.Pub.Key, "ec", "ES256", "sig"))))
	f.Add([]byte(jwksOf(jwkJSON(f, ec.Priv, "priv", "ES256", "sig"), jwkJSON(f, ec.Pub.Key, "priv", "ES256", "sig"))))
	f.Add([]byte(jwksOf(jwkJSON(f, ed.Pub.Key, "x", "ES256", "enc"))))
	f.Add([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + rfc8037X + `","d":"` + rfc8037D + `","kid":"a","alg":"EdDSA","use":"sig"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0","alg":"HS256","use":"sig","kid":"h"}]}`))
	f.Add([]byte(`{"keys":[]}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))

	f.Fuzz(func(t *testing.T, data []byte) {
		ks, err := keys.ParseJWKS(data)
		if err != nil {
			if ks != nil {
				t.Fatal("keys returned with an error")
			}
			return
		}
		if len(ks) > keys.MaxJWKSKeys {
			t.Fatalf("%d keys, more than MaxJWKSKeys", len(ks))
		}
		for _, k := range ks {
			switch key := k.Key.(type) {
			case ed25519.PublicKey:
				if k.Algorithm != token.EdDSA || len(key) != ed25519.PublicKeySize {
					t.Fatalf("bad Ed25519 key %+v", k)
				}
			case *ecdsa.PublicKey:
				if k.Algorithm != token.ES256 || key.Curve != elliptic.P256() {
					t.Fatalf("bad ECDSA key %+v", k)
				}
			default:
				t.Fatalf("key %q of type %T survived", k.KeyID, k.Key)
			}
		}
		if len(ks) == 0 {
			return
		}
		if _, err := keys.NewStatic(ks...); err != nil {
			t.Fatalf("returned keys are not usable: %v", err)
		}
		out, err := keys.MarshalJWKS(ks)
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
