package broker

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-json-experiment/json"
)

// ErrRevocationsFull is returned when a RevocationState holds
// MaxEntries live entries. It refuses the new entry rather than forget a
// live one, which would silently un-revoke a token.
var ErrRevocationsFull = errors.New("broker: revocation state full")

// revocationIndex answers revocation checks. A published index is never
// modified; changes build a new one.
type revocationIndex struct {
	tokens   map[string]time.Time // jti -> entry expiry
	subjects map[string]subjectEntry
	keys     map[string]time.Time // kid -> entry expiry
}

type subjectEntry struct {
	notBefore time.Time
	expiresAt time.Time
}

// newRevocationIndex indexes l. An id listed twice keeps the latest expiry
// (and, for a subject, the latest not-before): revoking again never
// shortens a revocation.
func newRevocationIndex(l RevocationList) *revocationIndex {
	ix := &revocationIndex{
		tokens:   make(map[string]time.Time, len(l.Tokens)),
		subjects: make(map[string]subjectEntry, len(l.Subjects)),
		keys:     make(map[string]time.Time, len(l.Keys)),
	}
	for _, e := range l.Tokens {
		if old, ok := ix.tokens[e.ID]; !ok || e.ExpiresAt.After(old) {
			ix.tokens[e.ID] = e.ExpiresAt
		}
	}
	for _, e := range l.Subjects {
		old := ix.subjects[e.Subject]
		ix.subjects[e.Subject] = subjectEntry{notBefore: laterOf(old.notBefore, e.NotBefore), expiresAt: laterOf(old.expiresAt, e.ExpiresAt)}
	}
	for _, e := range l.Keys {
		if old, ok := ix.keys[e.KeyID]; !ok || e.ExpiresAt.After(old) {
			ix.keys[e.KeyID] = e.ExpiresAt
		}
	}
	return ix
}

func laterOf(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func (ix *revocationIndex) len() int { return len(ix.tokens) + len(ix.subjects) + len(ix.keys) }

// check returns a ReasonRevoked *Error when an entry live at now covers t.
func (ix *revocationIndex) check(t TokenRef, now time.Time) error {
	if exp, ok := ix.keys[t.KeyID]; ok && now.Before(exp) {
		return reject(ReasonRevoked, "kid", "the signing key was revoked")
	}
	if exp, ok := ix.tokens[t.ID]; ok && now.Before(exp) {
		return reject(ReasonRevoked, "jti", "the token was revoked")
	}
	if s, ok := ix.subjects[t.Subject]; ok && now.Before(s.expiresAt) && t.IssuedAt.Before(s.notBefore) {
		return reject(ReasonRevoked, "sub", "the subject's tokens issued before %s were revoked", s.notBefore.UTC().Format(time.RFC3339))
	}
	return nil
}

func (ix *revocationIndex) notBefore(sub string, now time.Time) time.Time {
	if s, ok := ix.subjects[sub]; ok && now.Before(s.expiresAt) {
		return s.notBefore
	}
	return time.Time{}
}

// list returns the entries live at now, sorted, so equal states give equal
// lists.
func (ix *revocationIndex) list(now time.Time) RevocationList {
	var l RevocationList
	for id, exp := range ix.tokens {
		if now.Before(exp) {
			l.Tokens = append(l.Tokens, RevokedToken{ID: id, ExpiresAt: exp})
		}
	}
	for sub, s := range ix.subjects {
		if now.Before(s.expiresAt) {
			l.Subjects = append(l.Subjects, RevokedSubject{Subject: sub, NotBefore: s.notBefore, ExpiresAt: s.expiresAt})
		}
	}
	for kid, exp := range ix.keys {
		if now.Before(exp) {
			l.Keys = append(l.Keys, RevokedKey{KeyID: kid, ExpiresAt: exp})
		}
	}
	slices.SortFunc(l.Tokens, func(a, b RevokedToken) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(l.Subjects, func(a, b RevokedSubject) int { return strings.Compare(a.Subject, b.Subject) })
	slices.SortFunc(l.Keys, func(a, b RevokedKey) int { return strings.Compare(a.KeyID, b.KeyID) })
	return l
}

// RevocationStateConfig configures a RevocationState.
type RevocationStateConfig struct {
	// Dir, when set, persists every revocation as one small file there
	// (mode 0600; the directory is created with mode 0700), so restarts and
	// every process sharing the directory see it: each process calls Reload
	// periodically. Files are written to a temporary name and renamed, and
	// never rewritten, so concurrent writers cannot lose each other's
	// entries. Default: memory only.
	Dir string
	// MaxEntries bounds the live entries held. Default and maximum
	// MaxRevocationEntries (what one signed list may carry).
	MaxEntries int
	// Now returns the current time. Default time.Now.
	Now func() time.Time
}

// RevocationState is an issuer's record of withdrawn tokens, subjects and
// keys, and a RevocationChecker over it. Entries are dropped when they
// expire. It is safe for concurrent use; checks take no lock.
type RevocationState struct {
	cfg     RevocationStateConfig
	ix      atomic.Pointer[revocationIndex]
	version atomic.Uint64

	mu      sync.Mutex // serialises Reload, Prune and writes
	records map[string]revocationRecord
	dir     dirWatch
}

// revocationRecord is one entry as stored in a file of the state directory.
type revocationRecord struct {
	Kind      string `json:"kind"` // "jti", "sub" or "kid"
	Value     string `json:"value"`
	NotBefore int64  `json:"nbf,omitempty"`
	Expiry    int64  `json:"exp"`
}

const revocationFileSuffix = ".json"

// NewRevocationState returns a state holding the entries found in cfg.Dir,
// if set.
func NewRevocationState(cfg RevocationStateConfig) (*RevocationState, error) {
	if cfg.MaxEntries == 0 {
		cfg.MaxEntries = MaxRevocationEntries
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxEntries < 0 || cfg.MaxEntries > MaxRevocationEntries {
		return nil, fmt.Errorf("broker: revocation state config: MaxEntries must be between 1 and %d", MaxRevocationEntries)
	}
	s := &RevocationState{cfg: cfg, records: make(map[string]revocationRecord)}
	s.ix.Store(newRevocationIndex(RevocationList{}))
	if cfg.Dir != "" {
		if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("broker: create revocation directory: %w", err)
		}
		if err := s.Reload(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// RevokeToken withdraws the token with the given jti. exp is the token's
// own expiry; the entry is kept MaxLeeway longer, so a verifier whose clock
// lags the issuer's still refuses the token.
func (s *RevocationState) RevokeToken(jti string, exp time.Time) error {
	e := RevokedToken{ID: jti, ExpiresAt: ceilSecond(exp.Add(MaxLeeway))}
	if err := e.validate(); err != nil {
		return fmt.Errorf("broker: revoke token: %w", err)
	}
	return s.add(revocationRecord{Kind: "jti", Value: jti, Expiry: e.ExpiresAt.Unix()})
}

// RevokeSubject withdraws every token of sub issued before nbf, rounded up
// to a whole second: "iat" has one-second resolution, so a token minted in
// the same second as the call might otherwise escape. The entry is kept
// until exp, which should be at least nbf plus the longest token lifetime
// plus MaxLeeway (see RevokedSubject.ExpiresAt).
func (s *RevocationState) RevokeSubject(sub string, nbf, exp time.Time) error {
	e := RevokedSubject{Subject: sub, NotBefore: ceilSecond(nbf), ExpiresAt: ceilSecond(exp)}
	if err := e.validate(); err != nil {
		return fmt.Errorf("broker: revoke subject: %w", err)
	}
	return s.add(revocationRecord{Kind: "sub", Value: sub, NotBefore: e.NotBefore.Unix(), Expiry: e.ExpiresAt.Unix()})
}

// RevokeKey withdraws every token signed by the key kid, until exp. Use it
// beside Keyring.RevokeAndReplace: the list reaches verifiers within one
// poll, the key's removal from the JWKS only at their next JWKS refresh.
func (s *RevocationState) RevokeKey(kid string, exp time.Time) error {
	e := RevokedKey{KeyID: kid, ExpiresAt: ceilSecond(exp)}
	if err := e.validate(); err != nil {
		return fmt.Errorf("broker: revoke key: %w", err)
	}
	return s.add(revocationRecord{Kind: "kid", Value: kid, Expiry: e.ExpiresAt.Unix()})
}

// CheckRevoked implements RevocationChecker.
func (s *RevocationState) CheckRevoked(_ context.Context, t TokenRef) error {
	return s.ix.Load().check(t, s.cfg.Now())
}

// SubjectNotBefore returns the time before which sub's tokens are revoked,
// or the zero time when there is none.
func (s *RevocationState) SubjectNotBefore(sub string) time.Time {
	return s.ix.Load().notBefore(sub, s.cfg.Now())
}

// Snapshot returns the live entries, for Minter.SignRevocationList.
func (s *RevocationState) Snapshot() RevocationList {
	return s.ix.Load().list(s.cfg.Now())
}

// Version changes whenever the entries change, so a caller can cache what
// it derived from a Snapshot.
func (s *RevocationState) Version() uint64 { return s.version.Load() }

func (s *RevocationState) add(r revocationRecord) error {
	if s.cfg.Dir != "" {
		if err := s.Reload(); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.live() >= s.cfg.MaxEntries {
		if err := s.pruneLocked(); err != nil {
			return err
		}
		if s.live() >= s.cfg.MaxEntries {
			return ErrRevocationsFull
		}
	}
	name := r.Kind + "-" + rand.Text() + revocationFileSuffix
	if s.cfg.Dir != "" {
		if err := writeRevocationFile(s.cfg.Dir, name, r); err != nil {
			return err
		}
	}
	s.records[name] = r
	s.rebuild()
	return nil
}

func (s *RevocationState) live() int {
	now := s.cfg.Now().Unix()
	n := 0
	for _, r := range s.records {
		if r.Expiry > now {
			n++
		}
	}
	return n
}

// rebuild publishes a new index of s.records. Callers hold s.mu.
func (s *RevocationState) rebuild() {
	var l RevocationList
	for _, r := range s.records {
		exp := time.Unix(r.Expiry, 0)
		switch r.Kind {
		case "jti":
			l.Tokens = append(l.Tokens, RevokedToken{ID: r.Value, ExpiresAt: exp})
		case "sub":
			l.Subjects = append(l.Subjects, RevokedSubject{Subject: r.Value, NotBefore: time.Unix(r.NotBefore, 0), ExpiresAt: exp})
		case "kid":
			l.Keys = append(l.Keys, RevokedKey{KeyID: r.Value, ExpiresAt: exp})
		}
	}
	s.ix.Store(newRevocationIndex(l))
	s.version.Add(1)
}

// Reload re-reads the state directory, picking up entries other processes
// added or pruned. It is cheap when nothing changed.
func (s *RevocationState) Reload() error {
	if s.cfg.Dir == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	entries, changed, err := s.dir.entries(s.cfg.Dir)
	if err != nil {
		return fmt.Errorf("broker: revocation directory: %w", err)
	}
	if !changed {
		return nil
	}
	records := make(map[string]revocationRecord, len(entries))
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || !strings.HasSuffix(name, revocationFileSuffix) {
			continue
		}
		if r, ok := s.records[name]; ok {
			records[name] = r
			continue
		}
		r, err := readRevocationFile(filepath.Join(s.cfg.Dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue // pruned by another process meanwhile
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		records[name] = r
	}
	// A file that cannot be read may hold a revocation: fail rather than
	// serve a state that silently lacks it.
	if err := errors.Join(errs...); err != nil {
		return err
	}
	differs := len(records) != len(s.records)
	for name := range records {
		if _, ok := s.records[name]; !ok {
			differs = true
		}
	}
	s.records = records
	s.dir.read()
	if differs {
		s.rebuild()
	}
	return nil
}

// Prune drops expired entries, deleting their files, and returns how many
// it dropped.
func (s *RevocationState) Prune() (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	before := len(s.records)
	err := s.pruneLocked()
	return before - len(s.records), err
}

func (s *RevocationState) pruneLocked() error {
	now := s.cfg.Now().Unix()
	var errs []error
	changed := false
	for name, r := range s.records {
		if r.Expiry > now {
			continue
		}
		if s.cfg.Dir != "" {
			err := os.Remove(filepath.Join(s.cfg.Dir, name))
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("broker: prune revocation: %w", err))
				continue
			}
		}
		delete(s.records, name)
		changed = true
	}
	if changed {
		s.rebuild()
	}
	return errors.Join(errs...)
}

func writeRevocationFile(dir, name string, r revocationRecord) error {
	out, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("broker: write revocation: %w", err)
	}
	if err := writeFileAtomic(dir, name, out); err != nil {
		return fmt.Errorf("broker: write revocation: %w", err)
	}
	return nil
}

func readRevocationFile(path string) (revocationRecord, error) {
	var r revocationRecord
	raw, err := os.ReadFile(path)
	if err != nil {
		return r, fmt.Errorf("broker: read revocation: %w", err)
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return r, fmt.Errorf("broker: revocation file %s: %w", filepath.Base(path), err)
	}
	exp := time.Unix(r.Expiry, 0)
	switch r.Kind {
	case "jti":
		err = RevokedToken{ID: r.Value, ExpiresAt: exp}.validate()
	case "sub":
		err = RevokedSubject{Subject: r.Value, NotBefore: time.Unix(r.NotBefore, 0), ExpiresAt: exp}.validate()
	case "kid":
		err = RevokedKey{KeyID: r.Value, ExpiresAt: exp}.validate()
	default:
		err = fmt.Errorf("unknown kind %q", r.Kind)
	}
	if err != nil {
		return r, fmt.Errorf("broker: revocation file %s: %w", filepath.Base(path), err)
	}
	return r, nil
}

// RevocationPublisher serves an issuer's signed revocation list: it signs
// the state's live entries and re-signs only when they change, when the
// keyring's current key changes, or when half the list's lifetime has
// passed. It is safe for concurrent use.
type RevocationPublisher struct {
	state  *RevocationState
	minter *Minter
	ttl    time.Duration

	mu       sync.Mutex
	token    string
	etag     string
	version  uint64
	kid      string
	signedAt time.Time
}

// NewRevocationPublisher returns a publisher of state's entries, signed by
// minter as lists valid for ttl (zero means DefaultRevocationListTTL).
func NewRevocationPublisher(state *RevocationState, minter *Minter, ttl time.Duration) (*RevocationPublisher, error) {
	if ttl == 0 {
		ttl = DefaultRevocationListTTL
	}
	var errs []error
	if state == nil {
		errs = append(errs, errors.New("state is required"))
	}
	if minter == nil {
		errs = append(errs, errors.New("minter is required"))
	}
	if ttl < 2*time.Second || ttl > MaxRevocationListTTL {
		errs = append(errs, fmt.Errorf("ttl must be between 2s and %v", MaxRevocationListTTL))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("broker: revocation publisher: %w", err)
	}
	return &RevocationPublisher{state: state, minter: minter, ttl: ttl}, nil
}

// Current returns the signed list and its strong ETag (a quoted digest of
// the list), re-signing when needed. A response with that ETag answers a
// request whose If-None-Match equals it with 304 Not Modified. It reloads
// the state's directory first, so the list carries entries other processes
// added a moment ago.
func (p *RevocationPublisher) Current() (token, etag string, err error) {
	if err := p.state.Reload(); err != nil {
		return "", "", err
	}
	key, err := p.minter.cfg.Keys.current()
	if err != nil {
		return "", "", err
	}
	now := p.minter.cfg.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	v := p.state.Version()
	if p.token != "" && v == p.version && key.id == p.kid && now.Sub(p.signedAt) < p.ttl/2 && !now.Before(p.signedAt) {
		return p.token, p.etag, nil
	}
	token, err = p.minter.SignRevocationList(p.state.Snapshot(), p.ttl)
	if err != nil {
		return "", "", err
	}
	sum := sha256.Sum256([]byte(token))
	p.token, p.etag = token, `"`+base64.RawURLEncoding.EncodeToString(sum[:18])+`"`
	p.version, p.kid, p.signedAt = v, key.id, now
	return p.token, p.etag, nil
}
