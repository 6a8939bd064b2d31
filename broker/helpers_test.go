package broker_test

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
	"sync"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/broker"
)

const (
	testIssuer   = "https://issuer.test"
	testAudience = "https://relying.test"
)

// testNow is the pinned "now" of every verifier in these tests.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

var b64 = base64.RawURLEncoding

// fakeClock is a settable clock for the Now fields of broker configs.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *fakeClock { return &fakeClock{t: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testKey is a signing key the test holds privately, so it can sign tokens
// by hand that go-jose would refuse to produce.
type testKey struct {
	alg  broker.Algorithm
	priv crypto.Signer
	pub  broker.PublicKey
}

func newTestKey(t testing.TB, alg broker.Algorithm) testKey {
	t.Helper()
	var priv crypto.Signer
	switch alg {
	case broker.EdDSA:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		priv = k
	case broker.ES256:
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		priv = k
	default:
		t.Fatalf("no test key for %q", alg)
	}
	return keyFromSigner(t, alg, priv)
}

// seededEd25519Key returns the same Ed25519 key on every run, for fuzz seeds
// checked in under testdata.
func seededEd25519Key(t testing.TB) testKey {
	t.Helper()
	seed := sha256.Sum256([]byte("handoff broker fuzz key"))
	return keyFromSigner(t, broker.EdDSA, ed25519.NewKeyFromSeed(seed[:]))
}

func keyFromSigner(t testing.TB, alg broker.Algorithm, priv crypto.Signer) testKey {
	t.Helper()
	kid, err := broker.Thumbprint(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return testKey{alg: alg, priv: priv, pub: broker.PublicKey{KeyID: kid, Algorithm: alg, Key: priv.Public()}}
}

// rawSign signs signingInput as the key's algorithm, returning the JWS
// signature bytes (R || S for ES256, RFC 7518 §3.4).
func (k testKey) rawSign(t testing.TB, signingInput []byte) []byte {
	t.Helper()
	switch p := k.priv.(type) {
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
	t.Fatalf("unexpected key type %T", k.priv)
	return nil
}

// signRaw builds a compact JWS from raw header and payload JSON.
func (k testKey) signRaw(t testing.TB, header, payload string) string {
	t.Helper()
	input := b64.EncodeToString([]byte(header)) + "." + b64.EncodeToString([]byte(payload))
	return input + "." + b64.EncodeToString(k.rawSign(t, []byte(input)))
}

// sign builds a compact JWS from header and claims maps.
func (k testKey) sign(t testing.TB, header, claims map[string]any) string {
	t.Helper()
	return k.signRaw(t, mustJSON(t, header), mustJSON(t, claims))
}

// header returns the header a broker issuer would write for this key.
func (k testKey) header() map[string]any {
	return map[string]any{"alg": string(k.alg), "kid": k.pub.KeyID, "typ": broker.HandoffTokenType}
}

// validClaims returns the claims of a token that testVerifier accepts at
// testNow: issued 10 s ago, valid for 60 s.
func validClaims(jti string) map[string]any {
	iat := testNow.Add(-10 * time.Second).Unix()
	return map[string]any{
		"iss":  testIssuer,
		"sub":  "alice",
		"aud":  testAudience,
		"iat":  iat,
		"nbf":  iat,
		"exp":  iat + 60,
		"jti":  jti,
		"task": map[string]any{"id": "transfer-42", "action": "approve"},
	}
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// testVerifierConfig trusts keys, uses a fresh memory replay store that
// started an hour before testNow, and pins Now to testNow.
func testVerifierConfig(t testing.TB, keys ...broker.PublicKey) broker.VerifierConfig {
	t.Helper()
	src, err := broker.NewStaticKeys(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return broker.VerifierConfig{
		Issuers:  []string{testIssuer},
		Audience: testAudience,
		Keys:     src,
		Replay:   newTestStore(t, newClock(testNow.Add(-time.Hour)), broker.MemoryReplayConfig{}),
		Now:      func() time.Time { return testNow },
	}
}

func newTestVerifier(t testing.TB, cfg broker.VerifierConfig) *broker.Verifier {
	t.Helper()
	v, err := broker.NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// newTestStore returns a memory replay store on clock, closed at cleanup.
func newTestStore(t testing.TB, clock *fakeClock, cfg broker.MemoryReplayConfig) *broker.MemoryReplayStore {
	t.Helper()
	cfg.Now = clock.Now
	s, err := broker.NewMemoryReplayStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// wantReason fails t unless err is a broker rejection with reason want
// ("" meaning no error).
func wantReason(t testing.TB, err error, want broker.Reason) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("got error %v, want success", err)
		}
		return
	}
	var be *broker.Error
	if !errors.As(err, &be) {
		t.Fatalf("got error %v, want a *broker.Error with reason %q", err, want)
	}
	if be.Reason != want {
		t.Fatalf("got reason %q (%v), want %q", be.Reason, err, want)
	}
}

// failingKeys is a KeySource that cannot answer, like a JWKS endpoint that is
// down.
type failingKeys struct{}

func (failingKeys) LookupKey(context.Context, string) (broker.PublicKey, error) {
	return broker.PublicKey{}, errors.New("jwks endpoint unreachable")
}

// failingStore is a ReplayStore that cannot answer, like a Redis that is down.
type failingStore struct{}

func (failingStore) Consume(context.Context, string, time.Time) error {
	return errors.New("connection refused")
}

// revocationStub answers every CheckRevoked with err.
type revocationStub struct{ err error }

func (r revocationStub) CheckRevoked(context.Context, broker.TokenRef) error { return r.err }
