package token

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/handoffbroker/handoff/broker/internal/seconds"
)

// VerifierConfig configures a Verifier. A required field left empty is a
// construction error, never a skipped check.
type VerifierConfig struct {
	// Issuers are the trusted issuers, each with the only keys that may sign
	// its tokens: a token's key is looked up in the source of the issuer
	// its "iss" names, never in another's. Required.
	Issuers []TrustedIssuer
	// Audience is this service's identifier; "aud" must equal it exactly.
	// Required.
	Audience string
	// Replay records used "jti" values. Required.
	Replay ReplayStore
	// Revocation, when set, is asked about every token that passed the other
	// checks. Default: none (keys and expiry are then the only withdrawal).
	Revocation RevocationChecker
	// Algorithms narrows the fixed allowlist. Default Algorithms().
	Algorithms []Algorithm
	// Leeway is the clock skew tolerated on exp, nbf and iat. Default 30s,
	// at most MaxLeeway.
	Leeway time.Duration
	// MaxLifetime caps exp - iat whatever the issuer chose. Default 10m.
	MaxLifetime time.Duration
	// MaxTokenSize is the largest token parsed, in bytes. Default 8 KiB.
	MaxTokenSize int
	// Now returns the current time. Default time.Now.
	Now func() time.Time
}

// Verifier checks handoff tokens. It is safe for concurrent use.
type Verifier struct {
	cfg           VerifierConfig
	typ           string
	profile       profile
	validity      validity
	rememberSince func() time.Time
}

// NewVerifier validates cfg, reporting every problem at once. The
// Verifier accepts handoff tokens ("typ" HandoffTokenType) only.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	return newVerifier(cfg, HandoffTokenType)
}

func newVerifier(cfg VerifierConfig, typ string) (*Verifier, error) {
	if cfg.Leeway == 0 {
		cfg.Leeway = DefaultLeeway
	}
	if cfg.MaxLifetime == 0 {
		cfg.MaxLifetime = DefaultMaxTTL
	}
	if cfg.MaxTokenSize == 0 {
		cfg.MaxTokenSize = DefaultMaxTokenSize
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	p, errs := newProfile(typ, cfg.Issuers, cfg.Algorithms, cfg.MaxTokenSize)
	if cfg.Audience == "" {
		errs = append(errs, errors.New("field Audience is required"))
	}
	if cfg.Replay == nil {
		errs = append(errs, errors.New("field Replay is required"))
	}
	errs = append(errs, checkLeeway(cfg.Leeway))
	if cfg.MaxLifetime < 0 {
		errs = append(errs, errors.New("field MaxLifetime must be positive"))
	}
	if cfg.MaxTokenSize < 0 || cfg.MaxTokenSize > 64<<10 {
		errs = append(errs, errors.New("field MaxTokenSize must be between 1 and 65536"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("broker: verifier config: %w", err)
	}
	v := &Verifier{cfg: cfg, typ: typ, profile: p, validity: validity{leeway: cfg.Leeway, maxLifetime: cfg.MaxLifetime}}
	if f, ok := cfg.Replay.(interface{ RemembersSince() time.Time }); ok {
		v.rememberSince = f.RemembersSince
	}
	return v, nil
}

// Expect is what the caller already knows the token must say. It fails
// closed: the zero Expect states nothing, and Verify refuses it with
// ReasonInvalidExpect rather than skip the task check.
type Expect struct {
	// Task, when set, must equal the token's task exactly, parameters digest
	// included.
	Task *Task
	// AnyTask accepts a token for any task. Set it, instead of Task, only
	// where the caller shows the token's task to the user for confirmation
	// before acting on it (the browser handoff); everywhere else the caller
	// knows the task and states it.
	AnyTask bool
	// Binding, when set, requires the token to be bound to the browser
	// presenting it: its "nonce" must equal one of Binding.Nonces, else
	// ReasonUnboundHandoff. Default nil: binding is not checked (the
	// Bearer API, where no browser is involved).
	Binding *Binding
	// Subject, when set, must equal the token's "sub", else
	// ReasonWrongSubject, before anything is consumed: a result token of
	// one user posted into another user's session (a forced or swapped
	// result) changes nothing. Default "": any subject.
	Subject string
}

// Binding is what a browser proved it holds: the nonces (BindingNonce) of
// the binding secrets it presented. An empty Nonces matches no token.
type Binding struct {
	Nonces []string
}

// BindingNonce returns the "nonce" claim for a binding secret: the
// unpadded base64url SHA-256 of secret (43 characters). The issuer only
// ever sees this digest; the secret stays with the browser and the
// relying service.
func BindingNonce(secret []byte) string {
	sum := sha256.Sum256(secret)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// check refuses a token whose nonce is absent or matches none of b's. The
// comparison is constant-time in the nonce's contents, so a timing side
// channel reveals nothing about the secret's digest.
func (b *Binding) check(nonce string) error {
	if b == nil {
		return nil
	}
	if nonce == "" {
		return reject(ReasonUnboundHandoff, "nonce", "token is not bound to a browser")
	}
	match := 0
	for _, n := range b.Nonces {
		match |= subtle.ConstantTimeCompare([]byte(n), []byte(nonce))
	}
	if match != 1 {
		return reject(ReasonUnboundHandoff, "nonce", "token is bound to another browser or an expired handoff")
	}
	return nil
}

func (e Expect) check() error {
	if (e.Task != nil) != e.AnyTask {
		return nil
	}
	if e.AnyTask {
		return reject(ReasonInvalidExpect, "task", "Expect sets both Task and AnyTask")
	}
	return reject(ReasonInvalidExpect, "task", "Expect states no task: set Task, or AnyTask where the user confirms the task")
}

// Claims are the contents of a token that passed every check.
type Claims struct {
	Issuer    string
	Subject   string
	Audience  string
	ID        string
	IssuedAt  time.Time
	NotBefore time.Time // zero when the token had no "nbf"
	ExpiresAt time.Time
	Task      Task
	Actor     *Actor
	// Nonce is the token's "nonce": the digest of the browser binding
	// secret it was minted for; "" when the token is unbound.
	Nonce string
	// Outcome is a result token's "outcome"; "" for a handoff token.
	Outcome   Outcome
	KeyID     string
	Algorithm Algorithm
}

// Ref identifies the token c came from to a RevocationChecker, or to a
// relying party's HeldRevocation for a session opened from it.
func (c Claims) Ref() TokenRef {
	return TokenRef{Issuer: c.Issuer, Subject: c.Subject, ID: c.ID, KeyID: c.KeyID, IssuedAt: c.IssuedAt, ExpiresAt: c.ExpiresAt}
}

// Verified is a token that passed every check. Only the Verifier builds one,
// so holding a *Verified is proof of verification.
type Verified struct {
	claims Claims
}

// Claims returns a copy of the verified claims.
func (v *Verified) Claims() Claims { return v.claims }

// Verify runs every check on token, in order: the caller's Expect, size,
// structure, header, issuer, key, signature, claims, expected task,
// browser binding, revocation, and finally consumes the token's "jti" so it can never be used
// again. It returns the verified claims or a *Error. The jti is consumed only
// when everything else passed: an invalid token never burns the jti of a
// valid one.
func (v *Verifier) Verify(ctx context.Context, token string, want Expect) (*Verified, error) {
	return v.run(ctx, token, want, true, nil)
}

// Step is one check in an Explanation.
type Step struct {
	Name string
	Err  error // nil when the check passed
}

// Explanation is the outcome of every check Explain ran.
type Explanation struct {
	Steps []Step
	Token *Verified // set when every check passed
	Err   error     // the first failure
}

// Explain runs the same checks as Verify without consuming the jti, and
// reports each one: a troubleshooting aid. Because it does not consume, a
// token Explain accepts may still be refused by Verify as replayed.
func (v *Verifier) Explain(ctx context.Context, token string, want Expect) Explanation {
	var ex Explanation
	ex.Token, ex.Err = v.run(ctx, token, want, false, func(name string, err error) {
		ex.Steps = append(ex.Steps, Step{Name: name, Err: err})
	})
	return ex
}

// The step names reported by Explain.
const (
	StepSize       = "size"
	StepStructure  = "structure"
	StepHeader     = "header"
	StepIssuer     = "issuer"
	StepKey        = "key"
	StepSignature  = "signature"
	StepClaims     = "claims"
	StepTask       = "task"
	StepSubject    = "subject"
	StepBinding    = "binding"
	StepRevocation = "revocation"
	StepReplay     = "replay"
)

func (v *Verifier) run(ctx context.Context, token string, want Expect, consume bool, trace func(string, error)) (*Verified, error) {
	var jti string // set once the signature has verified
	step := func(name string, err error) error {
		if err != nil && jti != "" {
			var e *Error
			if errors.As(err, &e) && e.TokenID == "" {
				e.TokenID = jti
			}
		}
		if trace != nil {
			trace(name, err)
		}
		return err
	}
	if err := want.check(); err != nil {
		return nil, step(StepTask, err)
	}
	var in incomingClaims
	jws, err := v.profile.verify(ctx, token, &in, step)
	if err != nil {
		return nil, err
	}
	c, err := v.checkClaims(&in, jws, v.cfg.Now())
	jti = c.ID
	if err := step(StepClaims, err); err != nil {
		return nil, err
	}
	if err := step(StepTask, checkTask(c.Task, want.Task)); err != nil {
		return nil, err
	}
	if want.Subject != "" && c.Subject != want.Subject {
		return nil, step(StepSubject, reject(ReasonWrongSubject, "sub", "token is for another user"))
	}
	if want.Binding != nil {
		if err := step(StepBinding, want.Binding.check(c.Nonce)); err != nil {
			return nil, err
		}
	}
	if v.cfg.Revocation != nil {
		if err := step(StepRevocation, v.checkRevoked(ctx, &c)); err != nil {
			return nil, err
		}
	}
	if v.rememberSince != nil && c.IssuedAt.Before(seconds.Ceil(v.rememberSince())) {
		err := reject(ReasonIssuedBeforeRestart, "iat", "issued before the replay store started; it may already have been used")
		return nil, step(StepReplay, err)
	}
	if consume {
		if err := step(StepReplay, v.consume(ctx, &c)); err != nil {
			return nil, err
		}
	}
	return &Verified{claims: c}, nil
}

func (v *Verifier) consume(ctx context.Context, c *Claims) error {
	err := v.cfg.Replay.Consume(ctx, ReplayKey(c.Issuer, c.ID), ReplayRetention(c.ExpiresAt))
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrAlreadyUsed):
		return reject(ReasonReplayed, "jti", "jti already used")
	case errors.Is(err, ErrMarkedRevoked):
		return reject(ReasonRevoked, "jti", "the token was revoked")
	default:
		return rejectWrap(ReasonUnavailable, "", fmt.Errorf("replay store: %w", err))
	}
}

func (v *Verifier) checkRevoked(ctx context.Context, c *Claims) error {
	err := v.cfg.Revocation.CheckRevoked(ctx, c.Ref())
	if err == nil {
		return nil
	}
	if r := ReasonOf(err); r == ReasonRevoked || r == ReasonUnavailable {
		return err
	}
	return rejectWrap(ReasonUnavailable, "", fmt.Errorf("revocation: %w", err))
}

func checkTask(got Task, want *Task) error {
	if want == nil {
		return nil
	}
	switch {
	case got.ID != want.ID:
		return reject(ReasonTaskMismatch, "task.id", "token is for another task")
	case got.Action != want.Action:
		return reject(ReasonTaskMismatch, "task.action", "token is for another action")
	case got.ParamsDigest != want.ParamsDigest:
		return reject(ReasonTaskMismatch, "task.params_digest", "token is for other task parameters")
	}
	return nil
}
