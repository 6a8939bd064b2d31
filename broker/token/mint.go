package token

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/google/uuid"
)

// Token profile constants (docs/PROTOCOL.md).
const (
	// HandoffTokenType is the "typ" of every handoff token (RFC 8725 §3.11).
	HandoffTokenType = "handoff+jwt"
	// DefaultTTL is a handoff token's lifetime unless the request says otherwise.
	DefaultTTL = 60 * time.Second
	// DefaultMaxTTL is the longest lifetime a Minter signs and a Verifier
	// accepts unless configured otherwise.
	DefaultMaxTTL = 10 * time.Minute
	// DefaultLeeway is the clock skew a Verifier tolerates by default.
	DefaultLeeway = 30 * time.Second
	// MaxLeeway is the most clock skew a Verifier can be configured to allow.
	MaxLeeway = 2 * time.Minute
	// DefaultMaxTokenSize is the largest token a Verifier parses by default.
	DefaultMaxTokenSize = 8 << 10
)

// Bounds on string claims, enforced by Minter and Verifier alike.
const (
	maxKidLen    = 128
	maxIDLen     = 128 // jti, task id, task action
	maxStringLen = 256 // sub, act.sub, params_digest
)

// Task names the one task a handoff token allows.
type Task struct {
	// ID identifies the task instance, for example a transfer number.
	ID string `json:"id"`
	// Action is what the holder may do with it, for example "approve".
	Action string `json:"action"`
	// Params, when set, are the task's parameters in clear (for example
	// amount, currency, payee), so the relying service can show the user
	// what they are about to confirm. They are signed with the token.
	Params map[string]string `json:"params,omitempty"`
	// ParamsDigest binds the token to the task's parameters (DigestParams):
	// a token for one transfer cannot approve another. Minter fills it from
	// Params when empty; Verifier checks it matches Params when both are set.
	ParamsDigest string `json:"params_digest,omitempty"`
}

// Bounds on task parameters.
const (
	maxParams        = 16
	maxParamKeyLen   = 64
	maxParamValueLen = 256
)

func (t Task) validate() error {
	switch {
	case t.ID == "" || t.Action == "":
		return errors.New("task id and action are required")
	case len(t.ID) > maxIDLen || len(t.Action) > maxIDLen || len(t.ParamsDigest) > maxStringLen:
		return errors.New("task field too long")
	case len(t.Params) > maxParams:
		return fmt.Errorf("at most %d task parameters", maxParams)
	}
	for k, v := range t.Params {
		if k == "" || len(k) > maxParamKeyLen || len(v) > maxParamValueLen {
			return errors.New("task parameter name or value out of bounds")
		}
	}
	if len(t.Params) > 0 && t.ParamsDigest != DigestParams(t.Params) {
		return errors.New("task params_digest does not match params")
	}
	return nil
}

// Actor is the RFC 8693 §4.1 "act" claim: the party acting on the subject's
// behalf, when a service rather than the user asked for the token.
type Actor struct {
	Subject string `json:"sub"`
}

// DigestParams returns a stable digest of a task's parameters for
// Task.ParamsDigest: "sha256:" and the base64url SHA-256 of the parameters as
// JSON with sorted keys. Issuer and verifier compute it independently from
// the parameters each holds. Invalid UTF-8 is hashed as U+FFFD, as JSON
// decoders read it; no token can carry such parameters (Mint refuses them).
func DigestParams(params map[string]string) string {
	b, err := json.Marshal(params, json.Deterministic(true), jsontext.AllowInvalidUTF8(true))
	if err != nil { // a map[string]string always encodes once invalid UTF-8 is allowed
		panic(err)
	}
	sum := sha256.Sum256(b)
	return "sha256:" + base64.RawURLEncoding.EncodeToString(sum[:])
}

// wireClaims is the JSON payload of a handoff token.
type wireClaims struct {
	Issuer    string `json:"iss"`
	Subject   string `json:"sub"`
	Audience  string `json:"aud"`
	IssuedAt  int64  `json:"iat"`
	NotBefore int64  `json:"nbf"`
	Expiry    int64  `json:"exp"`
	ID        string `json:"jti"`
	Task      Task   `json:"task"`
	Actor     *Actor `json:"act,omitempty"`
	Nonce     string `json:"nonce,omitempty"`
	// Outcome is set in result tokens only.
	Outcome Outcome `json:"outcome,omitempty"`
}

// MinterConfig configures a Minter.
type MinterConfig struct {
	// Issuer is the "iss" of every token: the issuer's URL. Required.
	Issuer string
	// Keys supplies the key that signs now (a keys.Keyring). Required.
	Keys Signer
	// DefaultTTL is the lifetime when a request names none. Default 60s.
	DefaultTTL time.Duration
	// MaxTTL is a hard ceiling: requests above it are refused. Default 10m.
	MaxTTL time.Duration
	// Now returns the current time. Default time.Now.
	Now func() time.Time
	// NewID returns a fresh unique "jti". Default: a random UUID (v4).
	NewID func() string
}

// Minter signs handoff tokens.
type Minter struct {
	cfg MinterConfig
}

// NewMinter validates cfg and returns a Minter.
func NewMinter(cfg MinterConfig) (*Minter, error) {
	if cfg.DefaultTTL == 0 {
		cfg.DefaultTTL = DefaultTTL
	}
	if cfg.MaxTTL == 0 {
		cfg.MaxTTL = DefaultMaxTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.NewID == nil {
		cfg.NewID = uuid.NewString
	}
	var errs []error
	if cfg.Issuer == "" {
		errs = append(errs, errors.New("field Issuer is required"))
	}
	if cfg.Keys == nil {
		errs = append(errs, errors.New("field Keys is required"))
	}
	if cfg.MaxTTL < 0 {
		errs = append(errs, errors.New("field MaxTTL must be positive"))
	}
	if cfg.DefaultTTL < time.Second || cfg.DefaultTTL > cfg.MaxTTL {
		errs = append(errs, fmt.Errorf("field DefaultTTL %v must be between 1s and MaxTTL %v", cfg.DefaultTTL, cfg.MaxTTL))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("broker: minter config: %w", err)
	}
	return &Minter{cfg: cfg}, nil
}

// MintRequest says what a token is for.
type MintRequest struct {
	// Subject is the user the token speaks for ("sub"). Required.
	Subject string
	// Audience is the one service that may accept the token ("aud"). Required.
	Audience string
	// Task is the one task the token allows. ID and Action required.
	Task Task
	// TTL is the lifetime; zero means the minter's default. Above the
	// minter's MaxTTL the request is refused.
	TTL time.Duration
	// Actor, when set, names the service minting on the subject's behalf.
	Actor *Actor
	// Nonce, when set, binds the token to the browser that started the
	// handoff ("nonce"): the base64url SHA-256 of a secret that browser
	// holds (BindingNonce), never the secret itself. At most 256 bytes.
	Nonce string
}

// Minted is a freshly signed token and the facts a caller may log or show.
// Token is a bearer credential: never log it or put it in a URL.
type Minted struct {
	Token     string
	ID        string
	KeyID     string
	Algorithm Algorithm
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// ErrTTLTooLong is returned by Mint for a lifetime above the configured MaxTTL.
var ErrTTLTooLong = errors.New("broker: requested lifetime exceeds the maximum")

// RequestError is Mint's refusal of a request that breaks the token
// profile's bounds (a required field empty, a value too long, too many
// parameters). Err says what is wrong, without context, so a caller that
// has its own (a command's flag names) can report it in those terms.
type RequestError struct {
	Err error
}

func (e *RequestError) Error() string { return "broker: mint: " + e.Err.Error() }

// Unwrap returns the problems with the request.
func (e *RequestError) Unwrap() error { return e.Err }

// Mint signs a token for req with the keyring's current key.
func (m *Minter) Mint(req MintRequest) (Minted, error) {
	ttl, err := m.lifetime(req.TTL)
	if err != nil {
		return Minted{}, err
	}
	if len(req.Task.Params) > 0 && req.Task.ParamsDigest == "" {
		req.Task.ParamsDigest = DigestParams(req.Task.Params)
	}
	if err := validateRequest(req, ttl); err != nil {
		return Minted{}, &RequestError{Err: err}
	}
	return m.signNew(HandoffTokenType, ttl, wireClaims{
		Subject:  req.Subject,
		Audience: req.Audience,
		Task:     req.Task,
		Actor:    req.Actor,
		Nonce:    req.Nonce,
	})
}

// lifetime is ttl, or the minter's default for zero, refused above MaxTTL.
func (m *Minter) lifetime(ttl time.Duration) (time.Duration, error) {
	if ttl == 0 {
		ttl = m.cfg.DefaultTTL
	}
	if ttl > m.cfg.MaxTTL {
		return 0, fmt.Errorf("%w: %v > %v", ErrTTLTooLong, ttl, m.cfg.MaxTTL)
	}
	return ttl, nil
}

// signNew fills in what every minted token carries (the issuer, the times
// for a lifetime of ttl from now, a fresh jti) and signs c as a token of
// type typ with the keyring's current key.
func (m *Minter) signNew(typ string, ttl time.Duration, c wireClaims) (Minted, error) {
	key, err := m.cfg.Keys.CurrentKey()
	if err != nil {
		return Minted{}, err
	}
	header := key.handoffHeader
	if typ == ResultTokenType {
		header = key.resultHeader
	}
	now := m.cfg.Now().Truncate(time.Second)
	exp := now.Add(ttl.Truncate(time.Second))
	c.Issuer = m.cfg.Issuer
	c.IssuedAt, c.NotBefore, c.Expiry = now.Unix(), now.Unix(), exp.Unix()
	c.ID = m.cfg.NewID()
	return sign(key, header, c, now, exp)
}

// sign serializes c and signs it under header, one of key's encoded
// protected headers (one per token type).
func sign(key *SigningKey, header string, c wireClaims, iat, exp time.Time) (Minted, error) {
	if c.ID == "" || len(c.ID) > maxIDLen {
		return Minted{}, errors.New("broker: mint: NewID returned an empty or over-long id")
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return Minted{}, fmt.Errorf("broker: mint: %w", err)
	}
	token, err := key.signCompact(header, payload)
	if err != nil {
		return Minted{}, fmt.Errorf("broker: mint: sign: %w", err)
	}
	return Minted{Token: token, ID: c.ID, KeyID: key.id, Algorithm: key.alg, IssuedAt: iat, ExpiresAt: exp}, nil
}

// KeyID returns the "kid" of the key Mint and SignRevocationList sign with
// now, so a caller caching what the minter signed knows when the key changed.
func (m *Minter) KeyID() (string, error) {
	key, err := m.cfg.Keys.CurrentKey()
	if err != nil {
		return "", err
	}
	return key.id, nil
}

// Now returns the minter's current time: the "iat" it would sign now.
func (m *Minter) Now() time.Time { return m.cfg.Now() }

func validateRequest(req MintRequest, ttl time.Duration) error {
	var errs []error
	if req.Subject == "" || len(req.Subject) > maxStringLen {
		errs = append(errs, errors.New("subject is required (at most 256 bytes)"))
	}
	if req.Audience == "" || len(req.Audience) > maxStringLen {
		errs = append(errs, errors.New("audience is required (at most 256 bytes)"))
	}
	if err := req.Task.validate(); err != nil {
		errs = append(errs, err)
	}
	if req.Actor != nil && (req.Actor.Subject == "" || len(req.Actor.Subject) > maxStringLen) {
		errs = append(errs, errors.New("actor subject is required when an actor is given"))
	}
	if len(req.Nonce) > maxStringLen {
		errs = append(errs, errors.New("nonce is at most 256 bytes"))
	}
	if ttl < time.Second {
		errs = append(errs, errors.New("lifetime must be at least 1s"))
	}
	return errors.Join(errs...)
}
