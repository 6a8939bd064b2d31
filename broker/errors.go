package broker

import (
	"fmt"
	"net/http"

	"github.com/handoffbroker/handoff/broker/token"
)

// Codes of refusals that are not token rejections, beside the
// token.Reason codes (docs/PROTOCOL.md).
const (
	// CodeTokenInURL: a token was sent in a URL (a GET of the handoff
	// endpoint, or a "token" or "access_token" query parameter).
	CodeTokenInURL = "token_in_url"
	// CodeMissingToken: a Bearer-protected route got no Bearer credential.
	CodeMissingToken = "missing_token"
	// CodeInvalidRequest: the request could not be read (a form over the
	// size limit, a body the application refused).
	CodeInvalidRequest = "invalid_request"
	// CodeWrongOrigin: a browser handoff was posted from a page whose
	// Origin is not one the issuer posts from, or from an opaque origin
	// ("Origin: null").
	CodeWrongOrigin = "wrong_origin"
	// CodeInternal: the application failed in a way it did not describe.
	CodeInternal = "internal"
)

// Error is a refused request as the client sees it, plus what only the log
// sees. The handlers of this package give one to their ErrorFunc for every
// refusal; applications may return one from their callbacks to choose the
// answer.
type Error struct {
	// Status is the HTTP status code.
	Status int
	// Code is the stable reason code: a token.Reason or one of the Code
	// constants (or the application's own). Shown to clients.
	Code string
	// Title is one short public sentence: what went wrong.
	Title string
	// Detail is public advice: what the user or client can do.
	Detail string
	// Challenge, when set, is sent as WWW-Authenticate (RFC 6750 §3).
	Challenge string
	// Retry, when set, is a URL where the user can start again, shown as
	// a link on the HTML page (a refused browser handoff links to the
	// issuer's home).
	Retry string
	// Internal is for the log only, never shown. For a token rejection it
	// is the *token.Error, so token.ReasonOf works on the Error.
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

// reasonText is the public wording for each token reason: what happened,
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
	token.ReasonWrongSubject:        {"This was meant for another user.", "Nothing was changed. Sign in as the user who started the task, or start it again."},
	token.ReasonUnboundHandoff:      {"This handoff was started in another browser or has expired.", "Nothing was changed. Go back and start the task again from this browser."},
	token.ReasonRevoked:             {"The handoff was withdrawn.", "Sign in again and start the task again."},
	token.ReasonIssuedBeforeRestart: {"The handoff was created before this service restarted.", "Go back and try again."},
	token.ReasonReplayed:            {"This handoff was already used.", "Each handoff works once. Go back and start the task again if you need to."},
	token.ReasonUnavailable:         {"The service cannot check handoffs right now.", "Nothing was changed. Try again in a moment."},
}

// statusFor maps a token reason to its HTTP status: 400 for tokens that
// are not well-formed, 401 for tokens that are not valid, 403 for the wrong
// task or user or a token bound to another browser, 409 for a replay, 503 when a dependency is down, 500 when the
// service itself asked the verifier nothing (invalid_expect).
func statusFor(r token.Reason) int {
	switch r {
	case token.ReasonInvalidExpect:
		return http.StatusInternalServerError
	case token.ReasonTooLarge, token.ReasonMalformed, token.ReasonUnsupportedAlg,
		token.ReasonBadType, token.ReasonBadHeader, token.ReasonMissingClaim,
		token.ReasonInvalidClaim:
		return http.StatusBadRequest
	case token.ReasonTaskMismatch, token.ReasonWrongSubject, token.ReasonUnboundHandoff:
		return http.StatusForbidden
	case token.ReasonReplayed:
		return http.StatusConflict
	case token.ReasonUnavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusUnauthorized
	}
}

// ErrorFor turns a Verify error into an *Error: the reason code and public
// wording for the client, the full error (which never holds the token) for
// the log. A non-token error becomes a 500 "internal".
//
// With bearer set (a Bearer-protected route) it adds the RFC 6750 §3
// challenge the status calls for: error="invalid_token" with 401,
// "invalid_request" with 400, "insufficient_scope" with 403 (a token for
// another task), and none otherwise (409 replayed, 503 unavailable: the
// token may be fine; 500 invalid_expect: the service's own mistake).
func ErrorFor(err error, bearer bool) *Error {
	reason := token.ReasonOf(err)
	text, ok := reasonText[reason]
	if !ok {
		return internalError(err)
	}
	e := &Error{Status: statusFor(reason), Code: string(reason), Title: text[0], Detail: text[1], Internal: err}
	if bearer {
		e.Challenge = bearerChallenge(e.Status, e.Code)
	}
	return e
}

// bearerChallenge is the RFC 6750 §3 WWW-Authenticate value for a refusal
// with status, or "" when the status calls for none.
func bearerChallenge(status int, code string) string {
	var name string
	switch status {
	case http.StatusUnauthorized:
		name = "invalid_token"
	case http.StatusBadRequest:
		name = "invalid_request"
	case http.StatusForbidden:
		name = "insufficient_scope"
	default:
		return ""
	}
	return fmt.Sprintf(`Bearer error=%q, error_description=%q`, name, code)
}

func internalError(err error) *Error {
	return &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Title: "Something went wrong.", Detail: "Try again later.", Internal: err}
}

func errTokenInURL() *Error {
	return &Error{Status: http.StatusBadRequest, Code: CodeTokenInURL,
		Title:  "Handoff tokens must be sent by form POST, never in a link.",
		Detail: "Start the task again from the service that sent you here. The link you followed should be discarded."}
}

func errMissingToken() *Error {
	return &Error{Status: http.StatusUnauthorized, Code: CodeMissingToken,
		Title: "A bearer token is required.", Detail: "Send the handoff token in an Authorization: Bearer header.",
		Challenge: "Bearer"}
}
