package main

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/handoffbroker/handoff/shared"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"golang.org/x/crypto/bcrypt"
)

const (
	sessionCookie = "s1_session"
	sessionTTL    = 8 * time.Hour
	csrfCookie    = "_csrf"
	csrfField     = "_csrf"
)

// sessionStore keeps sign-ins in memory: a random id, given to the browser
// in a cookie, maps to a username until it expires or the user signs out.
type sessionStore struct {
	now  func() time.Time
	rand io.Reader

	mu sync.Mutex
	// byHash is keyed by the SHA-256 of the id, so that map lookups take
	// no time that depends on how much of a guessed id is right.
	byHash map[[sha256.Size]byte]session
}

type session struct {
	username string
	expires  time.Time
}

func newSessionStore(now func() time.Time, rand io.Reader) *sessionStore {
	return &sessionStore{now: now, rand: rand, byHash: make(map[[sha256.Size]byte]session)}
}

// create starts a session with a fresh id. A new id at every sign-in stops
// session fixation: an id planted before sign-in never becomes signed in.
func (s *sessionStore) create(username string) (id string, expires time.Time, err error) {
	var b [32]byte
	if _, err := io.ReadFull(s.rand, b[:]); err != nil {
		return "", time.Time{}, fmt.Errorf("session id: %w", err)
	}
	id = base64.RawURLEncoding.EncodeToString(b[:])
	now := s.now()
	expires = now.Add(sessionTTL)
	s.mu.Lock()
	defer s.mu.Unlock()
	for h, sess := range s.byHash {
		if !now.Before(sess.expires) {
			delete(s.byHash, h)
		}
	}
	s.byHash[sha256.Sum256([]byte(id))] = session{username: username, expires: expires}
	return id, expires, nil
}

func (s *sessionStore) lookup(id string) (string, bool) {
	h := sha256.Sum256([]byte(id))
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.byHash[h]
	if !ok {
		return "", false
	}
	if !s.now().Before(sess.expires) {
		delete(s.byHash, h)
		return "", false
	}
	return sess.username, true
}

func (s *sessionStore) delete(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byHash, sha256.Sum256([]byte(id)))
}

// deleteUser ends every session of username and returns how many there
// were.
func (s *sessionStore) deleteUser(username string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for h, sess := range s.byHash {
		if sess.username == username {
			delete(s.byHash, h)
			n++
		}
	}
	return n
}

// currentUser returns the signed-in user of the request.
func (a *app) currentUser(c echo.Context) (user, bool) {
	ck, err := c.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return user{}, false
	}
	name, ok := a.sessions.lookup(ck.Value)
	if !ok {
		return user{}, false
	}
	u, ok := a.users[name]
	return u, ok
}

func (a *app) setSessionCookie(c echo.Context, value string, expires time.Time) {
	ck := &http.Cookie{
		Name:     sessionCookie,
		Value:    value,
		Path:     "/",
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
		Secure:   a.secureCookies,
	}
	if value == "" {
		ck.MaxAge = -1
	} else {
		ck.Expires = expires
	}
	c.SetCookie(ck)
}

// csrfToken returns the token the CSRF middleware expects back in forms.
func csrfToken(c echo.Context) string {
	s, _ := c.Get(middleware.DefaultCSRFConfig.ContextKey).(string)
	return s
}

type loginPage struct {
	CSRF     string
	Username string
	Message  string
}

func (a *app) handleLoginForm(c echo.Context) error {
	if _, ok := a.currentUser(c); ok {
		return c.Redirect(http.StatusSeeOther, "/")
	}
	return c.Render(http.StatusOK, "login.html", loginPage{CSRF: csrfToken(c)})
}

var (
	errTooManyAttempts = shared.NewError(http.StatusTooManyRequests, "too_many_attempts",
		"Too many sign-in attempts.", "Wait a minute, then try again.")
	errUsernameInvalid = shared.NewError(http.StatusBadRequest, "invalid_username",
		"That is not a username.", fmt.Sprintf("Usernames are at most %d bytes long.", maxUsernameLen))
	errSignInBusy = shared.NewError(http.StatusServiceUnavailable, "sign_in_busy",
		"Too many sign-ins are in progress.", "Try again in a moment.")
)

func (a *app) handleLogin(c echo.Context) error {
	username, password := c.FormValue("username"), c.FormValue("password")
	switch err := a.logins.allow(clientKey(c.RealIP()), username, time.Now()); {
	case errors.Is(err, errUsernameTooLong):
		return errUsernameInvalid
	case err != nil:
		limit := "username"
		if errors.Is(err, errClientLimited) {
			limit = "client"
		}
		a.log.Warn("sign-in refused: too many attempts", "request_id", shared.RequestID(c), "limit", limit)
		c.Response().Header().Set("Retry-After", "60")
		return errTooManyAttempts
	}
	release, err := a.bcryptGate.acquire(c.Request().Context())
	if err != nil {
		a.log.Warn("sign-in refused: bcrypt queue full", "request_id", shared.RequestID(c), "error", err.Error())
		c.Response().Header().Set("Retry-After", "1")
		return errSignInBusy
	}
	defer release()
	u, known := a.users[username]
	hash := []byte(u.PasswordHash)
	if !known {
		// Compare against a dummy hash anyway, so response time does not
		// tell an attacker which usernames exist (user enumeration).
		hash = a.dummyHash
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil || !known {
		attrs := []any{"request_id", shared.RequestID(c), "known_user", known}
		if known {
			attrs = append(attrs, "user", username)
		}
		a.log.Info("sign-in failed", attrs...)
		return c.Render(http.StatusUnauthorized, "login.html", loginPage{
			CSRF: csrfToken(c), Username: username, Message: "Wrong username or password.",
		})
	}
	if old, err := c.Cookie(sessionCookie); err == nil {
		a.sessions.delete(old.Value)
	}
	id, expires, err := a.sessions.create(u.Username)
	if err != nil {
		return err
	}
	a.setSessionCookie(c, id, expires)
	a.log.Info("signed in", "request_id", shared.RequestID(c), "user", u.Username)
	return c.Redirect(http.StatusSeeOther, "/")
}

func (a *app) handleLogout(c echo.Context) error {
	if ck, err := c.Cookie(sessionCookie); err == nil {
		if name, ok := a.sessions.lookup(ck.Value); ok {
			a.log.Info("signed out", "request_id", shared.RequestID(c), "user", name)
		}
		a.sessions.delete(ck.Value)
	}
	a.setSessionCookie(c, "", time.Time{})
	return c.Redirect(http.StatusSeeOther, "/login")
}
