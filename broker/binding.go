package broker

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/handoffbroker/handoff/broker/token"
)

// Binding says whether the browser handoff endpoint requires tokens bound
// to the browser that posts them (docs/PROTOCOL.md, Browser binding).
type Binding string

const (
	// BindingRequired: HandoffHandler accepts a token only when the
	// browser presents the binding secret whose digest is the token's
	// "nonce" (set by StartHandler), and only from the issuer's origins.
	BindingRequired Binding = "required"
	// BindingOff: HandoffHandler accepts unbound tokens, for an issuer
	// without binding support. Any page can then post a token for its own
	// user into a visitor's browser and open a session there (login CSRF,
	// session swapping).
	BindingOff Binding = "off"
)

// DefaultBindingTTL is how long a binding secret set by StartHandler
// lives: about a handoff token's lifetime, plus the hops around it.
const DefaultBindingTTL = 2 * time.Minute

// Binding cookie names: the prefix, then 16 random lowercase hex digits,
// so parallel handoffs (tabs) each keep their own secret. Over https the
// name carries the __Host- prefix, which browsers honour only with Secure,
// Path=/ and no Domain: no other host can plant or overwrite it.
const (
	bindingCookiePrefix       = "s2bind-"
	secureBindingCookiePrefix = "__Host-s2bind-"
	bindingSecretBytes        = 32
	maxBindingCookies         = 16
	maxStartTaskID            = 128
)

// StartHandler returns the handler of the browser's handoff start
// endpoint, GET /handoff/start?task_id=<id>: SERVER1's "Continue" link
// leads here. It sets a fresh random binding secret on the browser in a
// cookie of its own and redirects (303) to the issuer's
// bound_handoff_endpoint with this service's audience, the task id and the
// secret's digest as "nonce" (token.BindingNonce), so the issuer mints a
// token only this browser can use. Reaching it cross-site is harmless: it
// only sets a secret and redirects to the issuer, which mints for its own
// signed-in user alone.
//
// A missing or over-long task_id is 400 invalid_request; an issuer whose
// metadata is not known yet, or names no bound_handoff_endpoint, is 503
// unavailable. onError renders refusals; nil is the default of
// HandoffConfig.Error.
func (rp *RelyingParty) StartHandler(onError ErrorFunc) http.Handler {
	fail := rp.orDefault(onError)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			fail(w, r, &Error{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed", Title: "Tasks start from the service that sent you here.",
				APIDetail: "GET /handoff/start?task_id=... in the browser, as the issuer's Continue link does."})
			return
		}
		taskID := r.URL.Query().Get("task_id")
		if taskID == "" || len(taskID) > maxStartTaskID {
			fail(w, r, &Error{Status: http.StatusBadRequest, Code: CodeInvalidRequest, Title: "This address names no valid task.",
				Detail: startAgain, APIDetail: fmt.Sprintf("Send the task's id in the task_id query parameter, at most %d bytes.", maxStartTaskID)})
			return
		}
		md, err := rp.handoffMetadata(r.Context())
		if err == nil && md.BoundHandoffEndpoint == "" {
			err = fmt.Errorf("the issuer's handoff configuration has no bound_handoff_endpoint")
		}
		if err != nil {
			fail(w, r, &Error{Status: http.StatusServiceUnavailable, Code: string(token.ReasonUnavailable),
				Title: "This service cannot take tasks over right now.", Detail: "Nothing was changed. Try again in a moment.",
				APIDetail: "The issuer's handoff configuration (bound_handoff_endpoint) is not known yet. Retry in a moment.", Internal: err})
			return
		}
		secret := make([]byte, bindingSecretBytes)
		id := make([]byte, 8)
		_, err = io.ReadFull(rp.cfg.Rand, secret)
		if err == nil {
			_, err = io.ReadFull(rp.cfg.Rand, id)
		}
		if err != nil {
			fail(w, r, internalError(fmt.Errorf("binding secret: %w", err)))
			return
		}
		secure := rp.secureCookies(r)
		http.SetCookie(w, bindingCookie(secure, hex.EncodeToString(id), base64.RawURLEncoding.EncodeToString(secret), int(rp.cfg.BindingTTL/time.Second)))
		q := url.Values{"audience": {rp.cfg.Audience}, "task_id": {taskID}, "nonce": {token.BindingNonce(secret)}}
		sep := "?"
		if strings.Contains(md.BoundHandoffEndpoint, "?") {
			sep = "&"
		}
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Location", md.BoundHandoffEndpoint+sep+q.Encode())
		w.WriteHeader(http.StatusSeeOther)
	})
}

// bindingCookie is the binding cookie id with value; maxAge 0 deletes it.
// SameSite=None because the issuer's form POST is cross-site (a Lax cookie
// would not be sent with it); Secure because SameSite=None requires it
// (Chromium treats http://localhost and 127.0.0.0/8 as secure contexts).
func bindingCookie(secure bool, id, value string, maxAge int) *http.Cookie {
	name := bindingCookiePrefix + id
	if secure {
		name = secureBindingCookiePrefix + id
	}
	if maxAge <= 0 {
		maxAge = -1
	}
	return &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true, Secure: true, SameSite: http.SameSiteNoneMode}
}

// secureCookies reports whether the binding cookie takes the __Host-
// prefix: this service is reached over https (its audience is an https
// URL, or the request came over TLS).
func (rp *RelyingParty) secureCookies(r *http.Request) bool {
	return r.TLS != nil || strings.HasPrefix(rp.cfg.Audience, "https://")
}

// presentedBinding is a binding secret a request carried.
type presentedBinding struct {
	cookie *http.Cookie
	nonce  string
}

// presentedBindings returns the binding secrets r carries, at most
// maxBindingCookies of them (more are ignored: they cannot help an
// attacker, who has none of the right ones), each with its nonce.
func presentedBindings(r *http.Request) []presentedBinding {
	var out []presentedBinding
	for _, c := range r.Cookies() {
		if !strings.HasPrefix(c.Name, bindingCookiePrefix) && !strings.HasPrefix(c.Name, secureBindingCookiePrefix) {
			continue
		}
		secret, err := base64.RawURLEncoding.DecodeString(c.Value)
		if err != nil || len(secret) != bindingSecretBytes {
			continue
		}
		out = append(out, presentedBinding{cookie: c, nonce: token.BindingNonce(secret)})
		if len(out) == maxBindingCookies {
			break
		}
	}
	return out
}

// checkOrigin refuses a handoff POST whose Origin is present and not one
// the issuer posts from, or is "null" (an opaque origin: a sandboxed frame,
// a data: URL, a no-referrer page). It stops a token being posted from a
// third site; the binding stops the rest.
func (rp *RelyingParty) checkOrigin(r *http.Request) *Error {
	origin, ok := r.Header["Origin"]
	if !ok {
		return nil
	}
	if len(origin) == 1 && origin[0] != "null" {
		for _, allowed := range rp.handoffOrigins() {
			if origin[0] == allowed {
				return nil
			}
		}
	}
	return &Error{Status: http.StatusForbidden, Code: CodeWrongOrigin,
		Title:     "This one-time pass was sent from a page that is not allowed to send it.",
		Detail:    "Nothing was changed. Start the task again from the service you were using.",
		APIDetail: "Only the issuer's auto-submit page (its handoff_origins) may post handoffs; send no Origin header, or one of those origins.",
		Retry:     rp.issuerHome(), Internal: fmt.Errorf("origin %q is not one of the issuer's handoff origins", strings.Join(origin, ", "))}
}

// handoffOrigins are the origins allowed to post handoffs: the issuer's
// handoff_origins when its metadata is known and names some, else the
// issuer's own origin.
func (rp *RelyingParty) handoffOrigins() []string {
	if md := rp.metadata.Load(); md != nil && len(md.HandoffOrigins) > 0 {
		return md.HandoffOrigins
	}
	return []string{originOf(rp.cfg.Issuer)}
}

// issuerHome is where a refused browser handoff sends the user to start
// again: the issuer's origin.
func (rp *RelyingParty) issuerHome() string { return originOf(rp.cfg.Issuer) + "/" }

func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// handoffMetadata returns the issuer's metadata: with Config.BoundHandoffURL
// set, that URL; else the one discovery found, or, where discovery did not
// run (keys and list configured), fetched now.
func (rp *RelyingParty) handoffMetadata(ctx context.Context) (Metadata, error) {
	if rp.cfg.BoundHandoffURL != "" {
		md := Metadata{BoundHandoffEndpoint: rp.cfg.BoundHandoffURL}
		if held := rp.metadata.Load(); held != nil {
			md.HandoffOrigins = held.HandoffOrigins
		}
		return md, nil
	}
	if md := rp.metadata.Load(); md != nil {
		return *md, nil
	}
	md, err := Discover(ctx, rp.policy, rp.client())
	if err != nil {
		return Metadata{}, err
	}
	rp.metadata.CompareAndSwap(nil, &md)
	return md, nil
}
