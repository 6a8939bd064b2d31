package keys

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/handoffbroker/handoff/broker/internal/files"
	"github.com/handoffbroker/handoff/broker/token"
)

// State is where a signing key is in its life.
type State string

// Key states. A key is published in the JWKS while it is next, current or
// retired; only the current key signs.
const (
	// Next: published so verifiers learn it, not yet signing.
	Next State = "next"
	// Current: the newest key whose activation time has passed. Signs.
	Current State = "current"
	// Retired: replaced by a newer key; still published until every token
	// it signed has expired (plus leeway), then removed.
	Retired State = "retired"
	// Expired: retired long enough that no valid token can need it. No
	// longer published; Prune deletes its file.
	Expired State = "expired"
)

// Info describes a key in a Keyring at a point in time.
type Info struct {
	ID          string
	Algorithm   token.Algorithm
	State       State
	CreatedAt   time.Time
	ActivatesAt time.Time
	// RetiredAt is when a newer key took over; zero while not retired.
	RetiredAt time.Time
}

// signingKey is one private key with its lifecycle times and its
// token.SigningKey, prepared once at load.
type signingKey struct {
	id          string
	alg         token.Algorithm
	private     crypto.Signer
	createdAt   time.Time
	activatesAt time.Time
	signing     *token.SigningKey
}

func (k *signingKey) public() token.PublicKey { return k.signing.Public() }

// keySet is an immutable snapshot of a keyring's keys, sorted by activation
// time then id, so every reader of one snapshot agrees on the states.
type keySet struct {
	keys []*signingKey
}

// KeyringConfig configures a Keyring.
type KeyringConfig struct {
	// Dir holds one private JWK file (RFC 7517) per key, mode 0600. Required,
	// except for NewEphemeral. Created with mode 0700 if missing.
	Dir string
	// RetainRetired is how long a retired key stays published after a newer
	// key takes over. It must cover the longest token lifetime plus clock
	// leeway. Default 12m (10m maximum lifetime + 2m leeway).
	RetainRetired time.Duration
	// Now returns the current time. Default time.Now.
	Now func() time.Time
	// Rand is the randomness for key generation. Default crypto/rand.Reader.
	Rand io.Reader
}

// Keyring holds the issuer's private signing keys and derives, from their
// activation times alone, which key signs and which are published. Several
// processes sharing one directory therefore agree without coordination: a key
// becomes current at its ActivatesAt on every instance, and no instance signs
// with a key the others do not publish (as long as each reloads the directory
// more often than keys are rotated).
type Keyring struct {
	cfg  KeyringConfig
	snap atomic.Pointer[keySet]

	mu  sync.Mutex // serialises Reload and writes
	dir files.DirWatch
}

const keyFileSuffix = ".jwk"

// Open loads every key file in cfg.Dir. An empty directory gives an
// empty keyring: call Generate to add a key.
func Open(cfg KeyringConfig) (*Keyring, error) {
	if cfg.Dir == "" {
		return nil, errors.New("broker: KeyringConfig.Dir is required")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("broker: create key directory: %w", err)
	}
	k := newKeyring(cfg)
	if err := k.Reload(); err != nil {
		return nil, err
	}
	return k, nil
}

// NewEphemeral returns a keyring that lives only in memory, holding one
// fresh current key of the given algorithm. For tests, examples and tools;
// a server's keys belong in a directory so they survive restarts.
func NewEphemeral(alg token.Algorithm) (*Keyring, error) {
	k := newKeyring(KeyringConfig{})
	if _, err := k.Generate(alg, time.Time{}); err != nil {
		return nil, err
	}
	return k, nil
}

func newKeyring(cfg KeyringConfig) *Keyring {
	if cfg.RetainRetired <= 0 {
		cfg.RetainRetired = token.DefaultMaxTTL + token.MaxLeeway
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	k := &Keyring{cfg: cfg}
	k.snap.Store(&keySet{})
	return k
}

// Generate creates a key of the given algorithm that starts signing at
// activatesAt (zero means now), writes it to the directory and adds it to the
// keyring.
func (k *Keyring) Generate(alg token.Algorithm, activatesAt time.Time) (Info, error) {
	if !alg.Supported() {
		return Info{}, fmt.Errorf("broker: unsupported algorithm %q", alg)
	}
	var priv crypto.Signer
	var err error
	switch alg {
	case token.EdDSA:
		_, priv, err = ed25519.GenerateKey(k.cfg.Rand)
	case token.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), k.cfg.Rand)
	}
	if err != nil {
		return Info{}, fmt.Errorf("broker: generate key: %w", err)
	}
	now := k.cfg.Now().Truncate(time.Second)
	if activatesAt.IsZero() {
		activatesAt = now
	}
	sk, err := newSigningKey(priv, alg, now, activatesAt.Truncate(time.Second))
	if err != nil {
		return Info{}, err
	}

	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cfg.Dir != "" {
		if err := writeKeyFile(k.cfg.Dir, sk); err != nil {
			return Info{}, err
		}
	}
	old := k.snap.Load().keys
	keys := append(slices.Clip(old), sk)
	k.snap.Store(newKeySet(keys))
	return k.snap.Load().info(sk, k.cfg.Now(), k.cfg.RetainRetired), nil
}

// Reload re-reads the key directory, picking up keys that another process
// generated, rotated or revoked. It is cheap when nothing changed.
func (k *Keyring) Reload() error {
	if k.cfg.Dir == "" {
		return nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	entries, changed, err := k.dir.Entries(k.cfg.Dir)
	if err != nil {
		return fmt.Errorf("broker: key directory: %w", err)
	}
	if !changed {
		return nil
	}
	prev := make(map[string]*signingKey)
	for _, sk := range k.snap.Load().keys {
		prev[sk.id] = sk
	}
	var keys []*signingKey
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, keyFileSuffix) {
			continue
		}
		if sk, ok := prev[strings.TrimSuffix(name, keyFileSuffix)]; ok {
			keys = append(keys, sk)
			continue
		}
		sk, err := readKeyFile(filepath.Join(k.cfg.Dir, name))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		keys = append(keys, sk)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	k.snap.Store(newKeySet(keys))
	k.dir.Read()
	return nil
}

// Revoke removes the key with the given id at once: it stops signing and
// disappears from the published JWKS, so verifiers drop it at their next
// refresh. Use it for a compromised key.
func (k *Keyring) Revoke(kid string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	old := k.snap.Load().keys
	i := slices.IndexFunc(old, func(sk *signingKey) bool { return sk.id == kid })
	if i < 0 {
		return fmt.Errorf("broker: no key %q", kid)
	}
	if k.cfg.Dir != "" {
		if err := os.Remove(filepath.Join(k.cfg.Dir, kid+keyFileSuffix)); err != nil {
			return fmt.Errorf("broker: revoke key: %w", err)
		}
	}
	k.snap.Store(newKeySet(slices.Delete(slices.Clone(old), i, i+1)))
	return nil
}

// Prune deletes the files of keys that are no longer published and returns
// their ids.
func (k *Keyring) Prune() ([]string, error) {
	var gone []string
	for _, info := range k.Keys() {
		if info.State == Expired {
			gone = append(gone, info.ID)
		}
	}
	var errs []error
	for _, kid := range gone {
		if err := k.Revoke(kid); err != nil {
			errs = append(errs, err)
		}
	}
	return gone, errors.Join(errs...)
}

// Keys describes every key in the keyring as of now.
func (k *Keyring) Keys() []Info {
	ks := k.snap.Load()
	now := k.cfg.Now()
	out := make([]Info, 0, len(ks.keys))
	for _, sk := range ks.keys {
		out = append(out, ks.info(sk, now, k.cfg.RetainRetired))
	}
	return out
}

// CurrentKey returns the key that signs now: it makes the Keyring the
// token.Signer of a token.Minter.
func (k *Keyring) CurrentKey() (*token.SigningKey, error) {
	ks := k.snap.Load()
	now := k.cfg.Now()
	for i := len(ks.keys) - 1; i >= 0; i-- {
		if !ks.keys[i].activatesAt.After(now) {
			return ks.keys[i].signing, nil
		}
	}
	return nil, errors.New("broker: no current signing key (generate or rotate one)")
}

// LookupKey implements token.KeySource over the keyring's published keys, so an
// issuer can verify its own tokens.
func (k *Keyring) LookupKey(_ context.Context, kid string) (token.PublicKey, error) {
	ks := k.snap.Load()
	now := k.cfg.Now()
	for _, sk := range ks.keys {
		if sk.id == kid && ks.info(sk, now, k.cfg.RetainRetired).State != Expired {
			return sk.public(), nil
		}
	}
	return token.PublicKey{}, &token.Error{Reason: token.ReasonUnknownKey, Claim: "kid", Detail: "no published key with this kid"}
}

// PublishedKeys returns the public keys verifiers should trust now: next,
// current and retired keys.
func (k *Keyring) PublishedKeys() []token.PublicKey {
	ks := k.snap.Load()
	now := k.cfg.Now()
	var out []token.PublicKey
	for _, sk := range ks.keys {
		if ks.info(sk, now, k.cfg.RetainRetired).State != Expired {
			out = append(out, sk.public())
		}
	}
	return out
}

// JWKS returns the published keys as a JSON Web Key Set document (RFC 7517
// §5): public parts only, each with "kid", "alg" and "use": "sig".
func (k *Keyring) JWKS() ([]byte, error) {
	return MarshalJWKS(k.PublishedKeys())
}

func newKeySet(keys []*signingKey) *keySet {
	keys = slices.Clone(keys)
	slices.SortFunc(keys, func(a, b *signingKey) int {
		if c := a.activatesAt.Compare(b.activatesAt); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	return &keySet{keys: keys}
}

// info derives sk's state at now. Keys are sorted by activation: the newest
// active key is current; an older active key retired when its successor
// activated, and expires retain later.
func (ks *keySet) info(sk *signingKey, now time.Time, retain time.Duration) Info {
	info := Info{ID: sk.id, Algorithm: sk.alg, CreatedAt: sk.createdAt, ActivatesAt: sk.activatesAt}
	if sk.activatesAt.After(now) {
		info.State = Next
		return info
	}
	i := slices.Index(ks.keys, sk)
	for _, later := range ks.keys[i+1:] {
		if !later.activatesAt.After(now) {
			info.RetiredAt = later.activatesAt
			break
		}
	}
	switch {
	case info.RetiredAt.IsZero():
		info.State = Current
	case now.Before(info.RetiredAt.Add(retain)):
		info.State = Retired
	default:
		info.State = Expired
	}
	return info
}

func newSigningKey(priv crypto.Signer, alg token.Algorithm, createdAt, activatesAt time.Time) (*signingKey, error) {
	kid, err := Thumbprint(priv.Public())
	if err != nil {
		return nil, err
	}
	signing, err := token.NewSigningKey(kid, alg, priv)
	if err != nil {
		return nil, err
	}
	return &signingKey{id: kid, alg: alg, private: priv, createdAt: createdAt, activatesAt: activatesAt, signing: signing}, nil
}

// Thumbprint returns the RFC 7638 SHA-256 JWK thumbprint of a public key,
// base64url-encoded: the "kid" the broker gives every key.
func Thumbprint(pub crypto.PublicKey) (string, error) {
	tp, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("broker: thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

// keyFileMeta is the lifecycle data stored beside the JWK members in a key
// file. RFC 7517 §4 lets a JWK carry members its readers do not understand.
type keyFileMeta struct {
	CreatedAt   int64 `json:"created_at"`
	ActivatesAt int64 `json:"activates_at"`
}

func writeKeyFile(dir string, sk *signingKey) error {
	jwk := jose.JSONWebKey{Key: sk.private, KeyID: sk.id, Algorithm: string(sk.alg), Use: "sig"}
	raw, err := jwk.MarshalJSON()
	if err != nil {
		return fmt.Errorf("broker: encode key: %w", err)
	}
	var members map[string]jsontext.Value
	if err := json.Unmarshal(raw, &members); err != nil {
		return fmt.Errorf("broker: encode key: %w", err)
	}
	meta, err := json.Marshal(keyFileMeta{CreatedAt: sk.createdAt.Unix(), ActivatesAt: sk.activatesAt.Unix()})
	if err != nil {
		return err
	}
	var metaMembers map[string]jsontext.Value
	if err := json.Unmarshal(meta, &metaMembers); err != nil {
		return err
	}
	for name, v := range metaMembers {
		members[name] = v
	}
	out, err := json.Marshal(members, json.Deterministic(true))
	if err != nil {
		return err
	}
	if err := files.WriteAtomic(dir, sk.id+keyFileSuffix, out); err != nil {
		return fmt.Errorf("broker: write key: %w", err)
	}
	return nil
}

func readKeyFile(path string) (*signingKey, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("broker: read key: %w", err)
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(raw); err != nil {
		return nil, fmt.Errorf("broker: key file %s: %w", filepath.Base(path), err)
	}
	var meta keyFileMeta
	if err := json.Unmarshal(raw, &meta); err != nil {
		return nil, fmt.Errorf("broker: key file %s: %w", filepath.Base(path), err)
	}
	priv, ok := jwk.Key.(crypto.Signer)
	if !ok || jwk.IsPublic() {
		return nil, fmt.Errorf("broker: key file %s holds no private key", filepath.Base(path))
	}
	alg := token.Algorithm(jwk.Algorithm)
	if !alg.Supported() {
		return nil, fmt.Errorf("broker: key file %s: unsupported alg %q", filepath.Base(path), jwk.Algorithm)
	}
	created := time.Unix(meta.CreatedAt, 0)
	activates := time.Unix(meta.ActivatesAt, 0)
	if meta.ActivatesAt == 0 {
		activates = created
	}
	sk, err := newSigningKey(priv, alg, created, activates)
	if err != nil {
		return nil, fmt.Errorf("broker: key file %s: %w", filepath.Base(path), err)
	}
	if err := sk.public().Check(); err != nil {
		return nil, fmt.Errorf("broker: key file %s: %w", filepath.Base(path), err)
	}
	if filepath.Base(path) != sk.id+keyFileSuffix {
		return nil, fmt.Errorf("broker: key file %s: name does not match the key's thumbprint %s", filepath.Base(path), sk.id)
	}
	return sk, nil
}
