package token

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/handoffbroker/handoff/broker/internal/seconds"
)

// Revocation list profile constants (docs/REVOCATION.md).
const (
	// RevocationListType is the "typ" of a signed revocation list. It differs
	// from HandoffTokenType so neither can pass as the other (RFC 8725
	// §3.12, distinct validation profiles).
	RevocationListType = "revocation+jwt"
	// RevocationListMediaType is the Content-Type of a revocation list
	// response.
	RevocationListMediaType = "application/revocation+jwt"
	// DefaultRevocationListTTL is a signed list's lifetime ("exp" - "iat")
	// unless the signer says otherwise.
	DefaultRevocationListTTL = 5 * time.Minute
	// MaxRevocationListTTL is the longest list lifetime signed or accepted:
	// an old list replayed to a verifier hides every later revocation.
	MaxRevocationListTTL = time.Hour
	// MaxRevocationListSize is the largest signed list, in bytes.
	MaxRevocationListSize = 1 << 20
	// MaxRevocationEntries is the most entries (tokens, subjects and keys
	// together) a list or a revocation.State holds.
	MaxRevocationEntries = 100_000
)

// RevokedToken withdraws one token by its "jti".
type RevokedToken struct {
	ID string
	// ExpiresAt is when the entry may be dropped: the token's own expiry
	// plus leeway, after which no verifier accepts it anyway.
	ExpiresAt time.Time
}

// RevokedSubject withdraws every token of a subject issued before NotBefore
// ("sign out everywhere").
type RevokedSubject struct {
	Subject string
	// NotBefore: tokens whose "iat" is earlier are revoked.
	NotBefore time.Time
	// ExpiresAt is when the entry may be dropped: NotBefore plus the
	// longest token lifetime plus leeway (longer if relying services keep
	// sessions made from tokens and check SubjectNotBefore).
	ExpiresAt time.Time
}

// RevokedKey withdraws every token signed by a key, whatever its times.
// It reaches verifiers with the list, faster than the key's removal from
// the JWKS reaches their key caches.
type RevokedKey struct {
	KeyID string
	// ExpiresAt is when the entry may be dropped: once every verifier has
	// refreshed its JWKS since the key was removed from it.
	ExpiresAt time.Time
}

// RevocationList is the content of a signed revocation list.
type RevocationList struct {
	Issuer   string
	IssuedAt time.Time
	// ExpiresAt is the signed list's "exp". Set by the verifier; the signer
	// computes it from its ttl.
	ExpiresAt time.Time
	Tokens    []RevokedToken
	Subjects  []RevokedSubject
	Keys      []RevokedKey
}

func (l *RevocationList) entries() int { return len(l.Tokens) + len(l.Subjects) + len(l.Keys) }

// withoutExpired returns a copy of l without the entries expired at now.
func (l RevocationList) withoutExpired(now time.Time) RevocationList {
	live := func(exp time.Time) bool { return now.Before(exp) }
	out := l
	out.Tokens = slices.DeleteFunc(slices.Clone(l.Tokens), func(e RevokedToken) bool { return !live(e.ExpiresAt) })
	out.Subjects = slices.DeleteFunc(slices.Clone(l.Subjects), func(e RevokedSubject) bool { return !live(e.ExpiresAt) })
	out.Keys = slices.DeleteFunc(slices.Clone(l.Keys), func(e RevokedKey) bool { return !live(e.ExpiresAt) })
	return out
}

// Validate reports whether e may be signed into a list: an id within the
// claim bounds and times a NumericDate can hold.
func (e RevokedToken) Validate() error {
	if e.ID == "" || len(e.ID) > maxIDLen {
		return fmt.Errorf("jti must be 1 to %d bytes", maxIDLen)
	}
	return checkEntryTime(e.ExpiresAt)
}

// Validate reports whether e may be signed into a list: an id within the
// claim bounds and times a NumericDate can hold.
func (e RevokedSubject) Validate() error {
	switch {
	case e.Subject == "" || len(e.Subject) > maxStringLen:
		return fmt.Errorf("sub must be 1 to %d bytes", maxStringLen)
	case e.NotBefore.IsZero() || e.NotBefore.Unix() < 0 || e.NotBefore.Unix() > maxNumericDate:
		return errors.New("subject not-before out of range")
	case e.ExpiresAt.Before(e.NotBefore):
		return errors.New("subject entry expires before its not-before")
	}
	return checkEntryTime(e.ExpiresAt)
}

// Validate reports whether e may be signed into a list: an id within the
// claim bounds and times a NumericDate can hold.
func (e RevokedKey) Validate() error {
	if e.KeyID == "" || len(e.KeyID) > maxKidLen {
		return fmt.Errorf("kid must be 1 to %d bytes", maxKidLen)
	}
	return checkEntryTime(e.ExpiresAt)
}

func checkEntryTime(exp time.Time) error {
	if exp.IsZero() || exp.Unix() < 0 || exp.Unix() > maxNumericDate {
		return errors.New("entry expiry out of range")
	}
	return nil
}

// wireRevocationList is the JSON payload of a signed list.
type wireRevocationList struct {
	Issuer   string               `json:"iss"`
	IssuedAt int64                `json:"iat"`
	Expiry   int64                `json:"exp"`
	Tokens   []wireRevokedToken   `json:"jtis"`
	Subjects []wireRevokedSubject `json:"subjects"`
	Keys     []wireRevokedKey     `json:"kids"`
}

type wireRevokedToken struct {
	ID     string `json:"jti"`
	Expiry int64  `json:"exp"`
}

type wireRevokedSubject struct {
	Subject   string `json:"sub"`
	NotBefore int64  `json:"nbf"`
	Expiry    int64  `json:"exp"`
}

type wireRevokedKey struct {
	KeyID  string `json:"kid"`
	Expiry int64  `json:"exp"`
}

// SignRevocationList signs l as a revocation list of the minter's issuer
// with the keyring's current key, valid for ttl (zero means
// DefaultRevocationListTTL). Entries expired by now are left out, so the
// list only ever holds what a verifier still needs; times are rounded up to
// whole seconds, so no entry ends earlier than asked. l.Issuer must be empty
// or the minter's issuer; l.IssuedAt and l.ExpiresAt are ignored.
func (m *Minter) SignRevocationList(l RevocationList, ttl time.Duration) (string, error) {
	if ttl == 0 {
		ttl = DefaultRevocationListTTL
	}
	if ttl < time.Second || ttl > MaxRevocationListTTL {
		return "", fmt.Errorf("broker: revocation list: ttl %v must be between 1s and %v", ttl, MaxRevocationListTTL)
	}
	if l.Issuer != "" && l.Issuer != m.cfg.Issuer {
		return "", fmt.Errorf("broker: revocation list: issuer %q is not the minter's", l.Issuer)
	}
	now := m.cfg.Now().Truncate(time.Second)
	l = l.withoutExpired(now)
	if n := l.entries(); n > MaxRevocationEntries {
		return "", fmt.Errorf("broker: revocation list: %d entries exceed the limit of %d", n, MaxRevocationEntries)
	}
	w := wireRevocationList{
		Issuer:   m.cfg.Issuer,
		IssuedAt: now.Unix(),
		Expiry:   now.Add(ttl.Truncate(time.Second)).Unix(),
		Tokens:   make([]wireRevokedToken, 0, len(l.Tokens)),
		Subjects: make([]wireRevokedSubject, 0, len(l.Subjects)),
		Keys:     make([]wireRevokedKey, 0, len(l.Keys)),
	}
	var errs []error
	for _, e := range l.Tokens {
		if err := e.Validate(); err != nil {
			errs = append(errs, err)
		}
		w.Tokens = append(w.Tokens, wireRevokedToken{ID: e.ID, Expiry: seconds.Ceil(e.ExpiresAt).Unix()})
	}
	for _, e := range l.Subjects {
		if err := e.Validate(); err != nil {
			errs = append(errs, err)
		}
		w.Subjects = append(w.Subjects, wireRevokedSubject{Subject: e.Subject, NotBefore: seconds.Ceil(e.NotBefore).Unix(), Expiry: seconds.Ceil(e.ExpiresAt).Unix()})
	}
	for _, e := range l.Keys {
		if err := e.Validate(); err != nil {
			errs = append(errs, err)
		}
		w.Keys = append(w.Keys, wireRevokedKey{KeyID: e.KeyID, Expiry: seconds.Ceil(e.ExpiresAt).Unix()})
	}
	if err := errors.Join(errs...); err != nil {
		return "", fmt.Errorf("broker: revocation list: %w", err)
	}
	payload, err := json.Marshal(w)
	if err != nil {
		return "", fmt.Errorf("broker: revocation list: %w", err)
	}
	key, err := m.cfg.Keys.CurrentKey()
	if err != nil {
		return "", err
	}
	header, err := key.protectedHeader(RevocationListType)
	if err != nil {
		return "", fmt.Errorf("broker: revocation list: %w", err)
	}
	token, err := key.signCompact(header, payload)
	if err != nil {
		return "", fmt.Errorf("broker: revocation list: sign: %w", err)
	}
	if len(token) > MaxRevocationListSize {
		return "", fmt.Errorf("broker: revocation list: %d bytes exceed the limit of %d", len(token), MaxRevocationListSize)
	}
	return token, nil
}

// RevocationListVerifierConfig configures a RevocationListVerifier.
type RevocationListVerifierConfig struct {
	// Issuers are the trusted issuers, each with the only keys that may sign
	// its lists: the issuer's JWKS, the same KeySource that verifies its
	// handoff tokens. A list claiming one issuer is never checked against
	// another's keys. Required.
	Issuers []TrustedIssuer
	// Algorithms narrows the fixed allowlist. Default Algorithms().
	Algorithms []Algorithm
	// Leeway is the clock skew tolerated on "exp" and "iat". Default 30s, at
	// most MaxLeeway.
	Leeway time.Duration
	// MaxLifetime caps "exp" - "iat". Default and maximum
	// MaxRevocationListTTL.
	MaxLifetime time.Duration
	// MaxSize is the largest list parsed, in bytes. Default and maximum
	// MaxRevocationListSize.
	MaxSize int
	// MaxEntries is the most entries accepted. Default and maximum
	// MaxRevocationEntries.
	MaxEntries int
	// Now returns the current time. Default time.Now.
	Now func() time.Time
}

// RevocationListVerifier checks signed revocation lists. It is safe for
// concurrent use.
type RevocationListVerifier struct {
	cfg      RevocationListVerifierConfig
	profile  profile
	validity validity
}

// NewRevocationListVerifier validates cfg, reporting every problem at once.
func NewRevocationListVerifier(cfg RevocationListVerifierConfig) (*RevocationListVerifier, error) {
	if cfg.Leeway == 0 {
		cfg.Leeway = DefaultLeeway
	}
	if cfg.MaxLifetime == 0 {
		cfg.MaxLifetime = MaxRevocationListTTL
	}
	if cfg.MaxSize == 0 {
		cfg.MaxSize = MaxRevocationListSize
	}
	if cfg.MaxEntries == 0 {
		cfg.MaxEntries = MaxRevocationEntries
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	p, errs := newProfile(RevocationListType, cfg.Issuers, cfg.Algorithms, cfg.MaxSize)
	errs = append(errs, checkLeeway(cfg.Leeway))
	if cfg.MaxLifetime < 0 || cfg.MaxLifetime > MaxRevocationListTTL {
		errs = append(errs, fmt.Errorf("field MaxLifetime must be between 1s and %v", MaxRevocationListTTL))
	}
	if cfg.MaxSize < 0 || cfg.MaxSize > MaxRevocationListSize {
		errs = append(errs, fmt.Errorf("field MaxSize must be between 1 and %d", MaxRevocationListSize))
	}
	if cfg.MaxEntries < 0 || cfg.MaxEntries > MaxRevocationEntries {
		errs = append(errs, fmt.Errorf("field MaxEntries must be between 1 and %d", MaxRevocationEntries))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("broker: revocation list verifier config: %w", err)
	}
	return &RevocationListVerifier{cfg: cfg, profile: p, validity: validity{leeway: cfg.Leeway, maxLifetime: cfg.MaxLifetime}}, nil
}

// Verify checks a signed revocation list with the pipeline that checks
// handoff tokens (size, structure, header, issuer, key, signature), but its
// own profile: "typ" must be revocation+jwt, so a handoff token is refused
// here and a revocation list is refused by Verifier (both ReasonBadType),
// and its key must belong to the issuer the list names. Then the claims:
// "iat" and "exp" with leeway and a capped lifetime, and every entry
// well-formed, with strict JSON types and no duplicate member names. It
// returns the list or a *Error.
func (v *RevocationListVerifier) Verify(ctx context.Context, token string) (*RevocationList, error) {
	pass := func(_ string, err error) error { return err }
	var in incomingRevocationList
	jws, err := v.profile.verify(ctx, token, &in, pass)
	if err != nil {
		return nil, err
	}
	return v.checkClaims(&in, jws, v.cfg.Now())
}

// incomingRevocationList is a list's payload as decoded (decodePayload),
// before the signature is checked; times stay raw so their JSON types are
// checked strictly (see incomingClaims).
type incomingRevocationList struct {
	Issuer   *string        `json:"iss"`
	IssuedAt jsontext.Value `json:"iat"`
	Expiry   jsontext.Value `json:"exp"`
	Tokens   []struct {
		ID     *string        `json:"jti"`
		Expiry jsontext.Value `json:"exp"`
	} `json:"jtis"`
	Subjects []struct {
		Subject   *string        `json:"sub"`
		NotBefore jsontext.Value `json:"nbf"`
		Expiry    jsontext.Value `json:"exp"`
	} `json:"subjects"`
	Keys []struct {
		KeyID  *string        `json:"kid"`
		Expiry jsontext.Value `json:"exp"`
	} `json:"kids"`
}

func (in *incomingRevocationList) unverifiedIssuer() *string { return in.Issuer }

// checkClaims validates a list's claims at now. in is the payload of jws,
// whose signature and issuer the pipeline has checked.
func (v *RevocationListVerifier) checkClaims(in *incomingRevocationList, jws verifiedJWS, now time.Time) (*RevocationList, error) {
	switch {
	case in.IssuedAt == nil:
		return nil, reject(ReasonMissingClaim, "iat", "required claim is absent")
	case in.Expiry == nil:
		return nil, reject(ReasonMissingClaim, "exp", "required claim is absent")
	}
	l := &RevocationList{Issuer: jws.issuer}
	var err error
	if l.IssuedAt, err = numericDate("iat", in.IssuedAt); err != nil {
		return nil, err
	}
	if l.ExpiresAt, err = numericDate("exp", in.Expiry); err != nil {
		return nil, err
	}
	if err := v.validity.check(now, l.IssuedAt, time.Time{}, l.ExpiresAt); err != nil {
		return nil, err
	}
	if n := len(in.Tokens) + len(in.Subjects) + len(in.Keys); n > v.cfg.MaxEntries {
		return nil, reject(ReasonTooLarge, "", "%d entries exceed the limit of %d", n, v.cfg.MaxEntries)
	}
	l.Tokens = make([]RevokedToken, 0, len(in.Tokens))
	for i, e := range in.Tokens {
		claim := fmt.Sprintf("jtis/%d", i)
		if e.ID == nil {
			return nil, reject(ReasonMissingClaim, claim+"/jti", "required member is absent")
		}
		exp, err := entryDate(claim+"/exp", e.Expiry)
		if err != nil {
			return nil, err
		}
		entry := RevokedToken{ID: *e.ID, ExpiresAt: exp}
		if err := entry.Validate(); err != nil {
			return nil, rejectWrap(ReasonInvalidClaim, claim, err)
		}
		l.Tokens = append(l.Tokens, entry)
	}
	l.Subjects = make([]RevokedSubject, 0, len(in.Subjects))
	for i, e := range in.Subjects {
		claim := fmt.Sprintf("subjects/%d", i)
		if e.Subject == nil {
			return nil, reject(ReasonMissingClaim, claim+"/sub", "required member is absent")
		}
		nbf, err := entryDate(claim+"/nbf", e.NotBefore)
		if err != nil {
			return nil, err
		}
		exp, err := entryDate(claim+"/exp", e.Expiry)
		if err != nil {
			return nil, err
		}
		entry := RevokedSubject{Subject: *e.Subject, NotBefore: nbf, ExpiresAt: exp}
		if err := entry.Validate(); err != nil {
			return nil, rejectWrap(ReasonInvalidClaim, claim, err)
		}
		l.Subjects = append(l.Subjects, entry)
	}
	l.Keys = make([]RevokedKey, 0, len(in.Keys))
	for i, e := range in.Keys {
		claim := fmt.Sprintf("kids/%d", i)
		if e.KeyID == nil {
			return nil, reject(ReasonMissingClaim, claim+"/kid", "required member is absent")
		}
		exp, err := entryDate(claim+"/exp", e.Expiry)
		if err != nil {
			return nil, err
		}
		entry := RevokedKey{KeyID: *e.KeyID, ExpiresAt: exp}
		if err := entry.Validate(); err != nil {
			return nil, rejectWrap(ReasonInvalidClaim, claim, err)
		}
		l.Keys = append(l.Keys, entry)
	}
	return l, nil
}

// entryDate is numericDate for a required member of a list entry.
func entryDate(name string, raw jsontext.Value) (time.Time, error) {
	if raw == nil {
		return time.Time{}, reject(ReasonMissingClaim, name, "required member is absent")
	}
	return numericDate(name, raw)
}
