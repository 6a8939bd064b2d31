package revocation

import (
	"context"
	"crypto/rand"
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
	"github.com/handoffbroker/handoff/broker/internal/files"
	"github.com/handoffbroker/handoff/broker/internal/seconds"
	"github.com/handoffbroker/handoff/broker/token"
)

// ErrFull is returned when a State holds
// MaxEntries live entries. It refuses the new entry rather than forget a
// live one, which would silently un-revoke a token.
var ErrFull = errors.New("broker: revocation state full")

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
func newRevocationIndex(l token.RevocationList) *revocationIndex {
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

// check returns a token.ReasonRevoked *token.Error when an entry live at now covers t.
func (ix *revocationIndex) check(t token.TokenRef, now time.Time) error {
	if exp, ok := ix.keys[t.KeyID]; ok && now.Before(exp) {
		return revoked("kid", "the signing key was revoked")
	}
	if exp, ok := ix.tokens[t.ID]; ok && now.Before(exp) {
		return revoked("jti", "the token was revoked")
	}
	if s, ok := ix.subjects[t.Subject]; ok && now.Before(s.expiresAt) && t.IssuedAt.Before(s.notBefore) {
		return revoked("sub", "the subject's tokens issued before %s were revoked", s.notBefore.UTC().Format(time.RFC3339))
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
func (ix *revocationIndex) list(now time.Time) token.RevocationList {
	var l token.RevocationList
	for id, exp := range ix.tokens {
		if now.Before(exp) {
			l.Tokens = append(l.Tokens, token.RevokedToken{ID: id, ExpiresAt: exp})
		}
	}
	for sub, s := range ix.subjects {
		if now.Before(s.expiresAt) {
			l.Subjects = append(l.Subjects, token.RevokedSubject{Subject: sub, NotBefore: s.notBefore, ExpiresAt: s.expiresAt})
		}
	}
	for kid, exp := range ix.keys {
		if now.Before(exp) {
			l.Keys = append(l.Keys, token.RevokedKey{KeyID: kid, ExpiresAt: exp})
		}
	}
	slices.SortFunc(l.Tokens, func(a, b token.RevokedToken) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(l.Subjects, func(a, b token.RevokedSubject) int { return strings.Compare(a.Subject, b.Subject) })
	slices.SortFunc(l.Keys, func(a, b token.RevokedKey) int { return strings.Compare(a.KeyID, b.KeyID) })
	return l
}

// StateConfig configures a State.
type StateConfig struct {
	// Dir, when set, persists every revocation as one small file there
	// (mode 0600; the directory is created with mode 0700), so restarts and
	// every process sharing the directory see it: each process calls Reload
	// periodically. Files are written to a temporary name and renamed, and
	// never rewritten, so concurrent writers cannot lose each other's
	// entries. Default: memory only.
	Dir string
	// MaxEntries bounds the live entries held. Default and maximum
	// token.MaxRevocationEntries (what one signed list may carry).
	MaxEntries int
	// Now returns the current time. Default time.Now.
	Now func() time.Time
}

// State is an issuer's record of withdrawn tokens, subjects and
// keys, and a token.RevocationChecker over it. Entries are dropped when they
// expire. It is safe for concurrent use; checks take no lock.
type State struct {
	cfg     StateConfig
	ix      atomic.Pointer[revocationIndex]
	version atomic.Uint64

	mu      sync.Mutex // serialises Reload, Prune and writes
	records map[string]revocationRecord
	dir     files.DirWatch
}

// revocationRecord is one entry as stored in a file of the state directory.
type revocationRecord struct {
	Kind      string `json:"kind"` // "jti", "sub" or "kid"
	Value     string `json:"value"`
	NotBefore int64  `json:"nbf,omitempty"`
	Expiry    int64  `json:"exp"`
}

const revocationFileSuffix = ".json"

// NewState returns a state holding the entries found in cfg.Dir,
// if set.
func NewState(cfg StateConfig) (*State, error) {
	if cfg.MaxEntries == 0 {
		cfg.MaxEntries = token.MaxRevocationEntries
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxEntries < 0 || cfg.MaxEntries > token.MaxRevocationEntries {
		return nil, fmt.Errorf("broker: revocation state config: MaxEntries must be between 1 and %d", token.MaxRevocationEntries)
	}
	s := &State{cfg: cfg, records: make(map[string]revocationRecord)}
	s.ix.Store(newRevocationIndex(token.RevocationList{}))
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
// own expiry; the entry is kept token.MaxLeeway longer, so a verifier whose clock
// lags the issuer's still refuses the token.
func (s *State) RevokeToken(jti string, exp time.Time) error {
	e := token.RevokedToken{ID: jti, ExpiresAt: seconds.Ceil(exp.Add(token.MaxLeeway))}
	if err := e.Validate(); err != nil {
		return fmt.Errorf("broker: revoke token: %w", err)
	}
	return s.add(revocationRecord{Kind: "jti", Value: jti, Expiry: e.ExpiresAt.Unix()})
}

// RevokeSubject withdraws every token of sub issued at or before nbf
// ("sign out everywhere" at nbf). "iat" has one-second resolution, so the
// entry's NotBefore is the first whole second after nbf: every token
// issued up to nbf, in its second included, has an earlier iat, even when
// nbf sits exactly on a second. Tokens issued later in that second are
// refused too, the safe side. The entry is kept until exp, which should be
// at least nbf plus the longest token lifetime plus token.MaxLeeway (see
// token.RevokedSubject.ExpiresAt).
func (s *State) RevokeSubject(sub string, nbf, exp time.Time) error {
	e := token.RevokedSubject{Subject: sub, NotBefore: seconds.After(nbf), ExpiresAt: seconds.Ceil(exp)}
	if err := e.Validate(); err != nil {
		return fmt.Errorf("broker: revoke subject: %w", err)
	}
	return s.add(revocationRecord{Kind: "sub", Value: sub, NotBefore: e.NotBefore.Unix(), Expiry: e.ExpiresAt.Unix()})
}

// RevokeKey withdraws every token signed by the key kid, until exp. Use it
// beside keys.Keyring.RevokeAndReplace: the list reaches verifiers within one
// poll, the key's removal from the JWKS only at their next JWKS refresh.
func (s *State) RevokeKey(kid string, exp time.Time) error {
	e := token.RevokedKey{KeyID: kid, ExpiresAt: seconds.Ceil(exp)}
	if err := e.Validate(); err != nil {
		return fmt.Errorf("broker: revoke key: %w", err)
	}
	return s.add(revocationRecord{Kind: "kid", Value: kid, Expiry: e.ExpiresAt.Unix()})
}

// CheckRevoked implements token.RevocationChecker.
func (s *State) CheckRevoked(_ context.Context, t token.TokenRef) error {
	return s.ix.Load().check(t, s.cfg.Now())
}

// SubjectNotBefore returns the time before which sub's tokens are revoked,
// or the zero time when there is none.
func (s *State) SubjectNotBefore(sub string) time.Time {
	return s.ix.Load().notBefore(sub, s.cfg.Now())
}

// Snapshot returns the live entries, for token.Minter.SignRevocationList.
func (s *State) Snapshot() token.RevocationList {
	return s.ix.Load().list(s.cfg.Now())
}

// Version changes whenever the entries change, so a caller can cache what
// it derived from a Snapshot.
func (s *State) Version() uint64 { return s.version.Load() }

func (s *State) add(r revocationRecord) error {
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
			return ErrFull
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

func (s *State) live() int {
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
func (s *State) rebuild() {
	var l token.RevocationList
	for _, r := range s.records {
		exp := time.Unix(r.Expiry, 0)
		switch r.Kind {
		case "jti":
			l.Tokens = append(l.Tokens, token.RevokedToken{ID: r.Value, ExpiresAt: exp})
		case "sub":
			l.Subjects = append(l.Subjects, token.RevokedSubject{Subject: r.Value, NotBefore: time.Unix(r.NotBefore, 0), ExpiresAt: exp})
		case "kid":
			l.Keys = append(l.Keys, token.RevokedKey{KeyID: r.Value, ExpiresAt: exp})
		}
	}
	s.ix.Store(newRevocationIndex(l))
	s.version.Add(1)
}

// Reload re-reads the state directory, picking up entries other processes
// added or pruned. It is cheap when nothing changed.
func (s *State) Reload() error {
	if s.cfg.Dir == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	entries, changed, err := s.dir.Entries(s.cfg.Dir)
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
	s.dir.Read()
	if differs {
		s.rebuild()
	}
	return nil
}

// Prune drops expired entries, deleting their files, and returns how many
// it dropped.
func (s *State) Prune() (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	before := len(s.records)
	err := s.pruneLocked()
	return before - len(s.records), err
}

func (s *State) pruneLocked() error {
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
	if err := files.WriteAtomic(dir, name, out); err != nil {
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
		err = token.RevokedToken{ID: r.Value, ExpiresAt: exp}.Validate()
	case "sub":
		err = token.RevokedSubject{Subject: r.Value, NotBefore: time.Unix(r.NotBefore, 0), ExpiresAt: exp}.Validate()
	case "kid":
		err = token.RevokedKey{KeyID: r.Value, ExpiresAt: exp}.Validate()
	default:
		err = fmt.Errorf("unknown kind %q", r.Kind)
	}
	if err != nil {
		return r, fmt.Errorf("broker: revocation file %s: %w", filepath.Base(path), err)
	}
	return r, nil
}
