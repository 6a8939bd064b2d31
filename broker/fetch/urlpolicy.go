package fetch

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// maxRedirects caps the redirects a fetch follows (redirect loops).
const maxRedirects = 3

// maxURLInError caps how much of a refused URL an error repeats: a URL from
// an issuer's metadata can be long, and errors end up in logs.
const maxURLInError = 256

// URLReason is a stable, machine-readable code saying why a Policy
// refused a URL. Like Reason, the codes are part of the documented
// protocol (docs/PROTOCOL.md) and never change meaning.
type URLReason string

// The reasons a Policy refuses a URL.
const (
	// URLInvalid: not an absolute http or https URL with a host.
	URLInvalid URLReason = "url_invalid"
	// URLCredentials: the URL carries a user name or password, which would
	// end up in logs and error messages.
	URLCredentials URLReason = "url_credentials"
	// URLNotHTTPS: an http URL where https is required: the issuer is
	// https, or a redirect leaves an https URL.
	URLNotHTTPS URLReason = "url_not_https"
	// URLOtherHost: a host that is neither the issuer's nor allowed.
	URLOtherHost URLReason = "url_other_host"
	// URLTooManyRedirects: the fetch was redirected more than 3 times.
	URLTooManyRedirects URLReason = "url_too_many_redirects"
)

// URLError is a URL a Policy refused. Fetches wrap it (through
// *url.Error for redirects), so errors.As finds it in their errors.
type URLError struct {
	Reason URLReason
	// URL is the refused URL without its user information, cut to 256
	// bytes; "" when it does not parse.
	URL string
	// Detail says which rule refused it, for logs.
	Detail string
}

func (e *URLError) Error() string {
	msg := "broker: url policy: " + string(e.Reason)
	if e.URL != "" {
		msg += ": " + e.URL
	}
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// Is reports whether target is a *URLError with the same Reason, so that
// errors.Is(err, &fetch.URLError{Reason: fetch.URLNotHTTPS}) works.
func (e *URLError) Is(target error) bool {
	t, ok := target.(*URLError)
	return ok && t.Reason == e.Reason && t.URL == "" && t.Detail == ""
}

// URLReasonOf returns the URLReason carried by err, or "" when err is not
// (and does not wrap) a *URLError.
func URLReasonOf(err error) URLReason {
	var e *URLError
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

// PolicyConfig configures a Policy.
type PolicyConfig struct {
	// Issuer is the URL of the issuer whose documents are fetched: absolute
	// http or https, without credentials. Required.
	Issuer string
	// AllowedHosts are hosts besides the issuer's that URLs may name, each
	// "name" (the scheme's default port) or "name:port". Default none.
	AllowedHosts []string
}

// Policy is the one rule for every URL a relying service fetches an
// issuer's documents from (its metadata, its JWK Set, its revocation list),
// configured or discovered, and for every redirect on the way. A URL must be
// absolute http or https without credentials; https when the issuer is
// https; and on the issuer's host (same name and port, a default port
// written or not) or one of AllowedHosts. Redirects must pass the same
// check, may not leave https once a hop was https, and are capped at 3.
//
// It stops a downgrade: metadata or a redirect naming http:// for an https
// issuer would let anyone on the path substitute the keys, or hold
// revocations back by answering 304 or with an older list. It keeps fetches
// on hosts the operator chose: a document pointing the verifier at another
// host, an internal one included, is refused (SSRF).
//
// A Policy is immutable and safe for concurrent use.
type Policy struct {
	issuer    string
	httpsOnly bool
	host      string
	allowed   map[string]bool
}

// NewPolicy validates cfg, reporting every problem at once.
func NewPolicy(cfg PolicyConfig) (*Policy, error) {
	var errs []error
	p := &Policy{issuer: cfg.Issuer, allowed: make(map[string]bool)}
	if cfg.Issuer == "" {
		errs = append(errs, errors.New("field Issuer is required"))
	} else if u, err := parseFetchURL(cfg.Issuer); err != nil {
		errs = append(errs, fmt.Errorf("field Issuer: %w", err))
	} else {
		p.httpsOnly = u.Scheme == "https"
		p.host = hostKey(u)
	}
	for _, h := range cfg.AllowedHosts {
		if !validHost(h) {
			errs = append(errs, fmt.Errorf("field AllowedHosts: %q is not a host name or name:port", h))
			continue
		}
		p.allowed[strings.ToLower(h)] = true
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("broker: url policy config: %w", err)
	}
	return p, nil
}

// Issuer returns the issuer URL the policy was built for.
func (p *Policy) Issuer() string { return p.issuer }

// Check reports whether raw may be fetched. A refusal is a *URLError.
func (p *Policy) Check(raw string) error {
	u, err := parseFetchURL(raw)
	if err != nil {
		return err
	}
	return p.check(u)
}

func (p *Policy) check(u *url.URL) error {
	if p.httpsOnly && u.Scheme != "https" {
		return urlError(URLNotHTTPS, u, "the issuer is https, so every fetch must be")
	}
	if hostKey(u) == p.host {
		return nil
	}
	if p.allowed[hostKey(u)] || p.allowed[hostPort(u)] {
		return nil
	}
	return urlError(URLOtherHost, u, "neither the issuer's host nor an allowed one")
}

// Client returns a copy of base (of a zero client when base is nil) whose
// redirects follow the policy before base's own CheckRedirect, if any.
func (p *Policy) Client(base *http.Client) *http.Client {
	var c http.Client
	if base != nil {
		c = *base
	}
	next := c.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if err := p.checkRedirect(req.URL, via); err != nil {
			return err
		}
		if next != nil {
			return next(req, via)
		}
		return nil
	}
	return &c
}

func (p *Policy) checkRedirect(to *url.URL, via []*http.Request) error {
	if len(via) > maxRedirects {
		return urlError(URLTooManyRedirects, to, fmt.Sprintf("stopped after %d redirects", maxRedirects))
	}
	if err := checkShape(to); err != nil {
		return err
	}
	if to.Scheme != "https" {
		for _, prev := range via {
			if prev.URL.Scheme == "https" {
				return urlError(URLNotHTTPS, to, "a redirect from https to http")
			}
		}
	}
	return p.check(to)
}

// policyFor returns the policy a Fetcher of raw applies: p after checking
// raw with it, or, when p is nil, the policy of an issuer at raw, so
// redirects stay on raw's host and never leave https. Errors name the
// field "URL", for a fetcher's Config.
func policyFor(p *Policy, raw string) (*Policy, error) {
	if raw == "" {
		return nil, errors.New("field URL is required")
	}
	if p != nil {
		if err := p.Check(raw); err != nil {
			return nil, fmt.Errorf("field URL: %w", err)
		}
		return p, nil
	}
	u, err := parseFetchURL(raw)
	if err != nil {
		return nil, fmt.Errorf("field URL: %w", err)
	}
	return &Policy{issuer: raw, httpsOnly: u.Scheme == "https", host: hostKey(u)}, nil
}

// CheckURL reports whether raw has the shape every fetched URL needs:
// absolute http or https, with a host, without credentials. A Policy
// checks this first; use the policy where the issuer is known. A refusal is
// a *URLError.
func CheckURL(raw string) error {
	_, err := parseFetchURL(raw)
	return err
}

// parseFetchURL parses raw as an absolute http or https URL with a host and
// without credentials. A URL that does not parse is never repeated: it may
// hold a password.
func parseFetchURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, &URLError{Reason: URLInvalid, Detail: "not a URL"}
	}
	if err := checkShape(u); err != nil {
		return nil, err
	}
	return u, nil
}

func checkShape(u *url.URL) error {
	if u.User != nil {
		return urlError(URLCredentials, u, "credentials in a URL end up in logs")
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return urlError(URLInvalid, u, "not an absolute http or https URL")
	}
	return nil
}

func urlError(reason URLReason, u *url.URL, detail string) *URLError {
	shown := *u
	shown.User = nil
	s := shown.String()
	if len(s) > maxURLInError {
		s = s[:maxURLInError] + "..."
	}
	return &URLError{Reason: reason, URL: s, Detail: detail}
}

// hostKey is u's host in lower case, without the scheme's default port.
func hostKey(u *url.URL) string {
	name, port := strings.ToLower(u.Hostname()), u.Port()
	if port == "" || port == defaultPort(u.Scheme) {
		if strings.Contains(name, ":") {
			return "[" + name + "]"
		}
		return name
	}
	return net.JoinHostPort(name, port)
}

// hostPort is u's host in lower case with its port, written or default.
func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = defaultPort(u.Scheme)
	}
	return net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

func defaultPort(scheme string) string {
	if scheme == "https" {
		return "443"
	}
	return "80"
}

// validHost reports whether h is a host name (or IP literal, IPv6 in
// brackets) with an optional numeric port, and nothing else.
func validHost(h string) bool {
	u, err := url.Parse("//" + h)
	if err != nil || u.Host != h || u.User != nil || u.Path != "" || u.Hostname() == "" {
		return false
	}
	if port := u.Port(); port != "" {
		n, err := strconv.Atoi(port)
		return err == nil && n > 0 && n < 65536
	}
	return !strings.HasSuffix(h, ":")
}
