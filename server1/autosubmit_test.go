package main

import (
	"bytes"
	"html/template"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/handoffbroker/handoff/shared"
	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAutosubmitPage_SameAsTemplate: the page cut at startup is, byte for
// byte, what html/template renders for the same values, whatever the
// audience's name and URL hold.
func TestAutosubmitPage_SameAsTemplate(t *testing.T) {
	renderer, err := shared.NewRenderer(`Portal <"&'>`, templateFS, "templates/*.html")
	require.NoError(t, err)
	tests := []struct {
		name     string
		giveAud  audience
		giveTok  string
		giveNonc string
	}{
		{
			name:    "ok/plain",
			giveAud: audience{ID: payments, Name: "Payments", HandoffURL: paymentsURL},
			giveTok: "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl", giveNonc: "AbCdEfGhIjKlMnOpQrStUv",
		},
		{
			name:    "ok/markup_in_name_and_url",
			giveAud: audience{ID: "urn:x", Name: `<script>alert("x")</script> & 'co'`, HandoffURL: `https://rp.example/in?a=1&b="<x>"#'f'`},
			giveTok: "a.b.c", giveNonc: "-_09azAZ",
		},
		{
			name:    "ok/javascript_url_is_filtered_as_before",
			giveAud: audience{ID: "urn:y", Name: "Y", HandoffURL: "javascript:alert(1)"},
			giveTok: "x.y.z", giveNonc: "n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want bytes.Buffer
			require.NoError(t, renderer.Render(&want, "autosubmit.html", autosubmitData{
				Action: tt.giveAud.HandoffURL, Token: tt.giveTok, Nonce: tt.giveNonc, AudienceName: tt.giveAud.Name,
			}, nil))
			p, err := newAutosubmitPage(renderer, tt.giveAud)
			require.NoError(t, err)

			rec := httptest.NewRecorder()
			c := echo.New().NewContext(httptest.NewRequest(http.MethodPost, "/handoffs", nil), rec)
			require.NoError(t, p.write(c, tt.giveTok, tt.giveNonc))

			assert.Equal(t, want.String(), rec.Body.String())
			assert.Equal(t, http.StatusOK, rec.Code)
			assert.Equal(t, echo.MIMETextHTMLCharsetUTF8, rec.Header().Get("Content-Type"))
			assert.Equal(t, "default-src 'none'; script-src 'nonce-"+tt.giveNonc+"'; style-src 'self'; form-action "+
				tt.giveAud.origin()+"; frame-ancestors 'none'; base-uri 'none'", rec.Header().Get("Content-Security-Policy"))
			assert.Equal(t, "no-store", rec.Header().Get("Cache-Control"))
			assert.Equal(t, "strict-origin", rec.Header().Get("Referrer-Policy"))
		})
	}
}

// TestAutosubmitPage_RefusesUnsafeValues: a token or nonce that would need
// escaping in its attribute (or could end it) is never written into the
// page: the request fails closed with nothing sent.
func TestAutosubmitPage_RefusesUnsafeValues(t *testing.T) {
	renderer, err := shared.NewRenderer("Portal", templateFS, "templates/*.html")
	require.NoError(t, err)
	p, err := newAutosubmitPage(renderer, audience{ID: payments, Name: "Payments", HandoffURL: paymentsURL})
	require.NoError(t, err)
	tests := []struct {
		name      string
		giveToken string
		giveNonce string
	}{
		{name: "fail/quote_in_token", giveToken: `a.b.c"><script>x()</script>`, giveNonce: "n"},
		{name: "fail/space_in_token", giveToken: "a.b c", giveNonce: "n"},
		{name: "fail/ampersand_in_token", giveToken: "a.b&amp;c", giveNonce: "n"},
		{name: "fail/empty_token", giveToken: "", giveNonce: "n"},
		{name: "fail/quote_in_nonce", giveToken: "a.b.c", giveNonce: `n" onload="x()`},
		{name: "fail/non_ascii_nonce", giveToken: "a.b.c", giveNonce: "nö"},
		{name: "fail/empty_nonce", giveToken: "a.b.c", giveNonce: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			c := echo.New().NewContext(httptest.NewRequest(http.MethodPost, "/handoffs", nil), rec)
			assert.ErrorIs(t, p.write(c, tt.giveToken, tt.giveNonce), errUnsafePageValue)
			assert.Empty(t, rec.Body.String())
			assert.Empty(t, rec.Header().Get("Content-Security-Policy"))
		})
	}
}

// TestAutosubmitPage_MarkerInName: an audience whose name holds a marker
// cannot be cut unambiguously, so SERVER1 refuses to start with it.
func TestAutosubmitPage_MarkerInName(t *testing.T) {
	cfg := testConfig(t)
	cfg.AudiencesFile = writeFile(t, "audiences.json",
		`[{"audience":"urn:example:p","name":"P `+tokenMarker+`","handoff_url":"https://p.example/handoff"}]`)
	_, err := newApp(cfg, options{})
	assert.ErrorContains(t, err, "auto-submit page")
}

// TestPageSafe: exactly the base64url alphabet and '.' may go into the
// page unescaped, and html/template leaves each of them as it is.
func TestPageSafe(t *testing.T) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
	for b := range 256 {
		s := string([]byte{byte(b)})
		want := strings.Contains(alphabet, s)
		assert.Equal(t, want, pageSafe(s), "byte %#x", b)
		if want {
			assert.Equal(t, s, template.HTMLEscapeString(s), "byte %#x", b)
		}
	}
	assert.False(t, pageSafe(""))
	assert.True(t, pageSafe("eyJhbGciOiJFZERTQSJ9.e30.c2ln"))
}
