package main

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/handoffbroker/handoff/broker"
	"github.com/handoffbroker/handoff/shared"
	"github.com/labstack/echo/v4"
)

// maxMintedRecords bounds the tokens an instance remembers for
// cancellation. Past it, new tokens are not recorded: their owners cannot
// cancel them through a session (an operator still can, with the API key
// or `server1 revoke-token`).
const maxMintedRecords = 100_000

// maxJTILen is the longest jti a revocation list carries.
const maxJTILen = 128

// mintedTokens remembers which user each live token of this instance was
// minted for, and when it expires.
type mintedTokens struct {
	now func() time.Time

	mu    sync.Mutex
	byJTI map[string]mintedToken
}

type mintedToken struct {
	subject   string
	expiresAt time.Time
}

func newMintedTokens(now func() time.Time) *mintedTokens {
	return &mintedTokens{now: now, byJTI: make(map[string]mintedToken)}
}

func (m *mintedTokens) add(jti, subject string, exp time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.byJTI) >= maxMintedRecords {
		m.sweepLocked()
		if len(m.byJTI) >= maxMintedRecords {
			return
		}
	}
	m.byJTI[jti] = mintedToken{subject: subject, expiresAt: exp}
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
	for jti, t := range m.byJTI {
		if !now.Before(t.expiresAt) {
			delete(m.byJTI, jti)
		}
	}
}

// handleRevocations serves the signed revocation list. Relying services
// poll it with If-None-Match; an unchanged list costs a 304.
func (a *app) handleRevocations(c echo.Context) error {
	token, etag, err := a.revocationList.Current()
	if err != nil {
		return &shared.Error{
			Status: http.StatusServiceUnavailable, Code: string(broker.ReasonUnavailable),
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
	return c.Blob(http.StatusOK, broker.RevocationListMediaType, []byte(token))
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
	now := time.Now()
	if err := a.revocations.RevokeSubject(u.Username, now, now.Add(a.cfg.subjectRevocationTTL())); err != nil {
		e := *errRevocationFailed
		e.Internal = err
		return &e
	}
	n := a.sessions.deleteUser(u.Username)
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
		exp = time.Now().Add(a.cfg.MaxTokenTTL)
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
