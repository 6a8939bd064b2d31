package shared

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"
)

// ErrSessionsFull is returned by Sessions.Reserve when the store holds
// SessionsConfig.MaxSessions sessions and reservations.
var ErrSessionsFull = errors.New("shared: session store full")

// ErrReservationUsed is returned by Reservation.Create when the
// reservation was already filled or released.
var ErrReservationUsed = errors.New("shared: session reservation already used or released")

// SessionsConfig configures NewSessions.
type SessionsConfig struct {
	// TTL is how long a session lasts from its creation. Required.
	TTL time.Duration
	// MaxSessions bounds the sessions held, all owners together, counting
	// reservations not yet filled or released. Required.
	MaxSessions int
	// MaxPerOwner bounds the sessions of one owner: a new session replaces
	// the owner's oldest, so one owner cannot fill the store for everyone.
	// Required; at most MaxSessions.
	MaxPerOwner int
	// Now returns the current time. Default time.Now.
	Now func() time.Time
	// Rand is the source of session ids. Default crypto/rand.Reader.
	Rand io.Reader
}

func (c SessionsConfig) validate() error {
	var errs []error
	if c.TTL <= 0 {
		errs = append(errs, errors.New("shared: session TTL must be positive"))
	}
	if c.MaxSessions <= 0 {
		errs = append(errs, errors.New("shared: MaxSessions must be positive"))
	}
	if c.MaxPerOwner <= 0 || c.MaxPerOwner > c.MaxSessions {
		errs = append(errs, fmt.Errorf("shared: MaxPerOwner %d must be between 1 and MaxSessions %d", c.MaxPerOwner, c.MaxSessions))
	}
	return errors.Join(errs...)
}

// Session is a copy of one live session: who owns it, when it ends, and
// the server's own data T.
type Session[T any] struct {
	// Owner is the user the session belongs to, the key of the per-owner
	// bound.
	Owner     string
	CreatedAt time.Time
	ExpiresAt time.Time
	Data      T
}

// sessionKey is the SHA-256 of a session id. The store keeps only this:
// map lookups then take no time that depends on how much of a guessed id is
// right, and a copy of the store's memory yields no usable id.
type sessionKey [sha256.Size]byte

func keyOf(id string) sessionKey { return sha256.Sum256([]byte(id)) }

// Sessions is an in-memory session store for one server: ids are 256
// random bits from SessionsConfig.Rand, given to the browser and stored
// only by their SHA-256 hash; sessions expire SessionsConfig.TTL after
// creation; the store holds at most MaxSessions of them and at most
// MaxPerOwner of one owner. It is safe for concurrent use.
//
// A caller whose session follows an irreversible step (SERVER2 consumes
// the token first) takes a Reservation before that step, so that lack of
// room is found out while nothing has happened yet.
type Sessions[T any] struct {
	cfg SessionsConfig

	mu       sync.Mutex
	sessions map[sessionKey]*Session[T]
	// byOwner lists each owner's session keys, oldest first.
	byOwner map[string][]sessionKey
	// reserved counts reservations not yet filled or released.
	reserved int
}

// NewSessions returns an empty store, or every problem with cfg.
func NewSessions[T any](cfg SessionsConfig) (*Sessions[T], error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	return &Sessions[T]{cfg: cfg, sessions: make(map[sessionKey]*Session[T]), byOwner: make(map[string][]sessionKey)}, nil
}

// Reservation is room for one session, held until Create fills it or
// Release gives it back.
type Reservation[T any] struct {
	s    *Sessions[T]
	done bool
}

// Reserve holds room for one session, or returns ErrSessionsFull when the
// store is full even after dropping expired sessions. The caller must
// Release the reservation (a no-op once Create filled it), typically with
// defer.
func (s *Sessions[T]) Reserve() (*Reservation[T], error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.sessions)+s.reserved >= s.cfg.MaxSessions {
		s.sweepLocked(s.cfg.Now())
		if len(s.sessions)+s.reserved >= s.cfg.MaxSessions {
			return nil, ErrSessionsFull
		}
	}
	s.reserved++
	return &Reservation[T]{s: s}, nil
}

// Release gives an unfilled reservation back.
func (r *Reservation[T]) Release() {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	r.releaseLocked()
}

func (r *Reservation[T]) releaseLocked() {
	if !r.done {
		r.done = true
		r.s.reserved--
	}
}

// Create fills the reservation with a new session of owner holding data,
// under a fresh id. replaced, when not empty, is the id the browser held
// before: that session ends, so an id planted in the browser before
// sign-in never becomes signed in (session fixation). When owner already
// has MaxPerOwner sessions, its oldest ends too.
func (r *Reservation[T]) Create(owner string, data T, replaced string) (string, Session[T], error) {
	s := r.s
	id, err := RandomID(s.cfg.Rand)
	if err != nil {
		return "", Session[T]{}, fmt.Errorf("session id: %w", err)
	}
	now := s.cfg.Now()
	sess := &Session[T]{Owner: owner, CreatedAt: now, ExpiresAt: now.Add(s.cfg.TTL), Data: data}
	key := keyOf(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.done {
		return "", Session[T]{}, ErrReservationUsed
	}
	r.releaseLocked()
	if replaced != "" {
		s.removeLocked(keyOf(replaced))
	}
	for len(s.byOwner[owner]) >= s.cfg.MaxPerOwner {
		s.removeLocked(s.byOwner[owner][0])
	}
	s.sessions[key] = sess
	s.byOwner[owner] = append(s.byOwner[owner], key)
	return id, *sess, nil
}

// Get returns a copy of the live session with id.
func (s *Sessions[T]) Get(id string) (Session[T], bool) {
	if id == "" {
		return Session[T]{}, false
	}
	key := keyOf(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.sessions[key]
	if !ok {
		return Session[T]{}, false
	}
	if !s.cfg.Now().Before(sess.ExpiresAt) {
		s.removeLocked(key)
		return Session[T]{}, false
	}
	return *sess, true
}

// Update calls f with the data of every live session, under the store's
// lock (f must not call the store), and returns how many calls reported
// a change.
func (s *Sessions[T]) Update(f func(data *T) (changed bool)) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	n := 0
	for _, sess := range s.sessions {
		if now.Before(sess.ExpiresAt) && f(&sess.Data) {
			n++
		}
	}
	return n
}

// Delete ends the session with id, if any.
func (s *Sessions[T]) Delete(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.removeLocked(keyOf(id))
}

// DeleteOwner ends every session of owner and returns how many there
// were.
func (s *Sessions[T]) DeleteOwner(owner string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := slices.Clone(s.byOwner[owner])
	for _, key := range keys {
		s.removeLocked(key)
	}
	return len(keys)
}

// Sweep drops expired sessions. Reserve also sweeps when the store is
// full; call Sweep periodically to return their memory sooner.
func (s *Sessions[T]) Sweep() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepLocked(s.cfg.Now())
}

func (s *Sessions[T]) sweepLocked(now time.Time) {
	for key, sess := range s.sessions {
		if !now.Before(sess.ExpiresAt) {
			s.removeLocked(key)
		}
	}
}

func (s *Sessions[T]) removeLocked(key sessionKey) {
	sess, ok := s.sessions[key]
	if !ok {
		return
	}
	delete(s.sessions, key)
	keys := slices.DeleteFunc(s.byOwner[sess.Owner], func(other sessionKey) bool { return other == key })
	if len(keys) == 0 {
		delete(s.byOwner, sess.Owner)
		return
	}
	s.byOwner[sess.Owner] = keys
}

// RandomID returns 256 bits read from r, base64url without padding:
// unguessable, so an id or secret made from it cannot be brute-forced.
func RandomID(r io.Reader) (string, error) {
	var b [32]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", err
	}
	var out [43]byte // base64.RawURLEncoding.EncodedLen(32)
	base64.RawURLEncoding.Encode(out[:], b[:])
	return string(out[:]), nil
}
