package main

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/handoffbroker/handoff/broker/token"
	"github.com/handoffbroker/handoff/shared"
	"github.com/labstack/echo/v4"
)

// maxMintedRecords bounds the tokens an instance remembers for
// cancellation. Every token minted is recorded (a user can cancel each of
// their own handoffs), so a full record refuses the mint instead: 503
// unavailable. Per user the record holds Config.liveTokensPerUser, as many
// as the handoff limits let one user hold unexpired, so one user cannot
// fill it for everyone and the per-user bound never refuses a handoff the
// rate allowed.
const maxMintedRecords = 100_000

// maxJTILen is the longest jti a revocation list carries.
const maxJTILen = 128

// errMintedFull is returned by reserve when maxMintedRecords are held.
var errMintedFull = errors.New("minted-token record full")

// tooManyOutstanding is returned by reserve when the subject holds as many
// live tokens as the record keeps per user; RetryAfter is when the oldest
// expires.
type tooManyOutstanding struct{ RetryAfter time.Duration }

func (e *tooManyOutstanding) Error() string { return "the user's live-token records are full" }

// mintedTokens remembers which user each live token of this instance was
// minted for, and when it expires: at most maxTotal records, at most
// perUser of one subject, holds for tokens being minted included.
type mintedTokens struct {
	now      func() time.Time
	maxTotal int
	perUser  int

	mu     sync.Mutex
	byJTI  map[string]mintedToken
	byUser map[string]*userTokens
	// held counts holds handed out by reserve and not yet filled or
	// released.
	held int
}

type mintedToken struct {
	subject   string
	expiresAt time.Time
}

// userTokens is one subject's records and holds.
type userTokens struct {
	jtis []string
	held int
}

func newMintedTokens(now func() time.Time, maxTotal, perUser int) *mintedTokens {
	return &mintedTokens{
		now: now, maxTotal: maxTotal, perUser: perUser,
		byJTI: make(map[string]mintedToken), byUser: make(map[string]*userTokens),
	}
}

// mintHold is room for the record of one token about to be minted.
type mintHold struct {
	m       *mintedTokens
	subject string
	done    bool
}

// reserve holds room for one record of subject, before the token is
// signed, so that no token is minted that its owner could not cancel. It
// fails with *tooManyOutstanding or errMintedFull. The caller must fill or
// release the hold.
func (m *mintedTokens) reserve(subject string) (*mintHold, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	u := m.byUser[subject]
	if u != nil && len(u.jtis)+u.held >= m.perUser {
		m.sweepUserLocked(subject, now)
		if len(u.jtis)+u.held >= m.perUser {
			return nil, &tooManyOutstanding{RetryAfter: m.oldestLocked(u).Sub(now)}
		}
	}
	if len(m.byJTI)+m.held >= m.maxTotal {
		m.sweepLocked()
		if len(m.byJTI)+m.held >= m.maxTotal {
			return nil, errMintedFull
		}
	}
	if u = m.byUser[subject]; u == nil {
		u = &userTokens{}
		m.byUser[subject] = u
	}
	u.held++
	m.held++
	return &mintHold{m: m, subject: subject}, nil
}

// fill records the minted token in the held room.
func (h *mintHold) fill(jti string, exp time.Time) {
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	if h.done {
		panic("server1: minted-token hold used twice")
	}
	h.releaseLocked()
	h.m.byJTI[jti] = mintedToken{subject: h.subject, expiresAt: exp}
	u := h.m.byUser[h.subject]
	if u == nil {
		u = &userTokens{}
		h.m.byUser[h.subject] = u
	}
	u.jtis = append(u.jtis, jti)
}

// release gives an unfilled hold back; it is a no-op after fill.
func (h *mintHold) release() {
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	if h.done {
		return
	}
	h.releaseLocked()
	if u := h.m.byUser[h.subject]; u != nil && u.held == 0 && len(u.jtis) == 0 {
		delete(h.m.byUser, h.subject)
	}
}

func (h *mintHold) releaseLocked() {
	h.done = true
	h.m.held--
	if u := h.m.byUser[h.subject]; u != nil {
		u.held--
	}
}

func (m *mintedTokens) lookup(jti string) (mintedToken, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.byJTI[jti]
	return t, ok
}

func (m *mintedTokens) sweep() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweepLocked()
}

func (m *mintedTokens) sweepLocked() {
	now := m.now()
	for subject := range m.byUser {
		m.sweepUserLocked(subject, now)
	}
}

// sweepUserLocked drops the subject's expired records, and the subject once
// it has neither records nor holds.
func (m *mintedTokens) sweepUserLocked(subject string, now time.Time) {
	u := m.byUser[subject]
	u.jtis = slices.DeleteFunc(u.jtis, func(jti string) bool {
		if now.Before(m.byJTI[jti].expiresAt) {
			return false
		}
		delete(m.byJTI, jti)
		return true
	})
	if len(u.jtis) == 0 && u.held == 0 {
		delete(m.byUser, subject)
	}
}

// oldestLocked is the earliest expiry among u's records.
func (m *mintedTokens) oldestLocked(u *userTokens) time.Time {
	var first time.Time
	for _, jti := range u.jtis {
		if exp := m.byJTI[jti].expiresAt; first.IsZero() || exp.Before(first) {
			first = exp
		}
	}
	return first
}

// handleRevocations serves the signed revocation list. Relying services
// poll it with If-None-Match; an unchanged list costs a 304.
func (a *app) handleRevocations(c echo.Context) error {
	tok, etag, err := a.revocationList.Current()
	if err != nil {
		return &shared.Error{
			Status: http.StatusServiceUnavailable, Code: string(token.ReasonUnavailable),
			Title: "The revocation list is not available right now.", Detail: "Try again in a moment.",
			Internal: err,
		}
	}
	h := c.Response().Header()
	h.Set("ETag", etag)
	h.Set("Cache-Control", "no-cache")
	if c.Request().Header.Get("If-None-Match") == etag {
		return c.NoContent(http.StatusNotModified)
	}
	return c.Blob(http.StatusOK, token.RevocationListMediaType, []byte(tok))
}

func (a *app) checkRevocationList(context.Context) error {
	_, _, err := a.revocationList.Current()
	return err
}

var errRevocationFailed = &shared.Error{
	Status: http.StatusServiceUnavailable, Code: "revocation_failed",
	Title: "The revocation could not be recorded.", Detail: "Nothing was revoked. Try again in a moment.",
}

// handleLogoutEverywhere ends every session of the signed-in user: it
// revokes the user's tokens issued until now at every relying service
// (which also end the sessions they opened from them) and drops the user's
// sessions here. A stolen token or session cookie stops working too.
func (a *app) handleLogoutEverywhere(c echo.Context) error {
	u, ok := a.currentUser(c)
	if !ok {
		return c.Redirect(http.StatusSeeOther, "/login")
	}
	now := a.now()
	if err := a.revocations.RevokeSubject(u.Username, now, now.Add(a.cfg.subjectRevocationTTL())); err != nil {
		e := *errRevocationFailed
		e.Internal = err
		return &e
	}
	n := a.sessions.DeleteOwner(u.Username)
	a.setSessionCookie(c, "", time.Time{})
	a.log.Info("signed out everywhere", "request_id", shared.RequestID(c), "user", u.Username,
		"not_before", a.revocations.SubjectNotBefore(u.Username).UTC().Format(time.RFC3339), "sessions", n)
	return c.Redirect(http.StatusSeeOther, "/login")
}

type apiRevokeResponse struct {
	ID     string `json:"jti"`
	Status string `json:"status"`
}

// handleAPIRevoke cancels an outstanding handoff token by its jti. A
// session may cancel only tokens this instance minted for its user (so a
// user cannot cancel someone else's handoff); an API-key caller may cancel
// any, for tokens it obtained or an operator's tooling.
func (a *app) handleAPIRevoke(c echo.Context) error {
	jti := c.Param("jti")
	if jti == "" || len(jti) > maxJTILen {
		return shared.NewError(http.StatusBadRequest, "invalid_request",
			"That is not a token id.", "Use the jti returned when the handoff was created.")
	}
	rec, known := a.minted.lookup(jti)
	if hasAPIKey(c) {
		if !a.apiKeyValid(c.Request().Header.Get(apiKeyHeader)) {
			return shared.NewError(http.StatusUnauthorized, "invalid_api_key",
				"The API key is not valid.", "Check the X-API-Key header.")
		}
	} else {
		u, ok := a.currentUser(c)
		if !ok {
			return shared.NewError(http.StatusUnauthorized, "unauthenticated",
				"Authentication is required.", "Send an X-API-Key header, or a session cookie with an X-CSRF-Token header.")
		}
		if !known || rec.subject != u.Username {
			return shared.NewError(http.StatusNotFound, "unknown_token",
				"No outstanding handoff of yours has this id.", "It may have expired already, or been issued by another instance.")
		}
	}
	exp := rec.expiresAt
	if !known {
		// Unknown here: it may come from another instance. Keep the entry
		// for as long as any token can live.
		exp = a.now().Add(a.cfg.MaxTokenTTL)
	}
	if err := a.revocations.RevokeToken(jti, exp); err != nil {
		e := *errRevocationFailed
		e.Internal = err
		return &e
	}
	a.log.Info("token revoked", "request_id", shared.RequestID(c), "jti", jti, "known", known, "sub", rec.subject)
	body, err := marshalJSON(apiRevokeResponse{ID: jti, Status: "revoked"})
	if err != nil {
		return err
	}
	return c.JSONBlob(http.StatusOK, body)
}
