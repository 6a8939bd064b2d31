package token

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"

	"github.com/go-json-experiment/json"
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
	public  PublicKey
	// handoffHeader and resultHeader are the encoded protected headers of
	// every handoff and result token this key signs, built once: they
	// never vary.
	handoffHeader, resultHeader string
}

// NewSigningKey prepares priv, an ed25519.PrivateKey for EdDSA or a P-256
// *ecdsa.PrivateKey for ES256, to sign under the id kid.
func NewSigningKey(kid string, alg Algorithm, priv crypto.Signer) (*SigningKey, error) {
	if err := (PublicKey{KeyID: kid, Algorithm: alg, Key: priv.Public()}).Check(); err != nil {
		return nil, fmt.Errorf("broker: signing key: %w", err)
	}
	switch priv.(type) {
	case ed25519.PrivateKey, *ecdsa.PrivateKey:
	default:
		return nil, fmt.Errorf("broker: signing key %q: unsupported private key type %T", kid, priv)
	}
	if len(kid) > maxKidLen {
		return nil, fmt.Errorf("broker: signing key: kid is longer than %d bytes: no verifier would accept its tokens", maxKidLen)
	}
	k := &SigningKey{id: kid, alg: alg, private: priv, public: PublicKey{KeyID: kid, Algorithm: alg, Key: priv.Public()}}
	var err error
	if k.handoffHeader, err = k.protectedHeader(HandoffTokenType); err != nil {
		return nil, fmt.Errorf("broker: signing key: %w", err)
	}
	if k.resultHeader, err = k.protectedHeader(ResultTokenType); err != nil {
		return nil, fmt.Errorf("broker: signing key: %w", err)
	}
	return k, nil
}

// protectedHeader returns the base64url-encoded JOSE header of a JWS of
// type typ signed by k: exactly the members parseHeader accepts.
func (k *SigningKey) protectedHeader(typ string) (string, error) {
	b, err := json.Marshal(struct {
		Alg Algorithm `json:"alg"`
		Kid string    `json:"kid"`
		Typ string    `json:"typ"`
	}{k.alg, k.id, typ})
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// signCompact returns the JWS Compact Serialization (RFC 7515 §7.1) of
// payload under header, an encoded protected header of k's.
func (k *SigningKey) signCompact(header string, payload []byte) (string, error) {
	enc := base64.RawURLEncoding
	buf := make([]byte, 0, len(header)+1+enc.EncodedLen(len(payload))+1+enc.EncodedLen(ecdsaSignatureSize))
	buf = append(buf, header...)
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, payload)
	sig, err := k.sign(buf)
	if err != nil {
		return "", err
	}
	buf = append(buf, '.')
	return string(enc.AppendEncode(buf, sig)), nil
}

// ecdsaSignatureSize is the length of an ES256 JWS signature: R and S as
// two 32-byte big-endian integers (RFC 7518 §3.4). Ed25519's is the same.
const ecdsaSignatureSize = 64

// sign returns the JWS Signature of signingInput: Ed25519 over the input
// (RFC 8037 §3.1), or ECDSA P-256 over its SHA-256 as R || S.
func (k *SigningKey) sign(signingInput []byte) ([]byte, error) {
	switch p := k.private.(type) {
	case ed25519.PrivateKey:
		return ed25519.Sign(p, signingInput), nil
	case *ecdsa.PrivateKey:
		digest := sha256.Sum256(signingInput)
		r, s, err := ecdsa.Sign(rand.Reader, p, digest[:])
		if err != nil {
			return nil, err
		}
		sig := make([]byte, ecdsaSignatureSize)
		r.FillBytes(sig[:ecdsaSignatureSize/2])
		s.FillBytes(sig[ecdsaSignatureSize/2:])
		return sig, nil
	}
	return nil, fmt.Errorf("unsupported private key type %T", k.private)
}

// KeyID returns the key's "kid".
func (k *SigningKey) KeyID() string { return k.id }

// Algorithm returns the one algorithm the key signs with.
func (k *SigningKey) Algorithm() Algorithm { return k.alg }

// Public returns the key's public half, as verifiers trust it. The key is
// shared, not copied: a verifier looking it up on every token allocates
// nothing. It must not be modified.
func (k *SigningKey) Public() PublicKey { return k.public }

// Signer supplies the key a Minter signs with. keys.Keyring is the
// implementation; tests may hold a single SigningKey.
//
// CurrentKey returns the key that signs now, or an error when there is none.
type Signer interface {
	CurrentKey() (*SigningKey, error)
}
