package shared

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/handoffbroker/handoff/broker/token"
	"github.com/labstack/echo/v4"
)

// Error is a request failure as the client will see it, plus what only the
// log sees. Handlers return it; the ErrorHandler renders it.
type Error struct {
	// Status is the HTTP status code.
	Status int
	// Code is the stable reason code (a token.Reason or a server code such
	// as "csrf_invalid"). Shown to clients.
	Code string
	// Title is one short public sentence: what went wrong.
	Title string
	// Detail is public advice: what the user or client can do.
	Detail string
	// Challenge, when set, is sent as WWW-Authenticate (RFC 6750 §3).
	Challenge string
	// Internal is logged with the correlation id and never shown.
	Internal error
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%d %s", e.Status, e.Code)
	if e.Internal != nil {
		s += ": " + e.Internal.Error()
	}
	return s
}

// Unwrap returns the internal cause.
func (e *Error) Unwrap() error { return e.Internal }

// NewError returns an *Error with the given public parts.
func NewError(status int, code, title, detail string) *Error {
	return &Error{Status: status, Code: code, Title: title, Detail: detail}
}

// reasonText is the public wording for each broker reason: what happened,
// in plain words, and what to do about it.
var reasonText = map[token.Reason][2]string{
	token.ReasonInvalidExpect:       {"This service could not check the handoff.", "Nothing was changed. Try again later; if it keeps happening, contact support."},
	token.ReasonTooLarge:            {"The handoff token is too large.", "Start the task again from the service that sent you here."},
	token.ReasonMalformed:           {"The handoff token is damaged or incomplete.", "Start the task again from the service that sent you here."},
	token.ReasonUnsupportedAlg:      {"The handoff token uses a signing method this service does not accept.", "Start the task again; if it keeps happening, contact support."},
	token.ReasonBadType:             {"This is not a handoff token.", "Start the task again from the service that sent you here."},
	token.ReasonBadHeader:           {"The handoff token's header is not acceptable.", "Start the task again from the service that sent you here."},
	token.ReasonUnknownKey:          {"The handoff token was signed with a key this service does not know.", "Start the task again; if it keeps happening, contact support."},
	token.ReasonBadSignature:        {"The handoff token's signature is not valid.", "Start the task again from the service that sent you here."},
	token.ReasonMissingClaim:        {"The handoff token is missing required information.", "Start the task again from the service that sent you here."},
	token.ReasonInvalidClaim:        {"The handoff token holds invalid information.", "Start the task again from the service that sent you here."},
	token.ReasonWrongIssuer:         {"The handoff token comes from a service this one does not trust.", "Start the task from the right service."},
	token.ReasonWrongAudience:       {"The handoff token is meant for a different service.", "Start the task again and choose this service."},
	token.ReasonExpired:             {"The handoff link has expired.", "Go back and try again: handoffs are valid for about a minute."},
	token.ReasonNotYetValid:         {"The handoff token is not valid yet.", "Check that your device's clock is right, then try again."},
	token.ReasonIssuedInFuture:      {"The handoff token was issued in the future.", "The two services' clocks disagree; try again in a minute or contact support."},
	token.ReasonLifetimeTooLong:     {"The handoff token lives longer than this service allows.", "Start the task again; if it keeps happening, contact support."},
	token.ReasonTaskMismatch:        {"The handoff token is for a different task.", "Start this task again from the service that sent you here."},
	token.ReasonRevoked:             {"The handoff was withdrawn.", "Sign in again and start the task again."},
	token.ReasonIssuedBeforeRestart: {"The handoff was created before this service restarted.", "Go back and try again."},
	token.ReasonReplayed:            {"This handoff was already used.", "Each handoff works once. Go back and start the task again if you need to."},
	token.ReasonUnavailable:         {"The service cannot check handoffs right now.", "Nothing was changed. Try again in a moment."},
}

// StatusFor maps a broker reason to its HTTP status: 400 for tokens that are
// not well-formed, 401 for tokens that are not valid, 403 for the wrong
// task, 409 for a replay, 503 when a dependency is down, 500 when the
// service itself asked the verifier nothing (invalid_expect).
func StatusFor(r token.Reason) int {
	switch r {
	case token.ReasonInvalidExpect:
		return http.StatusInternalServerError
	case token.ReasonTooLarge, token.ReasonMalformed, token.ReasonUnsupportedAlg,
		token.ReasonBadType, token.ReasonBadHeader, token.ReasonMissingClaim,
		token.ReasonInvalidClaim:
		return http.StatusBadRequest
	case token.ReasonTaskMismatch:
		return http.StatusForbidden
	case token.ReasonReplayed:
		return http.StatusConflict
	case token.ReasonUnavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusUnauthorized
	}
}

// FromBroker turns a broker rejection into an *Error: the reason code and
// public wording for the client, the full error (which never holds the
// token) for the log. For token-authenticated APIs it also sets the RFC 6750
// challenge. A non-broker error becomes a 500.
func FromBroker(err error, bearer bool) *Error {
	reason := token.ReasonOf(err)
	text, ok := reasonText[reason]
	if !ok {
		return &Error{Status: http.StatusInternalServerError, Code: "internal", Title: "Something went wrong.", Detail: "Try again later.", Internal: err}
	}
	e := &Error{Status: StatusFor(reason), Code: string(reason), Title: text[0], Detail: text[1], Internal: err}
	if bearer && reason != token.ReasonUnavailable && reason != token.ReasonInvalidExpect {
		e.Challenge = fmt.Sprintf(`Bearer error="invalid_token", error_description=%q`, string(reason))
	}
	return e
}

// Problem is an RFC 9457 problem details body, with the reason code and the
// correlation id as extension members.
type Problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail,omitempty"`
	Code      string `json:"code"`
	RequestID string `json:"request_id,omitempty"`
}

// ProblemTypeBase prefixes the "type" URI of every problem: one per code,
// documented in docs/PROTOCOL.md.
const ProblemTypeBase = "https://handoffbroker.github.io/problems/"

// ErrorPage is the data of the HTML error page.
type ErrorPage struct {
	Status    int
	Code      string
	Title     string
	Detail    string
	RequestID string
}

// NewErrorHandler returns the echo error handler both servers use. Paths
// under /api/ (and clients that accept only JSON) get problem+json; everyone
// else gets the HTML error page. Every error is logged once with its
// internal detail and the request's correlation id.
func NewErrorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		e := toError(err)
		rid := RequestID(c)
		level := slog.LevelInfo
		if e.Status >= 500 {
			level = slog.LevelError
		}
		attrs := []any{"request_id", rid, "status", e.Status, "code", e.Code, "method", c.Request().Method, "path", c.Request().URL.Path}
		if e.Internal != nil {
			attrs = append(attrs, "error", e.Internal.Error())
		}
		log.Log(c.Request().Context(), level, "request failed", attrs...)

		if e.Challenge != "" {
			c.Response().Header().Set("WWW-Authenticate", e.Challenge)
		}
		c.Response().Header().Set("Cache-Control", "no-store")
		var werr error
		switch {
		case c.Request().Method == http.MethodHead:
			werr = c.NoContent(e.Status)
		case wantsProblemJSON(c):
			c.Response().Header().Set(echo.HeaderContentType, "application/problem+json")
			werr = c.JSON(e.Status, Problem{
				Type: ProblemTypeBase + e.Code, Title: e.Title, Status: e.Status,
				Detail: e.Detail, Code: e.Code, RequestID: rid,
			})
		default:
			werr = c.Render(e.Status, "error.html", ErrorPage{Status: e.Status, Code: e.Code, Title: e.Title, Detail: e.Detail, RequestID: rid})
		}
		if werr != nil {
			log.Error("writing error response", "request_id", rid, "error", werr.Error())
		}
	}
}

func toError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if token.ReasonOf(err) != "" {
		return FromBroker(err, false)
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		title := http.StatusText(he.Code)
		if m, ok := he.Message.(string); ok && he.Code < 500 {
			title = m
		}
		return &Error{Status: he.Code, Code: strings.ReplaceAll(strings.ToLower(http.StatusText(he.Code)), " ", "_"), Title: title, Internal: he.Internal}
	}
	return &Error{Status: http.StatusInternalServerError, Code: "internal", Title: "Something went wrong.", Detail: "Try again later.", Internal: err}
}

func wantsProblemJSON(c echo.Context) bool {
	if strings.HasPrefix(c.Request().URL.Path, "/api/") {
		return true
	}
	accept := c.Request().Header.Get(echo.HeaderAccept)
	return accept != "" && !strings.Contains(accept, "html") && strings.Contains(accept, "json")
}
