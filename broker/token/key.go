package token

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"errors"
	"fmt"
	"slices"

	"github.com/go-jose/go-jose/v4"
)

// Algorithm is a JWS signature algorithm the broker supports.
type Algorithm string

// The supported algorithms. This is the fixed allowlist (RFC 8725 §3.1): a
// token naming any other "alg" is rejected before a key is looked up.
const (
	EdDSA Algorithm = "EdDSA" // Ed25519 (RFC 8037). The default.
	ES256 Algorithm = "ES256" // ECDSA P-256 with SHA-256 (RFC 7518 §3.4).
)

var supportedAlgorithms = []Algorithm{EdDSA, ES256}

// Algorithms returns the fixed allowlist, in order of preference. The slice
// is a copy: changing it changes nothing.
func Algorithms() []Algorithm { return slices.Clone(supportedAlgorithms) }

// Supported reports whether a is in the fixed allowlist.
func (a Algorithm) Supported() bool { return a == EdDSA || a == ES256 }

// MaxKeyIDLen is the longest "kid" a token header may carry, in bytes. Key
// sources need not hold keys with longer ids: no token can name them.
const MaxKeyIDLen = maxKidLen

// PublicKey is a trusted verification key.
type PublicKey struct {
	// KeyID is the key's "kid": its RFC 7638 JWK thumbprint when minted here.
	KeyID string
	// Algorithm is the only algorithm this key verifies.
	Algorithm Algorithm
	// Key is an ed25519.PublicKey or a *ecdsa.PublicKey on P-256.
	Key crypto.PublicKey
}

// Check reports whether p is usable for verification: it has a kid, and is
// an Ed25519 key for EdDSA or a P-256 key for ES256.
func (p PublicKey) Check() error {
	if p.KeyID == "" {
		return errors.New("key has no kid")
	}
	switch k := p.Key.(type) {
	case ed25519.PublicKey:
		if p.Algorithm != EdDSA || len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("key %q: Ed25519 key must be used with EdDSA", p.KeyID)
		}
	case *ecdsa.PublicKey:
		if p.Algorithm != ES256 || k.Curve != elliptic.P256() {
			return fmt.Errorf("key %q: ECDSA key must be P-256 and used with ES256", p.KeyID)
		}
	default:
		return fmt.Errorf("key %q: unsupported key type %T", p.KeyID, p.Key)
	}
	return nil
}

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

// SigningKey is a private key prepared for signing handoff tokens and
// revocation lists. Build one with NewSigningKey; a Signer hands it to the
// Minter. It never exposes the private key.
type SigningKey struct {
	id      string
	alg     Algorithm
	private crypto.Signer
	handoff jose.Signer // built once: "typ" handoff+jwt and this "kid"
	result  jose.Signer // built once: "typ" handoff-result+jwt and this "kid"
}

// NewSigningKey prepares priv, an Ed25519 key for EdDSA or a P-256 key for
// ES256, to sign under the id kid.
func NewSigningKey(kid string, alg Algorithm, priv crypto.Signer) (*SigningKey, error) {
	if err := (PublicKey{KeyID: kid, Algorithm: alg, Key: priv.Public()}).Check(); err != nil {
		return nil, fmt.Errorf("broker: signing key: %w", err)
	}
	handoff, err := newTypedSigner(kid, alg, priv, HandoffTokenType)
	if err != nil {
		return nil, err
	}
	result, err := newTypedSigner(kid, alg, priv, ResultTokenType)
	if err != nil {
		return nil, err
	}
	return &SigningKey{id: kid, alg: alg, private: priv, handoff: handoff, result: result}, nil
}

// newTypedSigner returns a signer whose header carries exactly alg, kid and
// typ.
func newTypedSigner(kid string, alg Algorithm, priv crypto.Signer, typ string) (jose.Signer, error) {
	opts := (&jose.SignerOptions{}).WithType(jose.ContentType(typ)).WithHeader(jose.HeaderKey("kid"), kid)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg), Key: priv}, opts)
	if err != nil {
		return nil, fmt.Errorf("broker: signer: %w", err)
	}
	return signer, nil
}

// KeyID returns the key's "kid".
func (k *SigningKey) KeyID() string { return k.id }

// Algorithm returns the one algorithm the key signs with.
func (k *SigningKey) Algorithm() Algorithm { return k.alg }

// Public returns the key's public half, as verifiers trust it.
func (k *SigningKey) Public() PublicKey {
	return PublicKey{KeyID: k.id, Algorithm: k.alg, Key: k.private.Public()}
}

// Signer supplies the key a Minter signs with. keys.Keyring is the
// implementation; tests may hold a single SigningKey.
//
// CurrentKey returns the key that signs now, or an error when there is none.
type Signer interface {
	CurrentKey() (*SigningKey, error)
}
