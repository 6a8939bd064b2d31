package main

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/handoffbroker/handoff/broker/token"
	"github.com/handoffbroker/handoff/shared"
	"github.com/labstack/echo/v4"
)

// apiKeyHeader carries the service-to-service key.
const apiKeyHeader = "X-API-Key"

// apiActor is the "act" subject of tokens minted for an API-key caller: the
// token then says a service, not the user's browser, asked for it.
const apiActor = "api-client"

var (
	errNoSession = shared.NewError(http.StatusUnauthorized, "no_session",
		"You are not signed in.", "Sign in and start the task again.")
	errUnknownAudience = shared.NewError(http.StatusBadRequest, "unknown_audience",
		"That service is not one this portal hands tasks to.", "Start the task again from your task list.")
	errUnknownTask = shared.NewError(http.StatusBadRequest, "unknown_task",
		"That task does not exist or is not yours.", "Start the task again from your task list.")
)

// resolve finds the registry entry and the user's task a handoff request
// names. Both come from SERVER1's own records: the request only picks.
func (a *app) resolve(username, audienceID, taskID string) (audience, task, error) {
	aud, ok := a.registry.lookup(audienceID)
	if !ok {
		return audience{}, task{}, errUnknownAudience
	}
	t, ok := a.tasks.find(username, aud.ID, taskID)
	if !ok {
		return audience{}, task{}, errUnknownTask
	}
	if aud.ID == a.results.audience && a.results.outcomes.get(username, t.ID) == token.OutcomeApproved {
		return audience{}, task{}, errTaskApproved
	}
	return aud, t, nil
}

// errTooManyHandoffs refuses a mint over the user's budget (rate or live
// tokens); the caller sets Retry-After.
var errTooManyHandoffs = &shared.Error{Status: http.StatusTooManyRequests, Code: "too_many_handoffs", Retry: "/",
	Title: "You started too many tasks in a short time.", Detail: "No one-time pass was made. Wait a moment, then start the task again from your task list.",
	APIDetail: "The user's handoff budget is spent: no token was minted. Retry after the Retry-After seconds."}

// mint signs a token for the task and writes the audit log line. The log
// names the token by its jti; the token itself is never logged. It first
// spends one of the subject's handoffs and reserves the token's record, so
// a refused request signs nothing.
func (a *app) mint(c echo.Context, subject string, aud audience, t task, bindNonce string, actor *token.Actor, via string) (token.Minted, error) {
	now := a.now()
	if wait := a.handoffs.take(subject, now); wait > 0 {
		return token.Minted{}, a.tooManyHandoffs(c, subject, via, "rate", wait)
	}
	hold, err := a.minted.reserve(subject)
	var outstanding *tooManyOutstanding
	switch {
	case errors.As(err, &outstanding):
		return token.Minted{}, a.tooManyHandoffs(c, subject, via, "live_tokens", outstanding.RetryAfter)
	case err != nil:
		return token.Minted{}, &shared.Error{
			Status: http.StatusServiceUnavailable, Code: string(token.ReasonUnavailable),
			Title: "Your one-time pass could not be made right now.", Detail: "Nothing was sent. Try again in a moment.",
			Internal: err,
		}
	}
	defer hold.release()
	m, err := a.minter.Mint(token.MintRequest{Subject: subject, Audience: aud.ID, Task: t.Task, Actor: actor, Nonce: bindNonce})
	if err != nil {
		return token.Minted{}, &shared.Error{
			Status: http.StatusInternalServerError, Code: "mint_failed",
			Title: "Your one-time pass could not be made.", Detail: "Nothing was sent. Try again in a moment.",
			Internal: err,
		}
	}
	hold.fill(m.ID, m.ExpiresAt)
	a.metrics.TokensMinted.WithLabelValues(aud.ID).Inc()
	a.logMinted(c, m, subject, aud, t, bindNonce != "", actor, via)
	return m, nil
}

// logMinted writes the audit line of a minted token, with typed
// attributes (no boxing allocations). It names the token by its jti, never
// the token itself.
func (a *app) logMinted(c echo.Context, m token.Minted, subject string, aud audience, t task, bound bool, actor *token.Actor, via string) {
	ctx := c.Request().Context()
	if !a.log.Enabled(ctx, slog.LevelInfo) {
		return
	}
	attrs := make([]slog.Attr, 0, 10)
	attrs = append(attrs,
		slog.String("request_id", shared.RequestID(c)),
		slog.String("jti", m.ID),
		slog.String("sub", subject),
		slog.String("aud", aud.ID),
		slog.String("task_id", t.ID),
		slog.String("kid", m.KeyID),
		slog.String("exp", m.ExpiresAt.UTC().Format(time.RFC3339)),
		slog.String("via", via),
	)
	if actor != nil {
		attrs = append(attrs, slog.String("act", actor.Subject))
	}
	if bound {
		attrs = append(attrs, slog.Bool("bound", true))
	}
	a.log.LogAttrs(ctx, slog.LevelInfo, "token minted", attrs...)
}

// tooManyHandoffs logs the refusal and answers 429 with Retry-After in
// whole seconds, at least 1.
func (a *app) tooManyHandoffs(c echo.Context, subject, via, limit string, wait time.Duration) error {
	secs := max(1, int64(math.Ceil(wait.Seconds())))
	a.log.Warn("handoff refused: too many handoffs", "request_id", shared.RequestID(c),
		"sub", subject, "via", via, "limit", limit, "retry_after_s", secs)
	c.Response().Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	return errTooManyHandoffs
}

// handleHandoff mints a token for one of the signed-in user's tasks and
// answers with a page that posts it to the audience's handoff URL.
func (a *app) handleHandoff(c echo.Context) error {
	u, ok := a.currentUser(c)
	if !ok {
		return errNoSession
	}
	aud, t, err := a.resolve(u.Username, c.FormValue("audience"), c.FormValue("task_id"))
	if err != nil {
		return err
	}
	nonce, err := a.nonce()
	if err != nil {
		return err
	}
	m, err := a.mint(c, u.Username, aud, t, "", nil, "browser")
	if err != nil {
		return err
	}
	return a.renderAutosubmit(c, aud, m, nonce)
}

// errInvalidNonce refuses a bound handoff whose nonce is not a binding
// digest: 43 base64url characters (the unpadded SHA-256).
var errInvalidNonce = shared.NewError(http.StatusBadRequest, "invalid_request",
	"This address is not a valid way to start a task.", "Start the task again from your task list.")

// handleBoundHandoff is GET /handoffs/bound?audience=&task_id=&nonce=,
// where the relying service's start endpoint sends the browser after
// setting its binding secret. It mints a token bound to nonce for the
// signed-in user's own task and renders the auto-submit page posting it to
// the audience's registered handoff URL.
//
// It has no CSRF token: any page can send a browser here, and that gains
// nothing (forced mint). The token is for the signed-in user's own task,
// goes only to the registered URL, and is bound to a secret the relying
// service set in this browser: an attacker choosing the nonce holds a
// digest, not the secret, and never sees the token.
func (a *app) handleBoundHandoff(c echo.Context) error {
	u, ok := a.currentUser(c)
	if !ok {
		return errNoSession
	}
	q := c.QueryParams()
	aud, t, err := a.resolve(u.Username, q.Get("audience"), q.Get("task_id"))
	if err != nil {
		return err
	}
	bindNonce := q.Get("nonce")
	if !validBindingNonce(bindNonce) {
		return errInvalidNonce
	}
	cspNonce, err := a.nonce()
	if err != nil {
		return err
	}
	m, err := a.mint(c, u.Username, aud, t, bindNonce, nil, "browser_bound")
	if err != nil {
		return err
	}
	return a.renderAutosubmit(c, aud, m, cspNonce)
}

// validBindingNonce reports whether s is 43 base64url characters.
func validBindingNonce(s string) bool {
	if len(s) != 43 {
		return false
	}
	_, err := base64.RawURLEncoding.Strict().DecodeString(s)
	return err == nil
}

// renderAutosubmit answers with the page that posts m to aud's handoff URL.
func (a *app) renderAutosubmit(c echo.Context, aud audience, m token.Minted, nonce string) error {
	p, ok := a.pages[aud.ID]
	if !ok {
		return fmt.Errorf("no auto-submit page for audience %q", aud.ID)
	}
	return p.write(c, m.Token, nonce)
}

// nonce returns a fresh CSP nonce: 128 random bits.
func (a *app) nonce() (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(a.rand, b[:]); err != nil {
		return "", fmt.Errorf("csp nonce: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

type apiHandoffRequest struct {
	Audience string `json:"audience"`
	TaskID   string `json:"task_id"`
	// Subject is required with an API key and must match the session user
	// otherwise.
	Subject string `json:"subject,omitempty"`
}

type apiHandoffResponse struct {
	Token     string `json:"token"`
	TokenType string `json:"token_type"`
	ID        string `json:"jti"`
	ExpiresAt string `json:"expires_at"`
	TargetURL string `json:"target_url"`
}

func hasAPIKey(c echo.Context) bool {
	return len(c.Request().Header.Values(apiKeyHeader)) > 0
}

// apiKeyValid compares digests in constant time, so response timing does
// not reveal how much of a guessed key is right.
func (a *app) apiKeyValid(key string) bool {
	if a.cfg.APIKey == "" {
		return false
	}
	d := sha256.Sum256([]byte(key))
	return subtle.ConstantTimeCompare(d[:], a.apiKeyDigest[:]) == 1
}

// handleAPIHandoff mints a token for a caller authenticated by session (with
// the CSRF header) or by API key, and returns it as JSON.
func (a *app) handleAPIHandoff(c echo.Context) error {
	var subject, via string
	var actor *token.Actor
	byKey := hasAPIKey(c)
	if byKey {
		if !a.apiKeyValid(c.Request().Header.Get(apiKeyHeader)) {
			return shared.NewError(http.StatusUnauthorized, "invalid_api_key",
				"The API key is not valid.", "Check the X-API-Key header.")
		}
		actor, via = &token.Actor{Subject: apiActor}, "api_key"
	} else {
		u, ok := a.currentUser(c)
		if !ok {
			return shared.NewError(http.StatusUnauthorized, "unauthenticated",
				"Authentication is required.", "Send an X-API-Key header, or a session cookie with an X-CSRF-Token header.")
		}
		subject, via = u.Username, "session"
	}

	req, err := decodeAPIRequest(c)
	if err != nil {
		return err
	}
	switch {
	case byKey:
		if _, ok := a.users[req.Subject]; !ok {
			return shared.NewError(http.StatusBadRequest, "unknown_subject",
				"The subject is not a known user.", `Set "subject" to the username the token is for.`)
		}
		subject = req.Subject
	case req.Subject != "" && req.Subject != subject:
		return shared.NewError(http.StatusForbidden, "subject_mismatch",
			"A session can only ask for tokens for its own user.", `Leave "subject" out.`)
	}
	aud, t, err := a.resolve(subject, req.Audience, req.TaskID)
	if err != nil {
		return err
	}
	m, err := a.mint(c, subject, aud, t, "", actor, via)
	if err != nil {
		return err
	}
	body, err := marshalJSON(apiHandoffResponse{
		Token: m.Token, TokenType: token.HandoffTokenType, ID: m.ID,
		ExpiresAt: m.ExpiresAt.UTC().Format(time.RFC3339), TargetURL: aud.HandoffURL,
	})
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSONBlob(http.StatusCreated, body)
}

func decodeAPIRequest(c echo.Context) (apiHandoffRequest, error) {
	var req apiHandoffRequest
	mt, _, err := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType))
	if err != nil || mt != echo.MIMEApplicationJSON {
		return req, shared.NewError(http.StatusUnsupportedMediaType, "unsupported_media_type",
			"The request body must be JSON.", "Send Content-Type: application/json.")
	}
	raw, err := io.ReadAll(c.Request().Body)
	if err != nil {
		return req, err
	}
	if err := json.Unmarshal(raw, &req, json.RejectUnknownMembers(true)); err != nil {
		e := shared.NewError(http.StatusBadRequest, "invalid_request",
			"The request body is not a valid handoff request.", `Send {"audience": "...", "task_id": "..."}.`)
		e.Internal = err
		return req, e
	}
	return req, nil
}

func marshalJSON(v any) ([]byte, error) {
	return json.Marshal(v, json.Deterministic(true))
}
