package main

import (
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/handoffbroker/handoff/broker/keys"
	"github.com/handoffbroker/handoff/broker/token"
	"github.com/handoffbroker/handoff/shared"
	"github.com/labstack/echo/v4"
)

// jwksMaxAge is the Cache-Control max-age of SERVER2's JWKS and metadata.
const jwksMaxAge = time.Minute

// resultSigner is SERVER2's own issuer side: the keys that sign result
// tokens and where the browser carries them. SERVER1 verifies them against
// the JWKS SERVER2 publishes; the two share no secret.
type resultSigner struct {
	// dir is --keys-dir, "" for the in-memory key.
	dir    string
	keys   *keys.Keyring
	minter *token.Minter
	// target is SERVER1's result endpoint; origin its scheme and host,
	// the only form-action of the pages that post there.
	target, origin string
	metadata       []byte
	// reloadErr is the last reload failure logged, so a lasting one is
	// logged once. Only the Start loop touches it.
	reloadErr string
}

// reload re-reads --keys-dir, so replicas sharing it agree on the signing
// key and publish each other's keys.
func (s *resultSigner) reload(log *slog.Logger) {
	if s.dir == "" {
		return
	}
	err := s.keys.Reload()
	switch {
	case err != nil && err.Error() != s.reloadErr:
		s.reloadErr = err.Error()
		log.Warn("reloading result signing keys failed", "error", s.reloadErr)
	case err == nil && s.reloadErr != "":
		s.reloadErr = ""
		log.Info("reloading result signing keys works again")
	}
}

// newResultSigner opens cfg.KeysDir (or makes an in-memory key) and the
// minter of result tokens, whose "iss" is SERVER2's audience.
func newResultSigner(cfg Config, now func() time.Time) (*resultSigner, error) {
	var (
		ring *keys.Keyring
		err  error
	)
	if cfg.KeysDir == "" {
		ring, err = keys.NewEphemeral(token.EdDSA)
	} else if ring, err = keys.Open(keys.KeyringConfig{Dir: cfg.KeysDir, RetainRetired: cfg.MaxTokenLifetime + token.MaxLeeway, Now: now}); err == nil && len(ring.Keys()) == 0 {
		_, err = ring.Generate(token.EdDSA, time.Time{})
	}
	if err != nil {
		return nil, fmt.Errorf("keys-dir: %w", err)
	}
	minter, err := token.NewMinter(token.MinterConfig{Issuer: cfg.Audience, Keys: ring, Now: now})
	if err != nil {
		return nil, err
	}
	target, err := cfg.resultURL()
	if err != nil {
		return nil, fmt.Errorf("result-url: %w", err)
	}
	s := &resultSigner{dir: cfg.KeysDir, keys: ring, minter: minter, target: target.String(), origin: target.Scheme + "://" + target.Host}
	if s.metadata, err = resultMetadata(cfg.Audience, s.target); err != nil {
		return nil, err
	}
	return s, nil
}

// resultMetadata is the body of SERVER2's /.well-known/handoff-configuration.
func resultMetadata(issuer, resultEndpoint string) ([]byte, error) {
	jwksURI, err := url.JoinPath(issuer, "/.well-known/jwks.json")
	if err != nil {
		return nil, fmt.Errorf("audience: %w", err)
	}
	return json.Marshal(struct {
		Issuer         string            `json:"issuer"`
		JWKSURI        string            `json:"jwks_uri"`
		TokenTypes     []string          `json:"token_types_supported"`
		SigningAlgs    []token.Algorithm `json:"signing_alg_values_supported"`
		ResultEndpoint string            `json:"result_endpoint"`
	}{issuer, jwksURI, []string{token.ResultTokenType}, token.Algorithms(), resultEndpoint})
}

// handleJWKS serves the public keys that verify SERVER2's result tokens.
func (a *App) handleJWKS(c echo.Context) error {
	body, err := a.results.keys.JWKS()
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(jwksMaxAge.Seconds())))
	return c.Blob(http.StatusOK, "application/jwk-set+json", body)
}

// handleMetadata serves SERVER2's metadata as a result issuer.
func (a *App) handleMetadata(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(jwksMaxAge.Seconds())))
	return c.JSONBlob(http.StatusOK, a.results.metadata)
}

// resultForm is the auto-submit form carrying a result token back to
// SERVER1.
type resultForm struct {
	Action string
	Token  string
	TaskID string
	Nonce  string
}

// mintResult signs the session's outcome for SERVER1 and sets the headers
// of the page that carries it: only this response's script runs, and forms
// go only to SERVER1's result endpoint, so an injected script or form
// cannot carry the token elsewhere; the page is never stored.
func (a *App) mintResult(c echo.Context, sess session, outcome token.Outcome) (*resultForm, error) {
	m, err := a.results.minter.MintResult(token.ResultRequest{
		Subject: sess.Subject, Audience: sess.Issuer, Task: sess.Task, Outcome: outcome,
	})
	if err != nil {
		return nil, err
	}
	nonce, err := cspNonce(a.opts.Rand)
	if err != nil {
		return nil, err
	}
	h := c.Response().Header()
	h.Set("Content-Security-Policy", fmt.Sprintf(
		"default-src 'none'; script-src 'nonce-%s'; style-src 'self'; form-action %s; frame-ancestors 'none'; base-uri 'none'",
		nonce, a.results.origin))
	h.Set("Cache-Control", "no-store")
	a.log.Info("result minted", "request_id", shared.RequestID(c), "jti", m.ID, "sub", sess.Subject,
		"aud", sess.Issuer, "task_id", sess.Task.ID, "outcome", string(outcome), "kid", m.KeyID,
		"exp", m.ExpiresAt.UTC().Format(time.RFC3339))
	return &resultForm{Action: a.results.target, Token: m.Token, TaskID: sess.Task.ID, Nonce: nonce}, nil
}

// cspNonce returns a fresh CSP nonce: 128 random bits.
func cspNonce(rand io.Reader) (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(rand, b[:]); err != nil {
		return "", fmt.Errorf("csp nonce: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// cancelTask gives the session's task up: nothing is recorded as done, the
// session ends, and the browser carries a "cancelled" result back to
// SERVER1, where the task stays pending. A task already done cannot be
// cancelled (409 already_completed). CSRF-checked like completeTask.
func (a *App) cancelTask(c echo.Context) error {
	sid, sess, err := a.sessionFor(c, taskParam(c))
	if err != nil {
		return err
	}
	if !csrfMatches(sess.CSRF, c.Request().PostFormValue("_csrf")) {
		return shared.NewError(http.StatusForbidden, CodeCSRFInvalid,
			"The form could not be checked.", "Reload the task page and try again.")
	}
	done, err := a.replay.Completions.IsDone(c.Request().Context(), completionKey(sess.Issuer, sess.Task.ID))
	switch {
	case err != nil:
		return errCompletionsUnavailable(err, false)
	case done:
		return shared.NewError(http.StatusConflict, CodeAlreadyCompleted,
			"This task was already completed.", "Nothing more to do.")
	}
	result, err := a.mintResult(c, sess, token.OutcomeCancelled)
	if err != nil {
		return err
	}
	a.sessions.Delete(sid)
	a.log.Info("task cancelled", "request_id", shared.RequestID(c), "flow", flowHandoff, "sub", sess.Subject,
		"task_id", sess.Task.ID, "action", sess.Task.Action, "jti", sess.TokenID)
	page := a.newTaskPage(sess)
	page.Result = result
	return c.Render(http.StatusOK, "cancelled.html", page)
}
