// Package brokertest holds the helpers the broker packages' tests share: a
// settable clock, keys the test holds privately so it can sign tokens by
// hand, and ready-made verifiers, minters, stores and issuers pinned to one
// instant. It is for tests only.
package brokertest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/broker/keys"
	"github.com/handoffbroker/handoff/broker/token"
)

// The issuer and audience every helper uses.
const (
	Issuer   = "https://issuer.test"
	Audience = "https://relying.test"
)

// Now is the pinned "now" of every verifier in these tests.
var Now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

var b64 = base64.RawURLEncoding

// Clock is a settable clock for the Now fields of broker configs.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock showing t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the time the clock shows.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Set makes the clock show t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// Advance moves the clock on by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Key is a signing key the test holds privately, so it can sign tokens by
// hand that go-jose would refuse to produce.
type Key struct {
	Alg  token.Algorithm
	Priv crypto.Signer
	Pub  token.PublicKey
}

// NewKey returns a fresh key of alg.
func NewKey(t testing.TB, alg token.Algorithm) Key {
	t.Helper()
	var priv crypto.Signer
	switch alg {
	case token.EdDSA:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		priv = k
	case token.ES256:
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		priv = k
	default:
		t.Fatalf("no test key for %q", alg)
	}
	return KeyFromSigner(t, alg, priv)
}

// SeededEd25519Key returns the same Ed25519 key on every run, for fuzz seeds
// checked in under testdata.
func SeededEd25519Key(t testing.TB) Key {
	t.Helper()
	seed := sha256.Sum256([]byte("handoff broker fuzz key"))
	return KeyFromSigner(t, token.EdDSA, ed25519.NewKeyFromSeed(seed[:]))
}

// SeededES256Key returns the same P-256 key on every run.
func SeededES256Key(t testing.TB) Key {
	t.Helper()
	d := sha256.Sum256([]byte("handoff broker fuzz key p-256"))
	priv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d[:])
	if err != nil {
		t.Fatal(err)
	}
	return KeyFromSigner(t, token.ES256, priv)
}

// KeyFromSigner wraps priv, identified by its RFC 7638 thumbprint.
func KeyFromSigner(t testing.TB, alg token.Algorithm, priv crypto.Signer) Key {
	t.Helper()
	kid, err := keys.Thumbprint(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return Key{Alg: alg, Priv: priv, Pub: token.PublicKey{KeyID: kid, Algorithm: alg, Key: priv.Public()}}
}

// RawSign signs signingInput as the key's algorithm, returning the JWS
// signature bytes (R || S for ES256, RFC 7518 §3.4).
func (k Key) RawSign(t testing.TB, signingInput []byte) []byte {
	t.Helper()
	switch p := k.Priv.(type) {
	case ed25519.PrivateKey:
		return ed25519.Sign(p, signingInput)
	case *ecdsa.PrivateKey:
		sum := sha256.Sum256(signingInput)
		r, s, err := ecdsa.Sign(rand.Reader, p, sum[:])
		if err != nil {
			t.Fatal(err)
		}
		sig := make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
		return sig
	}
	t.Fatalf("unexpected key type %T", k.Priv)
	return nil
}

// SignRaw builds a compact JWS from raw header and payload JSON.
func (k Key) SignRaw(t testing.TB, header, payload string) string {
	t.Helper()
	input := b64.EncodeToString([]byte(header)) + "." + b64.EncodeToString([]byte(payload))
	return input + "." + b64.EncodeToString(k.RawSign(t, []byte(input)))
}

// Sign builds a compact JWS from header and claims maps.
func (k Key) Sign(t testing.TB, header, claims map[string]any) string {
	t.Helper()
	return k.SignRaw(t, MustJSON(t, header), MustJSON(t, claims))
}

// Header returns the header a broker issuer would write for this key.
func (k Key) Header() map[string]any {
	return map[string]any{"alg": string(k.Alg), "kid": k.Pub.KeyID, "typ": token.HandoffTokenType}
}

// ValidClaims returns the claims of a token that a verifier built from
// VerifierConfig accepts at Now: issued 10 s ago, valid for 60 s.
func ValidClaims(jti string) map[string]any {
	iat := Now.Add(-10 * time.Second).Unix()
	return map[string]any{
		"iss":  Issuer,
		"sub":  "alice",
		"aud":  Audience,
		"iat":  iat,
		"nbf":  iat,
		"exp":  iat + 60,
		"jti":  jti,
		"task": map[string]any{"id": "transfer-42", "action": "approve"},
	}
}

// MustJSON encodes v.
func MustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// VerifierConfig trusts pub, uses a fresh memory replay store that started
// an hour before Now, and pins Now.
func VerifierConfig(t testing.TB, pub ...token.PublicKey) token.VerifierConfig {
	t.Helper()
	src, err := keys.NewStatic(pub...)
	if err != nil {
		t.Fatal(err)
	}
	return token.VerifierConfig{
		Issuers:  []token.TrustedIssuer{{Issuer: Issuer, Keys: src}},
		Audience: Audience,
		Replay:   NewStore(t, NewClock(Now.Add(-time.Hour)), token.MemoryReplayConfig{}),
		Now:      func() time.Time { return Now },
	}
}

// NewVerifier builds a verifier from cfg.
func NewVerifier(t testing.TB, cfg token.VerifierConfig) *token.Verifier {
	t.Helper()
	v, err := token.NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// NewStore returns a memory replay store on clock, closed at cleanup.
func NewStore(t testing.TB, clock *Clock, cfg token.MemoryReplayConfig) *token.MemoryReplayStore {
	t.Helper()
	cfg.Now = clock.Now
	s, err := token.NewMemoryReplayStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// WantReason fails t unless err is a token rejection with reason want (""
// meaning no error).
func WantReason(t testing.TB, err error, want token.Reason) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("got error %v, want success", err)
		}
		return
	}
	var be *token.Error
	if !errors.As(err, &be) {
		t.Fatalf("got error %v, want a *token.Error with reason %q", err, want)
	}
	if be.Reason != want {
		t.Fatalf("got reason %q (%v), want %q", be.Reason, err, want)
	}
}

// FailingKeys is a KeySource that cannot answer, like a JWKS endpoint that
// is down.
type FailingKeys struct{}

// LookupKey fails.
func (FailingKeys) LookupKey(context.Context, string) (token.PublicKey, error) {
	return token.PublicKey{}, errors.New("jwks endpoint unreachable")
}

// FailingStore is a ReplayStore that cannot answer, like a Redis that is
// down.
type FailingStore struct{}

// Consume fails.
func (FailingStore) Consume(context.Context, string, time.Time) error {
	return errors.New("connection refused")
}

// RevocationStub answers every CheckRevoked with Err.
type RevocationStub struct{ Err error }

// CheckRevoked returns r.Err.
func (r RevocationStub) CheckRevoked(context.Context, token.TokenRef) error { return r.Err }

// Must returns v, panicking on err.
func Must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// JoinedErrors returns the errors joined (errors.Join) inside err.
func JoinedErrors(err error) []error {
	for err != nil {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			return j.Unwrap()
		}
		err = errors.Unwrap(err)
	}
	return nil
}

// OpenKeyring opens a keyring in dir on clock.
func OpenKeyring(t testing.TB, dir string, clock *Clock) *keys.Keyring {
	t.Helper()
	k, err := keys.Open(keys.KeyringConfig{Dir: dir, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Generate adds a key of alg to k, activating at activatesAt.
func Generate(t testing.TB, k *keys.Keyring, alg token.Algorithm, activatesAt time.Time) keys.Info {
	t.Helper()
	info, err := k.Generate(alg, activatesAt)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// NewMinter returns a minter for Issuer signing with ring on clock, whose
// jtis count up from jti-0001.
func NewMinter(t testing.TB, ring *keys.Keyring, clock *Clock) *token.Minter {
	t.Helper()
	var n atomic.Int64
	m, err := token.NewMinter(token.MinterConfig{
		Issuer: Issuer,
		Keys:   ring,
		Now:    clock.Now,
		NewID:  func() string { return fmt.Sprintf("jti-%04d", n.Add(1)) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// MintRequest asks for a token for alice to approve transfer-42 at Audience.
func MintRequest() token.MintRequest {
	return token.MintRequest{
		Subject:  "alice",
		Audience: Audience,
		Task:     token.Task{ID: "transfer-42", Action: "approve"},
	}
}

// NewRevocationIssuer returns a keyring with one current EdDSA key and a
// minter for Issuer, both on clock.
func NewRevocationIssuer(t testing.TB, clock *Clock) (*keys.Keyring, *token.Minter) {
	t.Helper()
	ring := OpenKeyring(t, t.TempDir(), clock)
	Generate(t, ring, token.EdDSA, time.Time{})
	return ring, NewMinter(t, ring, clock)
}

// NewListVerifier builds a revocation list verifier from cfg.
func NewListVerifier(t testing.TB, cfg token.RevocationListVerifierConfig) *token.RevocationListVerifier {
	t.Helper()
	v, err := token.NewRevocationListVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// SignList signs l with m for the default lifetime.
func SignList(t testing.TB, m *token.Minter, l token.RevocationList) string {
	t.Helper()
	tok, err := m.SignRevocationList(l, 0)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
