package keys

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/handoffbroker/handoff/broker/token"
)

// MaxJWKSKeys bounds how many keys a parsed JWKS may contribute.
const MaxJWKSKeys = 64

// Static is a token.KeySource over a fixed set of keys, for keys given in
// configuration or a file.
type Static struct {
	keys map[string]token.PublicKey
}

// NewStatic returns a token.KeySource holding keys. Each key must be a valid
// Ed25519/EdDSA or P-256/ES256 key with a unique KeyID.
func NewStatic(keys ...token.PublicKey) (*Static, error) {
	if len(keys) == 0 {
		return nil, errors.New("broker: NewStatic needs at least one key")
	}
	s := &Static{keys: make(map[string]token.PublicKey, len(keys))}
	var errs []error
	for _, k := range keys {
		if err := k.Check(); err != nil {
			errs = append(errs, err)
			continue
		}
		if _, dup := s.keys[k.KeyID]; dup {
			errs = append(errs, fmt.Errorf("duplicate kid %q", k.KeyID))
			continue
		}
		s.keys[k.KeyID] = k
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("broker: static keys: %w", err)
	}
	return s, nil
}

// LookupKey implements token.KeySource.
func (s *Static) LookupKey(_ context.Context, kid string) (token.PublicKey, error) {
	if k, ok := s.keys[kid]; ok {
		return k, nil
	}
	return token.PublicKey{}, &token.Error{Reason: token.ReasonUnknownKey, Claim: "kid", Detail: "no static key with this kid"}
}

// MarshalJWKS encodes public keys as a JWK Set (RFC 7517 §5), each with its
// "kid", "alg" and "use": "sig". Private key material is never written.
func MarshalJWKS(keys []token.PublicKey) ([]byte, error) {
	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(keys))}
	for _, k := range keys {
		if err := k.Check(); err != nil {
			return nil, fmt.Errorf("broker: jwks: %w", err)
		}
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.Key, KeyID: k.KeyID, Algorithm: string(k.Algorithm), Use: "sig"})
	}
	return json.Marshal(set)
}

// ParseJWKS reads a JWK Set from an untrusted source and returns the keys
// usable for verification. It skips, rather than fails on, keys that are
// private, not "use": "sig", without "kid", of an algorithm outside the
// allowlist, or whose key type does not match their "alg"; and it skips a
// "kid" that appears twice (both copies), so a set cannot make the choice
// of key ambiguous. It fails only when the document is not a JWK Set.
func ParseJWKS(data []byte) ([]token.PublicKey, error) {
	var doc struct {
		Keys []jsontext.Value `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("broker: jwks: %w", err)
	}
	if doc.Keys == nil {
		return nil, errors.New("broker: jwks: no \"keys\" member")
	}
	seen := make(map[string]int)
	var out []token.PublicKey
	for _, raw := range doc.Keys {
		k, ok := parseJWK(raw)
		if !ok {
			continue
		}
		seen[k.KeyID]++
		if seen[k.KeyID] == 1 {
			out = append(out, k)
		}
	}
	kept := out[:0]
	for _, k := range out {
		if seen[k.KeyID] == 1 {
			kept = append(kept, k)
		}
	}
	if len(kept) > MaxJWKSKeys {
		kept = kept[:MaxJWKSKeys]
	}
	return kept, nil
}

func parseJWK(raw []byte) (token.PublicKey, bool) {
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(raw); err != nil {
		return token.PublicKey{}, false
	}
	if !jwk.IsPublic() || jwk.Use != "sig" || jwk.KeyID == "" || len(jwk.KeyID) > token.MaxKeyIDLen {
		return token.PublicKey{}, false
	}
	k := token.PublicKey{KeyID: jwk.KeyID, Algorithm: token.Algorithm(jwk.Algorithm)}
	switch pub := jwk.Key.(type) {
	case ed25519.PublicKey:
		k.Key = pub
	case *ecdsa.PublicKey:
		k.Key = pub
	default:
		return token.PublicKey{}, false
	}
	if !k.Algorithm.Supported() || k.Check() != nil {
		return token.PublicKey{}, false
	}
	return k, true
}
