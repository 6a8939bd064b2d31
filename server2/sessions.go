package main

import (
	"crypto/subtle"
	"fmt"
	"io"
	"time"

	"github.com/handoffbroker/handoff/broker/token"
	"github.com/handoffbroker/handoff/shared"
)

// SessionCookie names SERVER2's own session cookie.
const SessionCookie = "s2_session"

// Default session bounds (Config.MaxSessions, Config.MaxSessionsPerSubject).
// Each session needs a verified, consumed token, so only the issuer's users
// can fill the store; the per-subject bound stops one of them from filling
// it for everyone, and the total keeps a misbehaving issuer from exhausting
// memory.
const (
	DefaultMaxSessions           = 100_000
	DefaultMaxSessionsPerSubject = 10
)

// session is what a verified handoff leaves behind, the data of SERVER2's
// entry in its shared.Sessions store (owner: the subject): SERVER2's own
// record of who may do which task, so the token itself is never stored or
// reused.
type session struct {
	Issuer  string
	Subject string
	Task    token.Task
	// TokenID and KeyID are the jti and signing key of the token that
	// opened the session: revoking either ends it.
	TokenID  string
	KeyID    string
	IssuedAt time.Time
	// CSRF is the synchronizer token the complete form must echo.
	CSRF string
	// Revoked is set when a revocation list named the session's token:
	// the claim it named ("jti", "kid" or "sub"). The session then ends at
	// its next request, even once the entry has left the list.
	Revoked string
}

// tokenRef describes the token that opened the session, for the
// revocation check every request on the session makes.
func (s session) tokenRef() token.TokenRef {
	return token.TokenRef{Issuer: s.Issuer, Subject: s.Subject, ID: s.TokenID, KeyID: s.KeyID, IssuedAt: s.IssuedAt}
}

// newSession is the session data for verified claims, with a fresh CSRF
// token read from rand.
func newSession(c token.Claims, rand io.Reader) (session, error) {
	csrf, err := shared.RandomID(rand)
	if err != nil {
		return session{}, fmt.Errorf("csrf token: %w", err)
	}
	return session{
		Issuer:   c.Issuer,
		Subject:  c.Subject,
		Task:     c.Task,
		TokenID:  c.ID,
		KeyID:    c.KeyID,
		IssuedAt: c.IssuedAt,
		CSRF:     csrf,
	}, nil
}

// csrfMatches compares in constant time, so response timing does not leak
// the expected token byte by byte.
func csrfMatches(want, got string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(want), []byte(got)) == 1
}
