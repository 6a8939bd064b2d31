package main

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"sync"
	"time"

	"github.com/handoffbroker/handoff/broker"
)

// SessionCookie names SERVER2's own session cookie.
const SessionCookie = "s2_session"

// maxSessions bounds the sessions held. Each needs a verified, consumed
// token, so only the issuer can fill it, but a bound keeps a misbehaving
// issuer from exhausting memory.
const maxSessions = 100_000

// errTooManySessions is returned by create when the store is full.
var errTooManySessions = errors.New("session store full")

// session is what a verified handoff leaves behind: SERVER2's own record of
// who may do which task, so the token itself is never stored or reused.
type session struct {
	Issuer  string
	Subject string
	Task    broker.Task
	// TokenID and KeyID are the jti and signing key of the token that
	// opened the session: revoking either ends it.
	TokenID   string
	KeyID     string
	IssuedAt  time.Time
	ExpiresAt time.Time
	// CSRF is the synchronizer token the complete form must echo.
	CSRF string
	// Revoked is set when a revocation list named the session's token:
	// the claim it named ("jti", "kid" or "sub"). The session then ends at
	// its next request, even once the entry has left the list.
	Revoked string
}

// tokenRef describes the token that opened the session, for the
// revocation check every request on the session makes.
func (s session) tokenRef() broker.TokenRef {
	return broker.TokenRef{Issuer: s.Issuer, Subject: s.Subject, ID: s.TokenID, KeyID: s.KeyID, IssuedAt: s.IssuedAt}
}

// sessionStore is an in-memory map from random session id to session.
type sessionStore struct {
	ttl time.Duration
	now func() time.Time

	mu       sync.Mutex
	sessions map[string]*session
}

func newSessionStore(ttl time.Duration, now func() time.Time) *sessionStore {
	return &sessionStore{ttl: ttl, now: now, sessions: make(map[string]*session)}
}

// randomID returns 256 random bits, base64url: unguessable, so a session
// id cannot be brute-forced.
func randomID() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// create stores a session for verified claims under a fresh id. replaced,
// when not empty, is the id the browser held before: it is dropped, so a
// handoff always starts a new session (session fixation).
func (s *sessionStore) create(c broker.Claims, replaced string) (string, *session, error) {
	now := s.now()
	sess := &session{
		Issuer:    c.Issuer,
		Subject:   c.Subject,
		Task:      c.Task,
		TokenID:   c.ID,
		KeyID:     c.KeyID,
		IssuedAt:  c.IssuedAt,
		ExpiresAt: now.Add(s.ttl),
		CSRF:      randomID(),
	}
	id := randomID()
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sessions, replaced)
	if len(s.sessions) >= maxSessions {
		s.sweepLocked(now)
		if len(s.sessions) >= maxSessions {
			return "", nil, errTooManySessions
		}
	}
	s.sessions[id] = sess
	return id, sess, nil
}

// get returns a copy of the live session with id.
func (s *sessionStore) get(id string) (session, bool) {
	if id == "" {
		return session{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.sessions[id]
	if !ok {
		return session{}, false
	}
	if !s.now().Before(sess.ExpiresAt) {
		delete(s.sessions, id)
		return session{}, false
	}
	return *sess, true
}

// delete ends the session with id.
func (s *sessionStore) delete(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sessions, id)
}

// markRevoked sets Revoked on every live session for which revoked
// returns a claim, and returns how many it marked.
func (s *sessionStore) markRevoked(revoked func(session) string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, sess := range s.sessions {
		if sess.Revoked != "" {
			continue
		}
		if claim := revoked(*sess); claim != "" {
			sess.Revoked = claim
			n++
		}
	}
	return n
}

// sweep drops expired sessions.
func (s *sessionStore) sweep() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepLocked(s.now())
}

func (s *sessionStore) sweepLocked(now time.Time) {
	for id, sess := range s.sessions {
		if !now.Before(sess.ExpiresAt) {
			delete(s.sessions, id)
		}
	}
}

// csrfMatches compares in constant time, so response timing does not leak
// the expected token byte by byte.
func csrfMatches(want, got string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(want), []byte(got)) == 1
}
