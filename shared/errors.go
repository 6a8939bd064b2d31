package shared

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/handoffbroker/handoff/broker"
	"github.com/handoffbroker/handoff/broker/token"
	"github.com/labstack/echo/v4"
)

// Error is a request failure as the client will see it, plus what only the
// log sees: broker.Error, so the relying-party handlers and SERVER2's own
// handlers produce one type. Handlers return it; the ErrorHandler renders
// it.
type Error = broker.Error

// NewError returns an *Error with the given public parts.
func NewError(status int, code, title, detail string) *Error {
	return &Error{Status: status, Code: code, Title: title, Detail: detail}
}

// FromBroker turns a broker rejection into an *Error (broker.ErrorFor):
// the reason code and public wording for the client, the full error (which
// never holds the token) for the log, and with bearer the RFC 6750
// challenge. A non-broker error becomes a 500.
func FromBroker(err error, bearer bool) *Error { return broker.ErrorFor(err, bearer) }

// Problem is the RFC 9457 problem details body both servers write,
// broker.Problem, with the correlation id in RequestID.
type Problem = broker.Problem

// ProblemTypeBase prefixes the "type" URI of every problem
// (broker.ProblemTypeBase).
const ProblemTypeBase = broker.ProblemTypeBase

// ErrorPage is the data of the HTML error page.
type ErrorPage struct {
	Status    int
	Code      string
	Title     string
	Detail    string
	RequestID string
	// Retry, when set, is where the user can start again (Error.Retry).
	Retry string
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
			p := e.Problem()
			p.RequestID = rid
			werr = c.JSON(e.Status, p)
		default:
			werr = c.Render(e.Status, "error.html", ErrorPage{Status: e.Status, Code: e.Code, Title: e.Title, Detail: e.Detail, RequestID: rid, Retry: e.Retry})
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
