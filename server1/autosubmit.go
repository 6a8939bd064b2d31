package main

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// Markers stand for the token and the CSP nonce when an audience's page is
// rendered at startup. They are letters and digits only, which
// html/template prints unchanged in any context, so each shows where its
// value goes.
const (
	tokenMarker = "HandoffTokenMarker7f3c0d"
	nonceMarker = "HandoffNonceMarker7f3c0d"
)

// autosubmitPage is one audience's auto-submit page, rendered once through
// html/template (autosubmit.html, with every value it prints escaped for
// its context) and cut at the two places that change per response: the
// token, in the value attribute of a hidden input, and the CSP nonce, in
// the script's nonce attribute. write puts only values made of characters
// html/template would print unchanged in those attributes there, so the
// response is the page the template would render, byte for byte, without
// running it per request. What the shared layout prints ({{service}},
// {{portal}}) is fixed at startup with it: SERVER1 sets no portal.
type autosubmitPage struct {
	// beforeToken, beforeNonce and rest are the page around the token and
	// the nonce, in that order.
	beforeToken, beforeNonce, rest string
	// cspHead and cspTail are the Content-Security-Policy around the
	// nonce.
	cspHead, cspTail string
}

// autosubmitData is what autosubmit.html prints.
type autosubmitData struct {
	Action       string
	Token        string
	Nonce        string
	AudienceName string
}

// newAutosubmitPages renders every audience's page with r.
func newAutosubmitPages(r echo.Renderer, reg *registry) (map[string]*autosubmitPage, error) {
	pages := make(map[string]*autosubmitPage, len(reg.list))
	for _, aud := range reg.list {
		p, err := newAutosubmitPage(r, aud)
		if err != nil {
			return nil, fmt.Errorf("audience %q: auto-submit page: %w", aud.ID, err)
		}
		pages[aud.ID] = p
	}
	return pages, nil
}

func newAutosubmitPage(r echo.Renderer, aud audience) (*autosubmitPage, error) {
	var buf bytes.Buffer
	err := r.Render(&buf, "autosubmit.html", autosubmitData{
		Action: aud.HandoffURL, Token: tokenMarker, Nonce: nonceMarker, AudienceName: aud.Name,
	}, nil)
	if err != nil {
		return nil, err
	}
	page := buf.String()
	if strings.Count(page, tokenMarker) != 1 || strings.Count(page, nonceMarker) != 1 {
		return nil, errors.New("the rendered page must hold the token and the nonce exactly once each")
	}
	beforeToken, afterToken, _ := strings.Cut(page, tokenMarker)
	beforeNonce, rest, found := strings.Cut(afterToken, nonceMarker)
	if !found {
		return nil, errors.New("the rendered page must hold the token before the nonce")
	}
	// Only this response's script may run, and the form may go only to the
	// audience: an injected script or form cannot carry the token elsewhere.
	return &autosubmitPage{
		beforeToken: beforeToken, beforeNonce: beforeNonce, rest: rest,
		cspHead: "default-src 'none'; script-src 'nonce-",
		cspTail: "'; style-src 'self'; form-action " + aud.origin() + "; frame-ancestors 'none'; base-uri 'none'",
	}, nil
}

// errUnsafePageValue is a token or nonce with a character the page's
// attributes would need escaped. Minted tokens and nonces never have one;
// refusing it keeps the page from ever holding markup it did not render.
var errUnsafePageValue = errors.New("auto-submit page: token or nonce has a character outside base64url and '.'")

// Header values of the page. Like shared's security headers, each is a
// one-element slice at full capacity that nothing writes in place.
var (
	noStore      = []string{"no-store"}
	strictOrigin = []string{"strict-origin"}
)

// write answers with the page for token and nonce.
func (p *autosubmitPage) write(c echo.Context, token, nonce string) error {
	if !pageSafe(token) || !pageSafe(nonce) {
		return errUnsafePageValue
	}
	h := c.Response().Header()
	h["Content-Security-Policy"] = []string{p.cspHead + nonce + p.cspTail}
	// The page holds a bearer token: never store it. strict-origin sends
	// the relying service the origin only, never the URL; no-referrer would
	// make Chromium send "Origin: null" with the POST, which a bound
	// relying service refuses (wrong_origin).
	h["Cache-Control"] = noStore
	h["Referrer-Policy"] = strictOrigin
	body := make([]byte, 0, len(p.beforeToken)+len(token)+len(p.beforeNonce)+len(nonce)+len(p.rest))
	body = append(body, p.beforeToken...)
	body = append(body, token...)
	body = append(body, p.beforeNonce...)
	body = append(body, nonce...)
	body = append(body, p.rest...)
	return c.HTMLBlob(http.StatusOK, body)
}

// pageSafe reports whether s is non-empty and only base64url characters
// and '.' (a compact JWS, a base64url nonce): none of them is escaped by
// html/template in a quoted attribute value, or can end one.
func pageSafe(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !pageSafeByte[s[i]] {
			return false
		}
	}
	return true
}

// pageSafeByte is pageSafe for one byte, as a table: a token is about 700
// bytes, checked on every page.
var pageSafeByte = func() (t [256]bool) {
	for b := range t {
		t[b] = 'A' <= b && b <= 'Z' || 'a' <= b && b <= 'z' || '0' <= b && b <= '9' || b == '-' || b == '_' || b == '.'
	}
	return t
}()
