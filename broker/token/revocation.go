package token

import (
	"context"
	"time"
)

// TokenRef identifies a verified token to a RevocationChecker.
type TokenRef struct {
	Issuer    string
	Subject   string
	ID        string
	KeyID     string
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// RevocationChecker says whether a token was withdrawn before it expired.
//
// CheckRevoked returns nil when the token stands, a *Error with
// ReasonRevoked when it was withdrawn (its jti, or its subject since a
// not-before time), and any other error when it cannot tell; the verifier
// then fails closed with ReasonUnavailable.
type RevocationChecker interface {
	CheckRevoked(ctx context.Context, t TokenRef) error
}
