package main

import (
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/broker/brokertest"
	"github.com/handoffbroker/handoff/broker/revocation"
	"github.com/handoffbroker/handoff/broker/token"
	"github.com/handoffbroker/handoff/shared"
	"github.com/handoffbroker/handoff/shared/sharedtest"
	"github.com/stretchr/testify/require"
)

const testAudience = "http://payments.test"

// demoParams are the parameters of the contract's demo transfer.
var demoParams = map[string]string{"amount": "250.00", "currency": "EUR", "payee": "ACME Corp"}

// startIssuer starts a test issuer on now that hands off to testAudience,
// with an extension member in its handoff configuration and its revocation
// list unpublished (enableRevocations publishes it).
func startIssuer(t testing.TB, now func() time.Time) *brokertest.Issuer {
	t.Helper()
	return brokertest.StartIssuer(t,
		brokertest.WithNow(now),
		brokertest.WithoutRevocations(),
		brokertest.WithHandoffEndpoint(testAudience, testAudience+"/handoff"),
		brokertest.WithDiscovery(func(doc map[string]any) { doc["an_extension_servers_may_skip"] = true }))
}

// enableRevocations makes the issuer publish its signed revocation list and
// advertise it, and returns the state to revoke in.
func enableRevocations(is *brokertest.Issuer) *revocation.State {
	is.PublishRevocations(true)
	return is.Revocations()
}

// testBindingSecret is the binding secret every test browser presents
// (handoff sends it as SERVER2's start endpoint would have set it), and
// testNonce the "nonce" of tokens bound to it.
var (
	testBindingSecret = []byte("server2-test-binding-secret-0001")
	testNonce         = token.BindingNonce(testBindingSecret)
)

// bindingCookie is the binding cookie of a browser that started a
// handoff with secret.
func bindingCookie(secret []byte) *http.Cookie {
	return &http.Cookie{Name: "s2bind-0123456789abcdef", Value: base64.RawURLEncoding.EncodeToString(secret)}
}

// demoRequest is the contract's "approve transfer-123" handoff for alice,
// bound to testBindingSecret.
func demoRequest() token.MintRequest {
	return token.MintRequest{
		Subject:  "alice",
		Audience: testAudience,
		Nonce:    testNonce,
		Task:     token.Task{ID: "transfer-123", Action: "approve", Params: demoParams},
	}
}

// testApp is SERVER2 under httptest, with its issuer, clock and logs.
type testApp struct {
	t      testing.TB
	app    *App
	srv    *httptest.Server
	issuer *brokertest.Issuer
	clock  *brokertest.Clock
	logs   *sharedtest.Buffer
}

// newTestApp starts SERVER2 trusting a fresh issuer, with its JWKS URL
// configured and revocation off (newRevocationApp turns it on). edit may
// change the config and options before the app is built. At cleanup it
// checks that no token the issuer minted appears in any log line.
func newTestApp(t testing.TB, edit func(*Config, *Options)) *testApp {
	t.Helper()
	clock := brokertest.NewClock(time.Now().Truncate(time.Second))
	is := startIssuer(t, clock.Now)
	logs := &sharedtest.Buffer{}
	cfg := DefaultConfig()
	cfg.Audience = testAudience
	cfg.TrustedIssuer = is.URL
	cfg.JWKSURL = is.JWKSURL
	cfg.RevocationURL = RevocationOff
	opts := Options{
		Logger:         shared.NewLogger(logs, "server2", slog.LevelDebug, shared.LogJSON),
		Now:            clock.Now,
		DiscoveryRetry: 10 * time.Millisecond,
	}
	if edit != nil {
		edit(&cfg, &opts)
	}
	app, err := NewApp(cfg, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = app.Close() })
	srv := httptest.NewServer(app.Handler())
	t.Cleanup(srv.Close)
	// The memory replay store refuses tokens issued before it started:
	// move past its start second before anything is minted.
	clock.Advance(5 * time.Second)
	ta := &testApp{t: t, app: app, srv: srv, issuer: is, clock: clock, logs: logs}
	t.Cleanup(func() {
		if out := logs.String(); is.Leaked(out) {
			t.Errorf("a token appears in the logs:\n%s", out)
		}
	})
	return ta
}

// signature returns the token's signature segment: unique to the token, so
// finding it anywhere means the token leaked, even cut up.
func signature(tok string) string {
	return tok[strings.LastIndexByte(tok, '.')+1:]
}

// browser is a sharedtest.Browser on the app that checks no minted token
// is echoed in any response header.
type browser struct {
	*sharedtest.Browser
	ta *testApp
}

func (ta *testApp) newBrowser() *browser {
	ta.t.Helper()
	b := &browser{Browser: sharedtest.NewBrowser(ta.t, ta.srv.URL), ta: ta}
	b.Check = func(t testing.TB, r response) {
		for name, values := range r.Header {
			for _, v := range values {
				if ta.issuer.Leaked(v) {
					t.Errorf("response header %s carries a token", name)
				}
			}
		}
	}
	return b
}

// response is a finished exchange with its body read.
type response = sharedtest.Response

// handoff posts token to /handoff as the issuer's auto-submit form does,
// from a browser holding testBindingSecret.
func (b *browser) handoff(tok string) response {
	b.ta.t.Helper()
	return b.PostForm("/handoff", url.Values{"token": {tok}}, http.Header{"Cookie": {bindingCookie(testBindingSecret).String()}})
}

// sessionCookie is the value of the session cookie the browser sends to
// task id's page, "" if none.
func (b *browser) sessionCookie(id string) string {
	u, err := url.Parse(b.URL + sessionPath(id))
	require.NoError(b.ta.t, err)
	for _, c := range b.Client.Jar.Cookies(u) {
		if c.Name == SessionCookie {
			return c.Value
		}
	}
	return ""
}

// callAPI calls the task API with an optional bearer token and a body.
func (b *browser) callAPI(path, authorization, body string) response {
	b.ta.t.Helper()
	header := http.Header{}
	if authorization != "" {
		header.Set("Authorization", authorization)
	}
	return b.PostJSON(path, body, header)
}

var (
	reasonRE = regexp.MustCompile(`<code id="reason">([^<]*)</code>`)
	csrfRE   = regexp.MustCompile(`name="_csrf" value="([^"]+)"`)
)

// pageReason returns the reason code shown on an HTML error page.
func pageReason(t testing.TB, r response) string {
	t.Helper()
	require.Contains(t, r.Header.Get("Content-Type"), "text/html")
	m := reasonRE.FindStringSubmatch(r.Body)
	require.NotNil(t, m, "no reason code on the page:\n%s", r.Body)
	return m[1]
}

// csrfField returns the CSRF token of the task page's form.
func csrfField(t testing.TB, r response) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(r.Body)
	require.NotNil(t, m, "no CSRF field on the page:\n%s", r.Body)
	return m[1]
}

// problem decodes an RFC 9457 body after checking its content type.
func problem(t testing.TB, r response) shared.Problem {
	t.Helper()
	require.Equal(t, "application/problem+json", r.Header.Get("Content-Type"))
	var p shared.Problem
	require.NoError(t, json.Unmarshal([]byte(r.Body), &p))
	require.NotEmpty(t, p.Type)
	require.NotEmpty(t, p.Title)
	require.Equal(t, r.StatusCode, p.Status)
	require.NotEmpty(t, p.Code)
	return p
}

// closedURL returns the URL of a server that is no longer listening.
// useClosedJWKSURL points c at a JWKS URL where nothing listens, on a host
// the fetch policy allows.
func useClosedJWKSURL(t testing.TB, c *Config) {
	t.Helper()
	u := closedURL(t)
	c.JWKSURL = u + "/.well-known/jwks.json"
	c.FetchAllowedHosts = append(c.FetchAllowedHosts, strings.TrimPrefix(u, "http://"))
}

func closedURL(t testing.TB) string {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL
	srv.Close()
	return u
}
