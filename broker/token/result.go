package token

import (
	"errors"
	"fmt"
	"time"
)

// ResultTokenType is the "typ" of a result token: the relying service's
// signed answer to a handoff, carried by the browser back to the issuer
// (docs/PROTOCOL.md, "The outcome back on SERVER1"). It differs from
// HandoffTokenType so that neither can pass as the other (RFC 8725 §3.12,
// distinct validation profiles): a handoff token is never accepted as a
// result, and a result never opens a session.
const ResultTokenType = "handoff-result+jwt"

// Outcome is what became of a handed-off task, the "outcome" claim of a
// result token.
type Outcome string

// The outcomes a result token may carry.
const (
	// OutcomeApproved: the user completed the task at the relying service.
	OutcomeApproved Outcome = "approved"
	// OutcomeCancelled: the user gave the task up; it is still pending.
	OutcomeCancelled Outcome = "cancelled"
)

// Valid reports whether o is one of the defined outcomes.
func (o Outcome) Valid() bool { return o == OutcomeApproved || o == OutcomeCancelled }

// ResultRequest says what a result token reports.
type ResultRequest struct {
	// Subject is the user the handoff was for ("sub"). Required.
	Subject string
	// Audience is the issuer the handoff came from, the only service that
	// may accept the result ("aud"). Required.
	Audience string
	// Task is the handed-off task, as its handoff token carried it. Its
	// Params are not signed again: the result carries the id, the action
	// and the parameters' digest, which the issuer compares with its own
	// records. ID and Action required.
	Task Task
	// Outcome is what became of the task. Required.
	Outcome Outcome
	// TTL is the lifetime; zero means the minter's default. Above the
	// minter's MaxTTL the request is refused.
	TTL time.Duration
}

// MintResult signs a result token ("typ" ResultTokenType) for req with the
// keyring's current key. It is single-use ("jti"), short-lived and aimed at
// one audience like a handoff token, and carries the "outcome" claim.
func (m *Minter) MintResult(req ResultRequest) (Minted, error) {
	ttl, err := m.lifetime(req.TTL)
	if err != nil {
		return Minted{}, err
	}
	task := Task{ID: req.Task.ID, Action: req.Task.Action, ParamsDigest: req.Task.ParamsDigest}
	if len(req.Task.Params) > 0 && task.ParamsDigest == "" {
		task.ParamsDigest = DigestParams(req.Task.Params)
	}
	err = validateRequest(MintRequest{Subject: req.Subject, Audience: req.Audience, Task: task}, ttl)
	if !req.Outcome.Valid() {
		err = errors.Join(err, fmt.Errorf("outcome %q is not %q or %q", req.Outcome, OutcomeApproved, OutcomeCancelled))
	}
	if err != nil {
		return Minted{}, fmt.Errorf("broker: mint result: %w", err)
	}
	return m.signNew(ResultTokenType, ttl, wireClaims{
		Subject:  req.Subject,
		Audience: req.Audience,
		Task:     task,
		Outcome:  req.Outcome,
	})
}

// NewResultVerifier returns a Verifier of result tokens: the pipeline,
// claim checks and single use of a handoff Verifier, under the "typ"
// ResultTokenType, with the "outcome" claim required and one of the
// defined outcomes. It refuses handoff tokens (bad_type), and a handoff
// Verifier refuses result tokens. Verify's Claims carry the Outcome.
func NewResultVerifier(cfg VerifierConfig) (*Verifier, error) {
	return newVerifier(cfg, ResultTokenType)
}

// checkOutcome validates a result token's "outcome".
func checkOutcome(raw *string) (Outcome, error) {
	if raw == nil {
		return "", reject(ReasonMissingClaim, "outcome", "required claim is absent")
	}
	o := Outcome(*raw)
	if !o.Valid() {
		return "", reject(ReasonInvalidClaim, "outcome", "outcome must be %q or %q", OutcomeApproved, OutcomeCancelled)
	}
	return o, nil
}
