package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/handoffbroker/handoff/broker/token"
)

// DefaultMaxFormBytes is the largest handoff form body HandoffHandler
// reads by default: a token is at most token.DefaultMaxTokenSize.
const DefaultMaxFormBytes = 16 << 10

// anyTask is what the browser handoff expects: any task, because the
// application shows the task to the user for confirmation instead.
var anyTask = token.Expect{AnyTask: true}

// ErrorFunc renders a refusal. The handlers of this package call it for
// every request they refuse, before anything is written.
type ErrorFunc func(w http.ResponseWriter, r *http.Request, e *Error)

// HandoffConfig configures HandoffHandler.
type HandoffConfig struct {
	// Open opens the application's own session for the verified claims
	// and writes the response (typically a 303 redirect to the task). It
	// runs once per token: the token is consumed by then. An error it
	// returns is rendered by Error (an *Error as it is, any other as a 500).
	// Required.
	Open func(w http.ResponseWriter, r *http.Request, c *token.Claims) error
	// Admit, when set, runs before the token is verified: an error refuses
	// the handoff with the token untouched, so it still works on a retry
	// (for example when there is no room for another session). It returns
	// the request Open gets, whose context may carry what Admit reserved,
	// and a release function (or nil) run once the handoff is over.
	// Default: every request is admitted.
	Admit func(w http.ResponseWriter, r *http.Request) (*http.Request, func(), error)
	// MaxFormBytes bounds the form body read. Default DefaultMaxFormBytes.
	MaxFormBytes int64
	// Error renders refusals. Default: logged to Config.Logger, then
	// WriteError.
	Error ErrorFunc
}

// HandoffHandler returns the handler of the browser's handoff endpoint:
// the issuer's auto-submitting form POSTs the token in the form field
// "token". It verifies and consumes the token, then calls cfg.Open with
// its claims. A GET or HEAD, or a POST with a "token" query parameter, is
// refused as token_in_url: a token in a URL lands in browser history,
// proxy and server logs and Referer headers, where anyone who finds it can
// replay it before its owner does. The query string is never read further,
// logged or echoed.
//
// With Config.Binding BindingRequired (the default), a POST whose Origin
// is present and not one of the issuer's handoff_origins, or is "null",
// is refused as wrong_origin before the token is read; and the token's
// "nonce" must match one of the binding secrets (cookies StartHandler set,
// at most 16 read) the browser presents, else unbound_handoff, the token
// not consumed. On success the matching cookie is deleted. This stops
// login CSRF: a token minted for someone else's browser opens nothing here.
//
// The form is cross-site by design, so it carries no CSRF token: the
// signed, single-use, audience-bound (and browser-bound) token is the
// proof of intent. The
// application should show the task (the claims name it) and act only
// after a confirmation of its own, so a forced handoff into someone else's
// task does nothing unseen.
//
// HandoffHandler panics if cfg.Open is nil.
func (rp *RelyingParty) HandoffHandler(cfg HandoffConfig) http.Handler {
	if cfg.Open == nil {
		panic("broker: HandoffHandler needs an Open function")
	}
	if cfg.MaxFormBytes <= 0 {
		cfg.MaxFormBytes = DefaultMaxFormBytes
	}
	fail := rp.orDefault(cfg.Error)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			fail(w, r, errTokenInURL())
			return
		case http.MethodPost:
		default:
			w.Header().Set("Allow", "POST")
			fail(w, r, &Error{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed", Title: "A one-time pass is sent by form POST.",
				APIDetail: "POST the token in the form field \"token\"; for API calls use the Bearer routes."})
			return
		}
		if r.URL.Query().Has("token") {
			fail(w, r, errTokenInURL())
			return
		}
		bound := rp.cfg.Binding == BindingRequired
		if bound {
			if e := rp.checkOrigin(r); e != nil {
				fail(w, r, e)
				return
			}
		}
		r.Body = http.MaxBytesReader(w, r.Body, cfg.MaxFormBytes)
		if err := readPostForm(r, cfg.MaxFormBytes); err != nil {
			fail(w, r, &Error{Status: http.StatusBadRequest, Code: CodeInvalidRequest, Title: "Your one-time pass could not be read.",
				Detail: startAgain, APITitle: "The handoff form could not be read.",
				APIDetail: fmt.Sprintf("POST an application/x-www-form-urlencoded body of at most %d bytes with the token in the field \"token\".", cfg.MaxFormBytes), Internal: err})
			return
		}
		tok := r.PostForm.Get("token")
		if cfg.Admit != nil {
			admitted, release, err := cfg.Admit(w, r)
			if err != nil {
				fail(w, r, asError(err))
				return
			}
			if release != nil {
				defer release()
			}
			r = admitted
		}
		want := anyTask
		var presented []presentedBinding
		if bound {
			presented = presentedBindings(r)
			b := &token.Binding{}
			for _, p := range presented {
				b.Nonces = append(b.Nonces, p.nonce)
			}
			want.Binding = b
		}
		v, err := rp.Verify(r.Context(), tok, want)
		if err != nil {
			e := ErrorFor(err, false)
			if token.ReasonOf(err) == token.ReasonUnboundHandoff {
				e.Retry = rp.issuerHome()
			}
			fail(w, r, e)
			return
		}
		c := v.Claims()
		for _, p := range presented {
			if p.nonce == c.Nonce {
				// Single use: the secret goes with the token it bound.
				http.SetCookie(w, &http.Cookie{Name: p.cookie.Name, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: true, SameSite: http.SameSiteNoneMode})
			}
		}
		if err := cfg.Open(w, r, &c); err != nil {
			fail(w, r, asError(err))
		}
	})
}

// formContentType is the Content-Type of an HTML form POST.
const formContentType = "application/x-www-form-urlencoded"

// readPostForm fills r.PostForm from a form body of at most max bytes,
// which r.Body (a MaxBytesReader of max) enforces. For the exact
// Content-Type browsers send, it reads the body into one buffer sized from
// Content-Length and parses it with url.ParseQuery, as r.ParseForm would,
// without ParseForm's media-type parse, growing reads and copy into
// r.Form. Any other Content-Type (parameters included) or a request with a
// query string goes to r.ParseForm, so a query that does not parse still
// refuses the handoff.
func readPostForm(r *http.Request, max int64) error {
	if r.Header.Get("Content-Type") != formContentType || r.URL.RawQuery != "" || r.Body == nil || r.Body == http.NoBody {
		return r.ParseForm()
	}
	n := r.ContentLength
	if n < 0 || n > max {
		n = 512
	}
	b := make([]byte, 0, n+1)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		m, err := r.Body.Read(b[len(b):cap(b)])
		b = b[:len(b)+m]
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	form, err := parseForm(string(b))
	if err != nil {
		return err
	}
	r.PostForm = form
	return nil
}

// maxQuickFormFields bounds the fields parseForm splits itself; a form
// with more goes to url.ParseQuery, and its limit on fields.
const maxQuickFormFields = 16

// parseForm is url.ParseQuery(body), quicker for the common body with
// nothing escaped (a token is base64url and dots): without '%', '+' or ';'
// every name and value stands for itself and ParseQuery cannot fail, so
// the pairs are split without unescaping each byte. Any other body, or one
// of more than maxQuickFormFields fields, goes to url.ParseQuery.
func parseForm(body string) (url.Values, error) {
	if strings.IndexByte(body, '%') >= 0 || strings.IndexByte(body, '+') >= 0 || strings.IndexByte(body, ';') >= 0 ||
		strings.Count(body, "&") >= maxQuickFormFields {
		return url.ParseQuery(body)
	}
	form := url.Values{}
	for body != "" {
		var pair string
		pair, body, _ = strings.Cut(body, "&")
		if pair == "" {
			continue
		}
		name, value, _ := strings.Cut(pair, "=")
		form[name] = append(form[name], value)
	}
	return form, nil
}

// Middleware returns middleware for Bearer-protected routes (RFC 6750
// §2.1: the Authorization header only; a token in the query string is
// refused as token_in_url). It verifies and consumes the token and passes
// the request on with the claims in its context (ClaimsFromContext).
//
// expect says what each request's token must allow, usually the task the
// route names; it is required, and an error it returns refuses the request
// without consuming the token (an *Error as it is, any other as 400
// invalid_request). A zero token.Expect states nothing and is refused as
// 500 invalid_expect, the token untouched. A missing credential is 401 missing_token with
// WWW-Authenticate: Bearer; a rejected token carries the RFC 6750 §3 error
// its status calls for (see ErrorFor). onError renders refusals; nil is
// the default of HandoffConfig.Error.
//
// Middleware panics if expect is nil.
func (rp *RelyingParty) Middleware(expect func(*http.Request) (token.Expect, error), onError ErrorFunc) func(http.Handler) http.Handler {
	if expect == nil {
		panic("broker: Middleware needs an expect function")
	}
	fail := rp.orDefault(onError)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if q := r.URL.Query(); q.Has("access_token") || q.Has("token") {
				e := errTokenInURL()
				e.Challenge = bearerChallenge(e.Status, e.Code)
				fail(w, r, e)
				return
			}
			tok, ok := bearerToken(r.Header.Get("Authorization"))
			if !ok {
				fail(w, r, errMissingToken())
				return
			}
			want, err := expect(r)
			if err != nil {
				var e *Error
				if !errors.As(err, &e) {
					e = &Error{Status: http.StatusBadRequest, Code: CodeInvalidRequest, Title: "The request could not be read.", Internal: err}
				}
				if e.Challenge == "" {
					e.Challenge = bearerChallenge(e.Status, e.Code)
				}
				fail(w, r, e)
				return
			}
			v, err := rp.Verify(r.Context(), tok, want)
			if err != nil {
				fail(w, r, ErrorFor(err, true))
				return
			}
			c := v.Claims()
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), claimsKey{}, &c)))
		})
	}
}

type claimsKey struct{}

// ClaimsFromContext returns the verified claims Middleware put in a
// request's context.
func ClaimsFromContext(ctx context.Context) (*token.Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(*token.Claims)
	return c, ok
}

// bearerToken extracts the RFC 6750 §2.1 credential.
func bearerToken(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return internalError(err)
}

// orDefault is f, or the default ErrorFunc: log, then WriteError.
func (rp *RelyingParty) orDefault(f ErrorFunc) ErrorFunc {
	if f != nil {
		return f
	}
	return func(w http.ResponseWriter, r *http.Request, e *Error) {
		level := slog.LevelInfo
		if e.Status >= 500 {
			level = slog.LevelError
		}
		attrs := []any{"status", e.Status, "code", e.Code, "method", r.Method, "path", r.URL.Path}
		if e.Internal != nil {
			attrs = append(attrs, "error", e.Internal.Error())
		}
		rp.log.Log(r.Context(), level, "request refused", attrs...)
		WriteError(w, r, e)
	}
}

// ProblemTypeBase prefixes the "type" URI of every problem: one per code,
// documented in docs/PROTOCOL.md.
const ProblemTypeBase = "https://handoffbroker.github.io/problems/"

// Problem is the RFC 9457 problem details body of a refusal, with the
// reason code and, where the server has one, the request's correlation id
// as extension members.
type Problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail,omitempty"`
	Code      string `json:"code"`
	RequestID string `json:"request_id,omitempty"`
}

// Problem returns e's public parts as a problem details body, worded for
// the developer calling the API (APITitle and APIDetail, or Title and
// Detail where e has none): its type is ProblemTypeBase + Code. Internal
// is never in it.
func (e *Error) Problem() Problem {
	title, detail := e.Title, e.Detail
	if e.APITitle != "" {
		title = e.APITitle
	}
	if e.APIDetail != "" {
		detail = e.APIDetail
	}
	return Problem{Type: ProblemTypeBase + e.Code, Title: title, Status: e.Status, Detail: detail, Code: e.Code}
}

var errorPage = template.Must(template.New("error").Parse(`<!doctype html>
<html lang="en"><meta charset="utf-8"><title>{{.Title}}</title>
<h1>{{.Title}}</h1>
{{if .Detail}}<p>{{.Detail}}</p>{{end}}
{{if .Retry}}<p><a id="retry" href="{{.Retry}}">Start again</a></p>{{end}}
<p>Reason: <code id="reason">{{.Code}}</code></p>
</html>
`))

// WriteError writes e: its challenge, Cache-Control: no-store, and an
// RFC 9457 problem+json body, or a small HTML page when the client asks
// for HTML (a browser). Internal is never written.
func WriteError(w http.ResponseWriter, r *http.Request, e *Error) {
	h := w.Header()
	if e.Challenge != "" {
		h.Set("WWW-Authenticate", e.Challenge)
	}
	h.Set("Cache-Control", "no-store")
	if strings.Contains(r.Header.Get("Accept"), "html") {
		h.Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(e.Status)
		if r.Method != http.MethodHead {
			_ = errorPage.Execute(w, e)
		}
		return
	}
	h.Set("Content-Type", "application/problem+json")
	w.WriteHeader(e.Status)
	if r.Method != http.MethodHead {
		_ = json.NewEncoder(w).Encode(e.Problem())
	}
}
