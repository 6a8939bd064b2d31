package main

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
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
	// csrfMaxAge is how long a CSRF cookie lives (echo's default).
	csrfMaxAge = 24 * time.Hour
)

// Session bounds. A session needs a password, so only users fill the
// store; the per-user bound stops one of them (or a stolen password) from
// filling it for everyone, and a new sign-in replaces that user's oldest.
const (
	maxSessions        = 100_000
	maxSessionsPerUser = 10
)

// newSessionStore returns SERVER1's session store: each session's owner is
// the signed-in username, and it holds no other data.
func newSessionStore(now func() time.Time, rand io.Reader) (*shared.Sessions[struct{}], error) {
	return shared.NewSessions[struct{}](shared.SessionsConfig{
		TTL: sessionTTL, MaxSessions: maxSessions, MaxPerOwner: maxSessionsPerUser, Now: now, Rand: rand,
	})
}

// currentUser returns the signed-in user of the request.
func (a *app) currentUser(c echo.Context) (user, bool) {
	ck, err := c.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return user{}, false
	}
	sess, ok := a.sessions.Get(ck.Value)
	if !ok {
		return user{}, false
	}
	u, ok := a.users[sess.Owner]
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

// renewCSRF replaces the CSRF cookie with a fresh random token, in place of
// the one the CSRF middleware set on this response. It runs at sign-in: a
// token that was planted (a sibling subdomain can set cookies for ours) or
// seen before the sign-in is worthless afterwards (login CSRF, fixation).
func (a *app) renewCSRF(c echo.Context) error {
	var b [32]byte
	if _, err := io.ReadFull(a.rand, b[:]); err != nil {
		return fmt.Errorf("csrf token: %w", err)
	}
	h := c.Response().Header()
	kept := slices.DeleteFunc(h.Values("Set-Cookie"), func(v string) bool {
		ck, err := http.ParseSetCookie(v)
		return err == nil && ck.Name == csrfCookie
	})
	h.Del("Set-Cookie")
	for _, v := range kept {
		h.Add("Set-Cookie", v)
	}
	c.SetCookie(&http.Cookie{
		Name:     csrfCookie,
		Value:    base64.RawURLEncoding.EncodeToString(b[:]),
		Path:     "/",
		Expires:  a.now().Add(csrfMaxAge),
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
		Secure:   a.secureCookies,
	})
	return nil
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
	errTooManySessions = shared.NewError(http.StatusServiceUnavailable, "too_many_sessions",
		"The portal cannot sign you in right now.", "Try again in a moment.")
)

func (a *app) handleLogin(c echo.Context) error {
	username, password := c.FormValue("username"), c.FormValue("password")
	client, now := clientKey(c.RealIP()), a.now()
	release, err := a.bcryptGate.acquire(c.Request().Context(), func() error {
		return a.logins.allow(client, username, now)
	})
	switch {
	case errors.Is(err, errUsernameTooLong):
		return errUsernameInvalid
	case errors.Is(err, errClientLimited), errors.Is(err, errUsernameLimited):
		limit := "username"
		if errors.Is(err, errClientLimited) {
			limit = "client"
		}
		a.log.Warn("sign-in refused: too many attempts", "request_id", shared.RequestID(c), "limit", limit)
		c.Response().Header().Set("Retry-After", "60")
		return errTooManyAttempts
	case err != nil:
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
	room, err := a.sessions.Reserve()
	if err != nil {
		a.log.Warn("sign-in refused: session store full", "request_id", shared.RequestID(c))
		c.Response().Header().Set("Retry-After", "5")
		return errTooManySessions
	}
	defer room.Release()
	var previous string
	if old, err := c.Cookie(sessionCookie); err == nil {
		previous = old.Value
	}
	id, sess, err := room.Create(u.Username, struct{}{}, previous)
	if err != nil {
		return err
	}
	a.setSessionCookie(c, id, sess.ExpiresAt)
	if err := a.renewCSRF(c); err != nil {
		return err
	}
	a.log.Info("signed in", "request_id", shared.RequestID(c), "user", u.Username)
	return c.Redirect(http.StatusSeeOther, "/")
}

func (a *app) handleLogout(c echo.Context) error {
	if ck, err := c.Cookie(sessionCookie); err == nil {
		if sess, ok := a.sessions.Get(ck.Value); ok {
			a.log.Info("signed out", "request_id", shared.RequestID(c), "user", sess.Owner)
		}
		a.sessions.Delete(ck.Value)
	}
	a.setSessionCookie(c, "", time.Time{})
	return c.Redirect(http.StatusSeeOther, "/login")
}
