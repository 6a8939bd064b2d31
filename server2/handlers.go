package main

import (
	"bytes"
	"cmp"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/go-json-experiment/json"
	"github.com/handoffbroker/handoff/broker"
	"github.com/handoffbroker/handoff/broker/token"
	"github.com/handoffbroker/handoff/shared"
	"github.com/labstack/echo/v4"
)

// Server error codes, beside the broker reasons (docs/PROTOCOL.md).
const (
	CodeTokenInURL       = broker.CodeTokenInURL
	CodeNoSession        = "no_session"
	CodeCSRFInvalid      = "csrf_invalid"
	CodeAlreadyCompleted = "already_completed"
	CodeMissingToken     = broker.CodeMissingToken
	CodeInvalidRequest   = broker.CodeInvalidRequest
	CodeSessionRevoked   = "session_revoked"
	CodeTooManySessions  = "too_many_sessions"
)

// The flows a verification belongs to, in audit logs.
const (
	flowHandoff = "handoff"
	flowAPI     = "api"
)

// fallbackPortalName names the issuer on pages until its metadata gives
// a display_name (never, when every issuer URL is configured).
const fallbackPortalName = "the portal"

// portal is the issuer as pages name it and link back to it: its
// display_name and homepage_uri once discovered, else a plain name and
// the issuer's URL.
func (a *App) portal() shared.Portal {
	p := shared.Portal{Name: fallbackPortalName, URL: strings.TrimSuffix(a.cfg.TrustedIssuer, "/") + "/"}
	if md, ok := a.rp.Metadata(); ok {
		p.Name = cmp.Or(md.DisplayName, p.Name)
		p.URL = cmp.Or(md.HomepageURI, p.URL)
	}
	return p
}

// errNoSession explains a task page without a session for its task: a
// session is for the one task its handoff named (its cookie reaches only
// that task's path), so another task's page, or this task's in another
// browser, has none.
func (a *App) errNoSession(taskID string) *shared.Error {
	p, name := a.portal(), shared.TaskName(taskID)
	return &shared.Error{Status: http.StatusUnauthorized, Code: CodeNoSession, Retry: p.URL,
		Title: "This browser has no session for " + name + ".",
		Detail: "A session here is for the one task " + p.Name + " sent you to do, in the browser you used then. " +
			"To work on " + name + ", choose it on " + p.Name + ": it sends you here with a one-time pass for it."}
}

// errSessionRevoked ends a session whose token the issuer revoked; claim
// says what the list named ("sub", "jti" or "kid").
func (a *App) errSessionRevoked(claim string) *shared.Error {
	title := "This session was ended: the one-time pass that opened it was withdrawn."
	if claim == "sub" {
		title = "This session was ended: you signed out everywhere."
	}
	p := a.portal()
	return &shared.Error{Status: http.StatusUnauthorized, Code: CodeSessionRevoked, Retry: p.URL, Title: title,
		Detail: "Sign in again on " + p.Name + " and start the task again there."}
}

func (a *App) index(c echo.Context) error {
	return c.Render(http.StatusOK, "index.html", a.portal())
}

// reserveSession takes room for the session before the broker consumes
// the jti: a handoff refused for lack of room changes nothing, and the
// same token works on a retry.
func (a *App) reserveSession(w http.ResponseWriter, r *http.Request) (*http.Request, func(), error) {
	room, err := a.sessions.Reserve()
	if err != nil {
		a.log.Warn("handoff refused: session store full", "request_id", shared.RequestID(echoContext(r)))
		w.Header().Set("Retry-After", "5")
		return nil, nil, &shared.Error{Status: http.StatusServiceUnavailable, Code: CodeTooManySessions,
			Title: "This service cannot open a session right now.", Detail: "Nothing was changed: your one-time pass still works. Try again in a moment.",
			APIDetail: "No session slot is free; the token was not used. Post the same form again after Retry-After.", Internal: err}
	}
	callOf(r).room = room
	return r, room.Release, nil
}

// openSession opens SERVER2's own session for the task of a verified,
// consumed handoff token, in the room reserveSession took, and sends the
// browser to the task page, where nothing happens without a CSRF-checked
// confirmation.
func (a *App) openSession(_ http.ResponseWriter, r *http.Request, claims *token.Claims) error {
	c := echoContext(r)
	a.audit(c, flowHandoff, claims, nil)
	room := callOf(r).room
	// Task cookies do not reach /handoff, so only a cookie at a wider
	// path (planted, or set before cookies were scoped to tasks) ends
	// here; a new handoff for a task overwrites that task's cookie in the
	// browser, and the old entry ends at its TTL or as the subject's oldest.
	var previous string
	if ck, err := c.Cookie(SessionCookie); err == nil {
		previous = ck.Value
	}
	data, err := newSession(*claims, a.opts.Rand)
	if err != nil {
		return err
	}
	id, sess, err := room.Create(claims.Subject, data, previous)
	if err != nil {
		return err
	}
	path := sessionPath(claims.Task.ID)
	c.SetCookie(&http.Cookie{
		Name:     SessionCookie,
		Value:    id,
		Path:     path,
		Expires:  sess.ExpiresAt,
		MaxAge:   int(a.cfg.SessionTTL.Seconds()),
		HttpOnly: true,
		Secure:   a.cfg.secureCookies(),
		SameSite: http.SameSiteLaxMode,
	})
	return c.Redirect(http.StatusSeeOther, path)
}

// sessionPath is the path of the task page, and of the session cookie a
// handoff for the task sets: one cookie per task, so handoffs for
// different tasks in one browser (parallel tabs) keep their sessions side
// by side instead of the last one overwriting the others. The task page
// and its complete form lie under it; nothing else on SERVER2 sees it.
func sessionPath(taskID string) string {
	return "/tasks/" + url.PathEscape(taskID)
}

// handoffRefused audits a rejected handoff token and leaves the page, with
// a way back to the portal, to echo's error handler.
func (a *App) handoffRefused(w http.ResponseWriter, r *http.Request, e *shared.Error) {
	switch {
	case token.ReasonOf(e) != "":
		a.audit(echoContext(r), flowHandoff, nil, e)
	case e.Code == broker.CodeWrongOrigin:
		a.metrics.Verifications.WithLabelValues("rejected", e.Code).Inc()
		a.log.Warn("token rejected", "request_id", shared.RequestID(echoContext(r)), "flow", flowHandoff, "reason", e.Code)
	}
	// Every refused handoff leads back to where the task starts.
	e.Retry = a.portal().URL
	echoRefused(w, r, e)
}

// audit counts the verification and logs its outcome: reason and token id,
// never the token.
func (a *App) audit(c echo.Context, flow string, cl *token.Claims, err error) {
	ctx := c.Request().Context()
	if err != nil {
		reason := token.ReasonOf(err)
		if reason == "" {
			reason = "internal"
		}
		a.metrics.Verifications.WithLabelValues("rejected", string(reason)).Inc()
		attrs := []slog.Attr{slog.String("request_id", shared.RequestID(c)), slog.String("flow", flow), slog.String("reason", string(reason))}
		var be *token.Error
		if errors.As(err, &be) {
			if be.Claim != "" {
				attrs = append(attrs, slog.String("claim", be.Claim))
			}
			if be.TokenID != "" {
				attrs = append(attrs, slog.String("jti", be.TokenID))
			}
		}
		a.log.LogAttrs(ctx, slog.LevelWarn, "token rejected", attrs...)
		return
	}
	a.metrics.accepted.Inc()
	a.log.LogAttrs(ctx, slog.LevelInfo, "token verified",
		slog.String("request_id", shared.RequestID(c)), slog.String("flow", flow), slog.String("jti", cl.ID),
		slog.String("sub", cl.Subject), slog.String("iss", cl.Issuer), slog.String("task_id", cl.Task.ID),
		slog.String("action", cl.Task.Action), slog.String("kid", cl.KeyID), slog.Time("exp", cl.ExpiresAt.UTC()))
}

// taskParam returns the decoded :id path parameter.
func taskParam(c echo.Context) string {
	id := c.Param("id")
	if c.Request().URL.RawPath != "" {
		if u, err := url.PathUnescape(id); err == nil {
			return u
		}
	}
	return id
}

// sessionFor returns the caller's session when it is for task id. The
// browser may send several session cookies (its task's, and one left at a
// wider path); the one whose session is for id counts.
func (a *App) sessionFor(c echo.Context, id string) (string, session, error) {
	var (
		sid  string
		sess session
	)
	for _, ck := range c.Request().Cookies() {
		if ck.Name != SessionCookie {
			continue
		}
		if got, ok := a.sessions.Get(ck.Value); ok && got.Data.Task.ID == id {
			sid, sess = ck.Value, got.Data
			break
		}
	}
	if sid == "" {
		return "", session{}, a.errNoSession(id)
	}
	// A session outlives the token it was made from: "sign out
	// everywhere", revoking the token (a cancelled handoff) or revoking
	// its signing key (a leaked key) must end it too, or a stolen session
	// cookie would keep working.
	if claim := cmp.Or(sess.Revoked, a.heldRevocation(sess)); claim != "" {
		a.sessions.Delete(sid)
		a.log.Info("session ended", "request_id", shared.RequestID(c), "reason", "revoked", "claim", claim,
			"sub", sess.Subject, "task_id", sess.Task.ID, "jti", sess.TokenID, "kid", sess.KeyID)
		return "", session{}, a.errSessionRevoked(claim)
	}
	return sid, sess, nil
}

// heldRevocation returns the claim ("jti", "kid" or "sub") by which the
// held revocation list names the token that opened sess, or "".
func (a *App) heldRevocation(sess session) string {
	err := a.rp.HeldRevocation(sess.tokenRef())
	if err == nil {
		return ""
	}
	var be *token.Error
	if errors.As(err, &be) && be.Claim != "" {
		return be.Claim
	}
	return "unknown"
}

type taskPage struct {
	Session session
	// Task words the task as SERVER1's task list does.
	Task shared.TaskView
	// Portal is the service that sent the user.
	Portal shared.Portal
	// CompleteURL and CancelURL are the paths the confirm and cancel
	// forms post to.
	CompleteURL, CancelURL string
	// Result, when set, is the form carrying the outcome back to SERVER1.
	Result *resultForm
}

func (a *App) newTaskPage(s session) taskPage {
	return taskPage{Session: s, Task: shared.DescribeTask(s.Task), Portal: a.portal(),
		CompleteURL: sessionPath(s.Task.ID) + "/complete", CancelURL: sessionPath(s.Task.ID) + "/cancel"}
}

// taskPage shows the session's task, or that it is done, whoever did it.
func (a *App) taskPage(c echo.Context) error {
	_, sess, err := a.sessionFor(c, taskParam(c))
	if err != nil {
		return err
	}
	done, err := a.replay.Completions.IsDone(c.Request().Context(), completionKey(sess.Issuer, sess.Task.ID))
	if err != nil {
		return errCompletionsUnavailable(err, false)
	}
	if done {
		return c.Render(http.StatusOK, "done.html", a.newTaskPage(sess))
	}
	return c.Render(http.StatusOK, "task.html", a.newTaskPage(sess))
}

// markDone records the task of issuer done, once: completion is a fact
// about the task, so a second handoff or token for it, at this replica or
// another sharing the store, gets 409 already_completed.
func (a *App) markDone(c echo.Context, issuer, taskID string, api bool) error {
	until := a.opts.Now().Add(a.cfg.CompletionRetention)
	first, err := a.replay.Completions.MarkDone(c.Request().Context(), completionKey(issuer, taskID), until)
	switch {
	case err != nil:
		return errCompletionsUnavailable(err, api)
	case !first:
		return &shared.Error{Status: http.StatusConflict, Code: CodeAlreadyCompleted,
			Title: "This task was already completed.", Detail: "Nothing more to do.",
			APIDetail: "A task completes once, whichever session or token asks: do not retry. The token is used up."}
	}
	return nil
}

// errCompletionsUnavailable is the answer when the completion store
// cannot tell whether a task is done: fail closed, do nothing.
func errCompletionsUnavailable(err error, api bool) *shared.Error {
	e := &shared.Error{Status: http.StatusServiceUnavailable, Code: string(token.ReasonUnavailable),
		Title: "This service cannot record tasks right now.", Detail: "Nothing was changed. Try again in a moment.", Internal: err}
	if api {
		e.APIDetail = "The completion store is unavailable: the task was not completed, and the token is used up. Ask the issuer for a new token and retry in a moment."
	}
	return e
}

// completeTask performs the task the session holds, once for the task
// whatever the session. The CSRF token is bound to the session: another
// site cannot submit the form for a signed-in user (cross-site request
// forgery), even where SameSite cookies are not enforced.
func (a *App) completeTask(c echo.Context) error {
	_, sess, err := a.sessionFor(c, taskParam(c))
	if err != nil {
		return err
	}
	if !csrfMatches(sess.CSRF, c.Request().PostFormValue("_csrf")) {
		return shared.NewError(http.StatusForbidden, CodeCSRFInvalid,
			"The form could not be checked.", "Reload the task page and try again.")
	}
	if err := a.markDone(c, sess.Issuer, sess.Task.ID, false); err != nil {
		return err
	}
	a.log.Info("task completed", "request_id", shared.RequestID(c), "flow", flowHandoff, "sub", sess.Subject,
		"task_id", sess.Task.ID, "action", sess.Task.Action, "jti", sess.TokenID)
	page := a.newTaskPage(sess)
	// The task is done whether or not the outcome reaches SERVER1: a
	// result that cannot be signed leaves the page without its form.
	if page.Result, err = a.mintResult(c, sess, token.OutcomeApproved); err != nil {
		a.log.Error("result not minted", "request_id", shared.RequestID(c), "task_id", sess.Task.ID, "error", err.Error())
	}
	return c.Render(http.StatusOK, "done.html", page)
}

// apiResult is the body of a successful task API call.
type apiResult struct {
	Status  string `json:"status"`
	TaskID  string `json:"task_id"`
	Subject string `json:"subject"`
	JTI     string `json:"jti"`
}

// expectTask is what a task API token must allow: exactly the task,
// action and parameters of the request. The client cannot use a token for
// one transfer to approve another (or the same one with a different
// amount).
func (a *App) expectTask(r *http.Request) (token.Expect, error) {
	c := echoContext(r)
	params, err := readParams(r.Body)
	if err != nil {
		return token.Expect{}, &shared.Error{Status: http.StatusBadRequest, Code: CodeInvalidRequest,
			Title: "The request body must be a JSON object of string parameters.", Detail: paramsHelp, Internal: err}
	}
	if params == nil {
		c.Set(noBodyKey, true)
	}
	want := &token.Task{ID: taskParam(c), Action: c.Param("action")}
	if len(params) > 0 {
		want.ParamsDigest = token.DigestParams(params)
	}
	return token.Expect{Task: want}, nil
}

// paramsHelp says what a task API body holds.
const paramsHelp = `Send the parameters the token was minted with as a JSON object of strings, each name once, such as {"amount":"250.00","currency":"EUR","payee":"ACME Corp"}; send no body only for a task without parameters.`

// noBodyKey marks, in the echo context, a task API call without a body.
const noBodyKey = "server2.api_no_body"

// apiRefused audits a rejected bearer token and leaves the problem to
// echo's error handler. A token for task parameters, sent without a body,
// is a malformed request (400 invalid_request), not a token for another
// task: the client left the parameters out.
func (a *App) apiRefused(w http.ResponseWriter, r *http.Request, e *shared.Error) {
	c := echoContext(r)
	if token.ReasonOf(e) != "" {
		a.audit(c, flowAPI, nil, e)
	}
	var te *token.Error
	if noBody, _ := c.Get(noBodyKey).(bool); noBody && errors.As(e, &te) &&
		te.Reason == token.ReasonTaskMismatch && te.Claim == "task.params_digest" {
		e = &shared.Error{Status: http.StatusBadRequest, Code: CodeInvalidRequest,
			Title: "The request has no body, but the token is for task parameters.", Detail: paramsHelp,
			Challenge: `Bearer error="invalid_request", error_description="invalid_request"`, Internal: e}
	}
	echoRefused(w, r, e)
}

// apiTask performs the task of a verified bearer token, once for the task
// whatever the token (409 already_completed after).
func (a *App) apiTask(c echo.Context) error {
	cl, _ := broker.ClaimsFromContext(c.Request().Context())
	a.audit(c, flowAPI, cl, nil)
	if err := a.markDone(c, cl.Issuer, cl.Task.ID, true); err != nil {
		return err
	}
	a.log.Info("task completed", "request_id", shared.RequestID(c), "flow", flowAPI, "sub", cl.Subject,
		"task_id", cl.Task.ID, "action", cl.Task.Action, "jti", cl.ID)
	status := "completed"
	if cl.Task.Action == "approve" {
		status = "approved"
	}
	return c.JSON(http.StatusOK, apiResult{Status: status, TaskID: cl.Task.ID, Subject: cl.Subject, JTI: cl.ID})
}

// readParams decodes the task parameters: a JSON object of strings, or an
// empty body for a task without parameters. Duplicate names are refused,
// so this parser and the issuer's cannot read different parameters.
func readParams(body io.Reader) (map[string]string, error) {
	raw, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil, nil
	}
	if raw[0] != '{' {
		return nil, errors.New("body is not a JSON object")
	}
	var params map[string]string
	if err := json.Unmarshal(raw, &params); err != nil {
		return nil, err
	}
	return params, nil
}
