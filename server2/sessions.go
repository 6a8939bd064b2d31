package main

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/handoffbroker/handoff/broker/token"
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

// errTooManySessions is returned by reserve when the store is full.
var errTooManySessions = errors.New("session store full")

// session is what a verified handoff leaves behind: SERVER2's own record of
// who may do which task, so the token itself is never stored or reused.
type session struct {
	Issuer  string
	Subject string
	Task    token.Task
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
func (s session) tokenRef() token.TokenRef {
	return token.TokenRef{Issuer: s.Issuer, Subject: s.Subject, ID: s.TokenID, KeyID: s.KeyID, IssuedAt: s.IssuedAt}
}

// sessionStore is an in-memory map from random session id to session. It
// holds at most max sessions, counting reserved slots, and at most
// perSubject sessions of one subject: a subject's new session replaces its
// oldest.
type sessionStore struct {
	ttl        time.Duration
	max        int
	perSubject int
	now        func() time.Time

	mu       sync.Mutex
	sessions map[string]*session
	// bySubject lists each subject's session ids, oldest first.
	bySubject map[string][]string
	// reserved counts slots handed out by reserve and not yet filled or
	// released.
	reserved int
}

func newSessionStore(ttl time.Duration, max, perSubject int, now func() time.Time) *sessionStore {
	return &sessionStore{
		ttl: ttl, max: max, perSubject: perSubject, now: now,
		sessions: make(map[string]*session), bySubject: make(map[string][]string),
	}
}

// slot is room for one session, held from before the token is verified
// until create fills it or release gives it back.
type slot struct {
	s    *sessionStore
	done bool
}

// reserve holds room for one session, or returns errTooManySessions. Call it
// before verifying the token: verification consumes the jti, so a handoff
// refused for lack of room must be refused before that, leaving the token
// usable for a retry. The caller must release the slot (a no-op once create
// filled it).
func (s *sessionStore) reserve() (*slot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.sessions)+s.reserved >= s.max {
		s.sweepLocked(s.now())
		if len(s.sessions)+s.reserved >= s.max {
			return nil, errTooManySessions
		}
	}
	s.reserved++
	return &slot{s: s}, nil
}

// release gives an unfilled slot back.
func (sl *slot) release() {
	sl.s.mu.Lock()
	defer sl.s.mu.Unlock()
	sl.releaseLocked()
}

func (sl *slot) releaseLocked() {
	if !sl.done {
		sl.done = true
		sl.s.reserved--
	}
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

// create stores a session for verified claims under a fresh id, in the
// room sl reserved. replaced, when not empty, is the id the browser held
// before: it is dropped, so a handoff always starts a new session (session
// fixation). When the subject already has perSubject sessions, its oldest
// is dropped too.
func (s *sessionStore) create(sl *slot, c token.Claims, replaced string) (string, *session) {
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
	if sl.done {
		panic("server2: session slot used twice")
	}
	sl.releaseLocked()
	s.removeLocked(replaced)
	for len(s.bySubject[sess.Subject]) >= s.perSubject {
		s.removeLocked(s.bySubject[sess.Subject][0])
	}
	s.sessions[id] = sess
	s.bySubject[sess.Subject] = append(s.bySubject[sess.Subject], id)
	return id, sess
}

// removeLocked drops the session with id, if any.
func (s *sessionStore) removeLocked(id string) {
	sess, ok := s.sessions[id]
	if !ok {
		return
	}
	delete(s.sessions, id)
	ids := slices.DeleteFunc(s.bySubject[sess.Subject], func(other string) bool { return other == id })
	if len(ids) == 0 {
		delete(s.bySubject, sess.Subject)
		return
	}
	s.bySubject[sess.Subject] = ids
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
		s.removeLocked(id)
		return session{}, false
	}
	return *sess, true
}

// delete ends the session with id.
func (s *sessionStore) delete(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.removeLocked(id)
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
			s.removeLocked(id)
		}
	}
}

// csrfMatches compares in constant time, so response timing does not leak
// the expected token byte by byte.
func csrfMatches(want, got string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(want), []byte(got)) == 1
}
