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
	// Detail is public advice: what the user can do.
	Detail string
	// APITitle and APIDetail are Title and Detail written for the
	// developer calling the API: what was wrong with the request and what
	// to send instead. Problem uses them; when empty, Title and Detail.
	APITitle, APIDetail string
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

// words is the public wording of a refusal: for the browser user (title,
// detail) and for the developer calling the API (apiTitle, apiDetail: what
// to send instead).
type words struct{ title, detail, apiTitle, apiDetail string }

// Browser wording calls the token a "one-time pass", the name the issuer's
// pages give it; developer wording calls it a token.
const (
	startAgain = "Start the task again from the service that sent you here."
	mintAgain  = "Ask the issuer for a new token and send it unmodified, as the issuer returned it."
)

// reasonText is the public wording for each token reason: what happened,
// in plain words, and what to do about it.
var reasonText = map[token.Reason]words{
	token.ReasonInvalidExpect: {"This service could not check your one-time pass.", "Nothing was changed. Try again later; if it keeps happening, contact support.",
		"The service could not check the token.", "The service asked the verifier nothing (its own fault, not the request's); the token was not used. Report the request_id to the service's operators."},
	token.ReasonTooLarge: {"This one-time pass is too large.", startAgain,
		"The token is larger than this service accepts.", "Send only the compact JWS the issuer returned (a few hundred bytes), without anything around it."},
	token.ReasonMalformed: {"This one-time pass is damaged or incomplete.", startAgain,
		"The token is not a compact JWS.", "Send the token exactly as the issuer returned it, as \"Authorization: Bearer <token>\": no quotes, no whitespace inside, no URL encoding."},
	token.ReasonUnsupportedAlg: {"This one-time pass is signed in a way this service does not accept.", "Start the task again; if it keeps happening, contact support.",
		"The token's alg is not accepted.", "Only the issuer's algorithms (EdDSA, ES256) are accepted: use a token the issuer minted."},
	token.ReasonBadType: {"This is not a one-time pass for this service.", startAgain,
		"The token's typ is not handoff+jwt.", "Send a handoff token the issuer minted (typ handoff+jwt), not an ID token, access token or revocation list."},
	token.ReasonBadHeader: {"This one-time pass is not acceptable.", startAgain,
		"The token's JOSE header is not acceptable.", mintAgain + " The header must not carry keys, key URLs or critical extensions."},
	token.ReasonUnknownKey: {"This one-time pass was signed with a key this service does not know.", "Start the task again; if it keeps happening, contact support.",
		"The token's kid names no key the issuer publishes.", "Mint the token with a key the issuer's JWKS publishes; right after a rotation, retry in a few seconds."},
	token.ReasonBadSignature: {"This one-time pass is not genuine.", startAgain,
		"The token's signature does not verify.", mintAgain},
	token.ReasonMissingClaim: {"This one-time pass is missing required information.", startAgain,
		"The token lacks a required claim.", "Mint the token with the issuer: iss, sub, aud, exp, iat, jti and task are required."},
	token.ReasonInvalidClaim: {"This one-time pass holds invalid information.", startAgain,
		"A claim of the token is invalid.", mintAgain},
	token.ReasonWrongIssuer: {"This one-time pass comes from a service this one does not trust.", "Start the task from the right service.",
		"The token's iss is not the issuer this service trusts.", "Ask the trusted issuer (its discovery document names it) for the token."},
	token.ReasonWrongAudience: {"This one-time pass is meant for a different service.", "Start the task again and choose this service.",
		"The token's aud is another service.", "Ask the issuer for a token whose audience is this service's identifier."},
	token.ReasonExpired: {"This one-time pass has expired.", "Start the task again from the service that sent you here: a one-time pass works for about a minute.",
		"The token has expired.", "Ask the issuer for a new token and use it at once: tokens live about a minute."},
	token.ReasonNotYetValid: {"This one-time pass is not valid yet.", "Check that your device's clock is right, then try again.",
		"The token's nbf is in the future.", "Send the token once it is valid, or check that the issuer's and this service's clocks agree."},
	token.ReasonIssuedInFuture: {"This one-time pass was issued in the future.", "The two services' clocks disagree; try again in a minute or contact support.",
		"The token's iat is in the future.", "The issuer's clock is ahead of this service's beyond the leeway: synchronise the clocks (NTP), then mint a new token."},
	token.ReasonLifetimeTooLong: {"This one-time pass lasts longer than this service allows.", "Start the task again; if it keeps happening, contact support.",
		"The token's lifetime (exp - iat) is longer than this service accepts.", "Mint the token with a shorter lifetime."},
	token.ReasonTaskMismatch: {"This one-time pass is for a different task.", "Start this task again from the service that sent you here.",
		"The token allows a different task.", "Call the route of the task and action the token was minted for, with the parameters it was minted with as the JSON body, or ask the issuer for a token for this task."},
	token.ReasonWrongSubject: {"This was meant for another user.", "Nothing was changed. Sign in as the user who started the task, or start it again.",
		"The token's sub is another user.", "Send the token as the user it was minted for (its sub); ask the issuer for a token for this user."},
	token.ReasonUnboundHandoff: {"This one-time pass was made for another browser, or has expired.", "Nothing was changed. Start the task again from this browser.",
		"The token is bound to a browser.", "A token with a nonce works only in the browser holding the binding cookie: ask the issuer for a token without one for API calls."},
	token.ReasonRevoked: {"This one-time pass was withdrawn.", "Sign in again and start the task again.",
		"The token was revoked.", "The issuer withdrew the token, its signing key or its subject: ask the issuer for a new token."},
	token.ReasonIssuedBeforeRestart: {"This one-time pass was made before this service restarted.", startAgain,
		"The token predates this service's restart.", "This service cannot tell whether it was used before: ask the issuer for a new token."},
	token.ReasonReplayed: {"This one-time pass was already used.", "Each one-time pass works once. Start the task again from the service that sent you here if you need to.",
		"The token was already used.", "Tokens are single use: ask the issuer for a new token for each call."},
	token.ReasonUnavailable: {"This service cannot check one-time passes right now.", "Nothing was changed. Try again in a moment.",
		"The service cannot check tokens right now.", "A dependency (the issuer's keys, the revocation list or the replay store) is unavailable. Retry in a moment; if the token expires meanwhile, ask the issuer for a new one."},
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
	e := &Error{Status: statusFor(reason), Code: string(reason), Title: text.title, Detail: text.detail,
		APITitle: text.apiTitle, APIDetail: text.apiDetail, Internal: err}
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
	return &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Title: "Something went wrong.", Detail: "Try again later.",
		APIDetail: "The service failed (its fault, not the request's). Retry later; if it persists, report the request_id to the service's operators.", Internal: err}
}

func errTokenInURL() *Error {
	return &Error{Status: http.StatusBadRequest, Code: CodeTokenInURL,
		Title:     "A one-time pass must never travel in a web address.",
		Detail:    "Start the task again from the service that sent you here, and discard the address you followed.",
		APITitle:  "The token was sent in the URL.",
		APIDetail: "Send the token only as \"Authorization: Bearer <token>\" (or in the handoff form's POST body), never in the query string; URLs end up in logs, so ask the issuer for a new token."}
}

func errMissingToken() *Error {
	return &Error{Status: http.StatusUnauthorized, Code: CodeMissingToken,
		Title: "A bearer token is required.", Detail: "Send the handoff token in an Authorization: Bearer header.",
		Challenge: "Bearer"}
}
