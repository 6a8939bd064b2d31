package broker

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// KeySource finds the public key that verifies a token.
//
// LookupKey receives the "kid" from the token's header, which is not yet
// verified: implementations must treat it as attacker-chosen (bounded work,
// no file paths or URLs built from it). It returns a *Error with
// ReasonUnknownKey when no trusted key has that id, and ReasonUnavailable
// when the source cannot answer; the verifier fails closed on both.
type KeySource interface {
	LookupKey(ctx context.Context, kid string) (PublicKey, error)
}

// MaxJWKSKeys bounds how many keys a parsed JWKS may contribute.
const MaxJWKSKeys = 64

// StaticKeys is a KeySource over a fixed set of keys, for keys given in
// configuration or a file.
type StaticKeys struct {
	keys map[string]PublicKey
}

// NewStaticKeys returns a KeySource holding keys. Each key must be a valid
// Ed25519/EdDSA or P-256/ES256 key with a unique KeyID.
func NewStaticKeys(keys ...PublicKey) (*StaticKeys, error) {
	if len(keys) == 0 {
		return nil, errors.New("broker: NewStaticKeys needs at least one key")
	}
	s := &StaticKeys{keys: make(map[string]PublicKey, len(keys))}
	var errs []error
	for _, k := range keys {
		if err := k.check(); err != nil {
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

// LookupKey implements KeySource.
func (s *StaticKeys) LookupKey(_ context.Context, kid string) (PublicKey, error) {
	if k, ok := s.keys[kid]; ok {
		return k, nil
	}
	return PublicKey{}, reject(ReasonUnknownKey, "kid", "no static key with this kid")
}

// MarshalJWKS encodes public keys as a JWK Set (RFC 7517 §5), each with its
// "kid", "alg" and "use": "sig". Private key material is never written.
func MarshalJWKS(keys []PublicKey) ([]byte, error) {
	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(keys))}
	for _, k := range keys {
		if err := k.check(); err != nil {
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
func ParseJWKS(data []byte) ([]PublicKey, error) {
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
	var out []PublicKey
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

func parseJWK(raw []byte) (PublicKey, bool) {
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(raw); err != nil {
		return PublicKey{}, false
	}
	if !jwk.IsPublic() || jwk.Use != "sig" || jwk.KeyID == "" || len(jwk.KeyID) > maxKidLen {
		return PublicKey{}, false
	}
	k := PublicKey{KeyID: jwk.KeyID, Algorithm: Algorithm(jwk.Algorithm)}
	switch pub := jwk.Key.(type) {
	case ed25519.PublicKey:
		k.Key = pub
	case *ecdsa.PublicKey:
		k.Key = pub
	default:
		return PublicKey{}, false
	}
	if !k.Algorithm.valid() || k.check() != nil {
		return PublicKey{}, false
	}
	return k, true
}
