package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/handoffbroker/handoff/broker"
	"github.com/handoffbroker/handoff/broker/fetch"
	"github.com/handoffbroker/handoff/broker/keys"
	"github.com/handoffbroker/handoff/broker/token"
	"github.com/handoffbroker/handoff/shared"
	"github.com/labstack/echo/v4"
)

// results verifies the result tokens the relying service sends back with
// the browser after a handoff, with the same engine as a handoff: the
// relying service's published keys, SERVER1's own replay store, no shared
// secret.
type results struct {
	// issuer is the trusted result issuer; audience the registry entry
	// whose tasks it answers for.
	issuer, audience string
	keys             *keys.Remote
	replay           *token.MemoryReplayStore
	verifier         *token.Verifier
	outcomes         *outcomeBook
}

// newResults builds the result verifier of cfg: issuer ResultIssuer (the
// primary audience by default), keys from ResultJWKSURL, audience
// SERVER1's own issuer URL. When the issuer is not an http(s) URL and no
// JWKS URL is configured, results are off: verifier is nil and every
// result is refused.
func newResults(cfg Config, reg *registry, now func() time.Time) (*results, error) {
	aud := reg.primary()
	issuer := cfg.ResultIssuer
	if issuer == "" {
		issuer = aud.ID
	}
	jwksURL := cfg.ResultJWKSURL
	if jwksURL == "" {
		if checkHTTPURL(issuer) != nil {
			return &results{issuer: issuer, audience: aud.ID, outcomes: newOutcomeBook()}, nil
		}
		var err error
		if jwksURL, err = url.JoinPath(issuer, "/.well-known/jwks.json"); err != nil {
			return nil, fmt.Errorf("result-issuer: %w", err)
		}
	}
	ju, err := url.Parse(jwksURL)
	if err != nil {
		return nil, fmt.Errorf("result-jwks-url: %w", err)
	}
	// The policy's issuer decides the scheme rule; the operator chose
	// the JWKS host, so it is allowed.
	policyIssuer := issuer
	if checkHTTPURL(issuer) != nil {
		policyIssuer = ju.Scheme + "://" + ju.Host
	}
	policy, err := fetch.NewPolicy(fetch.PolicyConfig{Issuer: policyIssuer, AllowedHosts: []string{ju.Host}})
	if err != nil {
		return nil, fmt.Errorf("result-jwks-url: %w", err)
	}
	remote, err := keys.NewRemote(keys.RemoteConfig{URL: jwksURL, Policy: policy, Now: now})
	if err != nil {
		return nil, fmt.Errorf("result-jwks-url: %w", err)
	}
	replay, err := token.NewMemoryReplayStore(token.MemoryReplayConfig{Now: now})
	if err != nil {
		return nil, err
	}
	v, err := token.NewResultVerifier(token.VerifierConfig{
		Issuers:  []token.TrustedIssuer{{Issuer: issuer, Keys: remote}},
		Audience: cfg.Issuer,
		Replay:   replay,
		Now:      now,
	})
	if err != nil {
		_ = replay.Close()
		return nil, err
	}
	return &results{issuer: issuer, audience: aud.ID, keys: remote, replay: replay, verifier: v, outcomes: newOutcomeBook()}, nil
}

// outcomeBook records what became of each user's handed-off tasks, in
// memory: the demo's stand-in for the portal's own records. It holds only
// tasks of the task book, so it is bounded by it.
type outcomeBook struct {
	mu     sync.Mutex
	byUser map[string]map[string]token.Outcome
}

func newOutcomeBook() *outcomeBook {
	return &outcomeBook{byUser: make(map[string]map[string]token.Outcome)}
}

// record notes o for the user's task. Approval is final: a cancellation
// arriving after it (an older result, still unused) changes nothing. It
// returns the outcome now recorded.
func (b *outcomeBook) record(username, taskID string, o token.Outcome) token.Outcome {
	b.mu.Lock()
	defer b.mu.Unlock()
	tasks := b.byUser[username]
	if tasks == nil {
		tasks = make(map[string]token.Outcome)
		b.byUser[username] = tasks
	}
	if tasks[taskID] != token.OutcomeApproved {
		tasks[taskID] = o
	}
	return tasks[taskID]
}

// get returns the recorded outcome of the user's task, "" when none.
func (b *outcomeBook) get(username, taskID string) token.Outcome {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.byUser[username][taskID]
}

// errTaskApproved refuses a handoff for a task the relying service
// already reported approved.
var errTaskApproved = shared.NewError(http.StatusConflict, "already_approved",
	"That transfer is already approved.", "Nothing more to do: it is marked approved in your task list.")

// errResultsOff refuses every result when no result issuer's keys are
// configured.
var errResultsOff = shared.NewError(http.StatusBadRequest, "unknown_audience",
	"This portal takes no results from that service.", "Nothing was changed. Go back to your task list.")

// resultPage re-posts a result from SERVER1's own origin.
type resultPage struct {
	Token, TaskID, Nonce string
}

// handleResult is POST /handoffs/result: the browser brings back the
// relying service's result token (form fields token and task_id) for one
// of the signed-in user's tasks. The token is verified like a handoff
// (signature under the result issuer's published keys, "typ", audience
// SERVER1, lifetime, single use) and must be for the signed-in user and
// the task the user holds at that audience, parameters included; only
// then is the outcome recorded. Anything else changes nothing and gets
// the reason page.
//
// The post arrives cross-site, so the browser leaves SERVER1's
// SameSite=Lax session cookie out. Without a session the handler answers
// with a page that posts the same fields again from SERVER1's own origin
// ("resume"), which carries the cookie; the token is not read before.
// It needs no CSRF token: the signed, single-use result for this user is
// the proof, and another user's result is refused (wrong_subject).
func (a *app) handleResult(c echo.Context) error {
	r := c.Request()
	if r.URL.Query().Has("token") {
		return shared.NewError(http.StatusBadRequest, broker.CodeTokenInURL,
			"A result was sent in the page address.", "Nothing was changed. Go back to your task list.")
	}
	tok, taskID := r.PostFormValue("token"), r.PostFormValue("task_id")
	if tok == "" || len(tok) > token.DefaultMaxTokenSize || taskID == "" || len(taskID) > 128 {
		return shared.NewError(http.StatusBadRequest, broker.CodeInvalidRequest,
			"The result could not be read.", "Nothing was changed. Go back to your task list.")
	}
	if a.results.verifier == nil {
		return errResultsOff
	}
	u, ok := a.currentUser(c)
	if !ok {
		if r.PostFormValue("resume") != "" {
			return errNoSession
		}
		return a.renderResume(c, resultPage{Token: tok, TaskID: taskID})
	}
	t, ok := a.tasks.find(u.Username, a.results.audience, taskID)
	if !ok {
		return errUnknownTask
	}
	want := token.Task{ID: t.ID, Action: t.Action, ParamsDigest: token.DigestParams(t.Params)}
	v, err := a.results.verifier.Verify(r.Context(), tok, token.Expect{Task: &want, Subject: u.Username})
	if err != nil {
		return a.resultRefused(c, u, taskID, err)
	}
	cl := v.Claims()
	now := a.results.outcomes.record(u.Username, t.ID, cl.Outcome)
	a.log.Info("result accepted", "request_id", shared.RequestID(c), "jti", cl.ID, "iss", cl.Issuer,
		"sub", cl.Subject, "task_id", t.ID, "outcome", string(cl.Outcome), "recorded", string(now), "kid", cl.KeyID)
	return c.Redirect(http.StatusSeeOther, "/#task-"+url.PathEscape(t.ID))
}

// renderResume answers with the page that posts the result again, from
// SERVER1's origin: only its own script runs, forms go only to SERVER1,
// and the page is never stored.
func (a *app) renderResume(c echo.Context, p resultPage) error {
	var err error
	if p.Nonce, err = a.nonce(); err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set("Content-Security-Policy", fmt.Sprintf(
		"default-src 'none'; script-src 'nonce-%s'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'", p.Nonce))
	h.Set("Cache-Control", "no-store")
	return c.Render(http.StatusOK, "result.html", p)
}

// resultText is the public wording of the usual refusals of a result.
var resultText = map[token.Reason]string{
	token.ReasonBadSignature:  "The result is not signed by the service it claims to come from.",
	token.ReasonUnknownKey:    "The result is not signed by the service it claims to come from.",
	token.ReasonWrongIssuer:   "The result comes from a service this portal does not trust.",
	token.ReasonBadType:       "This is not a result of a task.",
	token.ReasonReplayed:      "This result was already received.",
	token.ReasonWrongAudience: "This result was meant for another portal.",
	token.ReasonWrongSubject:  "This result is for another user.",
	token.ReasonTaskMismatch:  "This result is for another transfer.",
	token.ReasonExpired:       "The result has expired.",
}

// resultRefused logs a refused result and answers with its reason: the
// broker's status and code, wording about the result.
func (a *app) resultRefused(c echo.Context, u user, taskID string, err error) error {
	e := shared.FromBroker(err, false)
	attrs := []any{"request_id", shared.RequestID(c), "sub", u.Username, "task_id", taskID, "reason", e.Code}
	var te *token.Error
	if errors.As(err, &te) {
		if te.Claim != "" {
			attrs = append(attrs, "claim", te.Claim)
		}
		if te.TokenID != "" {
			attrs = append(attrs, "jti", te.TokenID)
		}
	}
	a.log.Warn("result rejected", attrs...)
	title, ok := resultText[token.ReasonOf(err)]
	if !ok {
		title = "The result could not be accepted."
	}
	detail := "Nothing was changed: your transfers are as they were."
	if token.ReasonOf(err) == token.ReasonUnavailable {
		detail = "Nothing was changed. Try again in a moment."
	}
	return &shared.Error{Status: e.Status, Code: e.Code, Title: title, Detail: detail, Retry: "/", Internal: err}
}
