package token

import (
	"errors"
	"fmt"
	"slices"
)

// Reason is a stable, machine-readable code saying why a token was rejected.
// Reasons are part of the public protocol (docs/PROTOCOL.md): servers put them
// in error pages, problem+json bodies, logs and metrics labels. They never
// change meaning once released.
type Reason string

// The rejection reasons, in roughly the order the checks run.
const (
	// ReasonInvalidExpect: the caller's Expect states neither a task (Task)
	// nor that any task will do (AnyTask), or states both. A mistake in the
	// relying service, not in the token: the token is refused unread and its
	// "jti" is not consumed.
	ReasonInvalidExpect Reason = "invalid_expect"
	// ReasonTooLarge: the token is longer than the verifier's size limit.
	ReasonTooLarge Reason = "too_large"
	// ReasonMalformed: not a compact JWS of three base64url segments, or the
	// header or payload is not a single well-formed JSON object (duplicate
	// member names included).
	ReasonMalformed Reason = "malformed"
	// ReasonUnsupportedAlg: "alg" is outside the fixed allowlist, or does not
	// match the algorithm of the key named by "kid".
	ReasonUnsupportedAlg Reason = "unsupported_alg"
	// ReasonBadType: "typ" is not the type this verification profile expects.
	ReasonBadType Reason = "bad_type"
	// ReasonBadHeader: the header carries a member the broker refuses
	// ("crit", "jku", "jwk", "x5u", "x5c", ...) or lacks "kid".
	ReasonBadHeader Reason = "bad_header"
	// ReasonUnknownKey: no trusted key has the token's "kid".
	ReasonUnknownKey Reason = "unknown_key"
	// ReasonBadSignature: the signature does not verify. Deliberately opaque.
	ReasonBadSignature Reason = "bad_signature"
	// ReasonMissingClaim: a required claim is absent.
	ReasonMissingClaim Reason = "missing_claim"
	// ReasonInvalidClaim: a claim has the wrong JSON type or an out-of-range
	// value (a string "exp", a fractional time, an over-long "jti").
	ReasonInvalidClaim Reason = "invalid_claim"
	// ReasonWrongIssuer: "iss" is not a trusted issuer.
	ReasonWrongIssuer Reason = "wrong_issuer"
	// ReasonWrongAudience: "aud" is not exactly this verifier's audience
	// (arrays are refused, even when they contain it).
	ReasonWrongAudience Reason = "wrong_audience"
	// ReasonExpired: "exp" plus leeway is in the past.
	ReasonExpired Reason = "expired"
	// ReasonNotYetValid: "nbf" minus leeway is in the future.
	ReasonNotYetValid Reason = "not_yet_valid"
	// ReasonIssuedInFuture: "iat" minus leeway is in the future.
	ReasonIssuedInFuture Reason = "issued_in_future"
	// ReasonLifetimeTooLong: "exp" - "iat" exceeds the verifier's own maximum.
	ReasonLifetimeTooLong Reason = "lifetime_too_long"
	// ReasonTaskMismatch: the token's task is not the one the caller expects.
	ReasonTaskMismatch Reason = "task_mismatch"
	// ReasonWrongSubject: the token speaks for another user than the one
	// the caller expects (Expect.Subject). Not consumed.
	ReasonWrongSubject Reason = "wrong_subject"
	// ReasonUnboundHandoff: the caller requires the token to be bound to
	// the browser presenting it (Expect.Binding), and its "nonce" is absent
	// or matches none of the secrets that browser proved. Checked before
	// revocation and single use, so the token is not consumed.
	ReasonUnboundHandoff Reason = "unbound_handoff"
	// ReasonRevoked: the token, its subject or its key was withdrawn.
	ReasonRevoked Reason = "revoked"
	// ReasonIssuedBeforeRestart: the replay store forgets on restart, so a
	// token issued before it started may already have been used.
	ReasonIssuedBeforeRestart Reason = "issued_before_restart"
	// ReasonReplayed: the token's "jti" was already used.
	ReasonReplayed Reason = "replayed"
	// ReasonUnavailable: a key source, revocation source or replay store
	// failed. The token's validity is unknown; callers must refuse it.
	ReasonUnavailable Reason = "unavailable"
)

var reasons = []Reason{
	ReasonInvalidExpect, ReasonTooLarge, ReasonMalformed, ReasonUnsupportedAlg, ReasonBadType,
	ReasonBadHeader, ReasonUnknownKey, ReasonBadSignature, ReasonMissingClaim,
	ReasonInvalidClaim, ReasonWrongIssuer, ReasonWrongAudience, ReasonExpired,
	ReasonNotYetValid, ReasonIssuedInFuture, ReasonLifetimeTooLong,
	ReasonTaskMismatch, ReasonWrongSubject, ReasonUnboundHandoff, ReasonRevoked, ReasonIssuedBeforeRestart,
	ReasonReplayed, ReasonUnavailable,
}

// Reasons lists every rejection reason, for documentation and metrics. The
// slice is a copy.
func Reasons() []Reason { return slices.Clone(reasons) }

// Error is a token rejection. Reason is safe to show to anyone; Claim names
// the offending claim or header member when there is one; Detail and the
// wrapped error are for logs only. No field ever holds the token.
type Error struct {
	Reason Reason
	Claim  string
	Detail string
	// TokenID is the token's "jti" when the rejection came after the
	// signature verified (so the id is authentic), for audit logs. Empty
	// otherwise: an unverified jti proves nothing.
	TokenID string
	Err     error
}

func (e *Error) Error() string {
	msg := "token rejected: " + string(e.Reason)
	if e.Claim != "" {
		msg += " (" + e.Claim + ")"
	}
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the underlying cause, if any.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is an *Error with the same Reason, so that
// errors.Is(err, &token.Error{Reason: token.ReasonReplayed}) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Reason == e.Reason && t.Claim == "" && t.Detail == "" && t.TokenID == "" && t.Err == nil
}

// ReasonOf returns the rejection reason carried by err, or "" when err is not
// (and does not wrap) a *Error.
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

func reject(reason Reason, claim, format string, args ...any) *Error {
	return &Error{Reason: reason, Claim: claim, Detail: fmt.Sprintf(format, args...)}
}

func rejectWrap(reason Reason, claim string, err error) *Error {
	return &Error{Reason: reason, Claim: claim, Err: err}
}

// ErrAlreadyUsed is returned by a ReplayStore when the key was consumed before.
var ErrAlreadyUsed = errors.New("broker: already used")

// ErrStoreFull is returned by a ReplayStore that has reached its capacity. The
// store refuses new entries rather than forgetting live ones.
var ErrStoreFull = errors.New("broker: replay store full")
