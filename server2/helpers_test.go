package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/broker"
	"github.com/handoffbroker/handoff/broker/keys"
	"github.com/handoffbroker/handoff/broker/revocation"
	"github.com/handoffbroker/handoff/broker/token"
	"github.com/handoffbroker/handoff/shared"
	"github.com/stretchr/testify/require"
)

const testAudience = "http://payments.test"

// demoParams are the parameters of the contract's demo transfer.
var demoParams = map[string]string{"amount": "250.00", "currency": "EUR", "payee": "ACME Corp"}

// fakeClock is a settable clock shared by the issuer and the app.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Now().Truncate(time.Second)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testIssuer is a real issuer: a keyring, a minter, and an HTTP server
// publishing its JWKS and handoff configuration.
type testIssuer struct {
	URL     string
	JWKSURL string
	keyring *keys.Keyring
	minter  *token.Minter
	srv     *httptest.Server

	mu     sync.Mutex
	minted []string
	// jwksDown makes the JWKS endpoint answer 503.
	jwksDown bool
	// revocations, once set by enableRevocations, is published at
	// /revocations and advertised in the metadata.
	revocations *revocation.State
	publisher   *revocation.Publisher
	now         func() time.Time
}

func newIssuer(t testing.TB, now func() time.Time) *testIssuer {
	t.Helper()
	kr, err := keys.NewEphemeral(token.EdDSA)
	require.NoError(t, err)
	is := &testIssuer{keyring: kr}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, _ *http.Request) {
		is.mu.Lock()
		down := is.jwksDown
		is.mu.Unlock()
		if down {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		b, err := kr.JWKS()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(b)
	})
	mux.HandleFunc("GET "+broker.MetadataPath, func(w http.ResponseWriter, _ *http.Request) {
		md := map[string]any{
			"issuer":                        is.URL,
			"jwks_uri":                      is.JWKSURL,
			"token_types_supported":         []string{token.HandoffTokenType},
			"signing_alg_values_supported":  []string{"EdDSA", "ES256"},
			"handoff_endpoints":             map[string]string{testAudience: testAudience + "/handoff"},
			"an_extension_servers_may_skip": true,
		}
		if is.revocationPublisher() != nil {
			md["revocation_endpoint"] = is.URL + "/revocations"
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(md)
	})
	mux.HandleFunc("GET /revocations", func(w http.ResponseWriter, r *http.Request) {
		pub := is.revocationPublisher()
		if pub == nil {
			http.NotFound(w, r)
			return
		}
		tok, etag, err := pub.Current()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("ETag", etag)
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Content-Type", token.RevocationListMediaType)
		_, _ = io.WriteString(w, tok)
	})
	is.srv = httptest.NewServer(mux)
	t.Cleanup(is.srv.Close)
	is.URL = is.srv.URL
	is.JWKSURL = is.srv.URL + "/.well-known/jwks.json"
	is.minter = newMinter(t, is.URL, kr, now)
	is.now = now
	return is
}

// enableRevocations makes the issuer publish a signed revocation list and
// advertise it, and returns the state to revoke in.
func (is *testIssuer) enableRevocations(t testing.TB) *revocation.State {
	t.Helper()
	state, err := revocation.NewState(revocation.StateConfig{Now: is.now})
	require.NoError(t, err)
	pub, err := revocation.NewPublisher(state, is.minter, 0)
	require.NoError(t, err)
	is.mu.Lock()
	defer is.mu.Unlock()
	is.revocations, is.publisher = state, pub
	return state
}

func (is *testIssuer) revocationPublisher() *revocation.Publisher {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.publisher
}

func newMinter(t testing.TB, issuer string, kr *keys.Keyring, now func() time.Time) *token.Minter {
	t.Helper()
	m, err := token.NewMinter(token.MinterConfig{Issuer: issuer, Keys: kr, Now: now})
	require.NoError(t, err)
	return m
}

// demoRequest is the contract's "approve transfer-123" handoff for alice.
func demoRequest() token.MintRequest {
	return token.MintRequest{
		Subject:  "alice",
		Audience: testAudience,
		Task:     token.Task{ID: "transfer-123", Action: "approve", Params: demoParams},
	}
}

// mint signs req and remembers the token, so tests can check it never
// leaks.
func (is *testIssuer) mint(t testing.TB, req token.MintRequest) string {
	t.Helper()
	return is.mintWith(t, is.minter, req)
}

func (is *testIssuer) mintWith(t testing.TB, m *token.Minter, req token.MintRequest) string {
	t.Helper()
	return is.mintFull(t, m, req).Token
}

// mintFull signs req with m and returns the token with its facts.
func (is *testIssuer) mintFull(t testing.TB, m *token.Minter, req token.MintRequest) token.Minted {
	t.Helper()
	got, err := m.Mint(req)
	require.NoError(t, err)
	is.mu.Lock()
	is.minted = append(is.minted, got.Token)
	is.mu.Unlock()
	return got
}

func (is *testIssuer) tokens() []string {
	is.mu.Lock()
	defer is.mu.Unlock()
	return append([]string(nil), is.minted...)
}

func (is *testIssuer) setJWKSDown(down bool) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.jwksDown = down
}

// syncBuffer collects log output written from handler goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testApp is SERVER2 under httptest, with its issuer, clock and logs.
type testApp struct {
	t      testing.TB
	app    *App
	srv    *httptest.Server
	issuer *testIssuer
	clock  *fakeClock
	logs   *syncBuffer
}

// newTestApp starts SERVER2 trusting a fresh issuer, with its JWKS URL
// configured and revocation off (newRevocationApp turns it on). edit may
// change the config and options before the app is built. At cleanup it
// checks that no token the issuer minted appears in any log line.
func newTestApp(t testing.TB, edit func(*Config, *Options)) *testApp {
	t.Helper()
	clock := newClock()
	is := newIssuer(t, clock.Now)
	logs := &syncBuffer{}
	cfg := DefaultConfig()
	cfg.Audience = testAudience
	cfg.TrustedIssuer = is.URL
	cfg.JWKSURL = is.JWKSURL
	cfg.RevocationURL = RevocationOff
	opts := Options{
		Logger:         shared.NewLogger(logs, "server2", slog.LevelDebug),
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
		out := logs.String()
		for _, tok := range is.tokens() {
			if strings.Contains(out, tok) || strings.Contains(out, signature(tok)) {
				t.Errorf("a token appears in the logs:\n%s", out)
			}
		}
	})
	return ta
}

// signature returns the token's signature segment: unique to the token, so
// finding it anywhere means the token leaked, even cut up.
func signature(tok string) string {
	return tok[strings.LastIndexByte(tok, '.')+1:]
}

// browser is an HTTP client with its own cookie jar that does not follow
// redirects.
type browser struct {
	ta     *testApp
	client *http.Client
}

func (ta *testApp) newBrowser() *browser {
	ta.t.Helper()
	jar, err := cookiejar.New(nil)
	require.NoError(ta.t, err)
	return &browser{ta: ta, client: &http.Client{
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// response is a finished exchange with its body read.
type response struct {
	*http.Response
	Body string
}

// do sends req and checks that no minted token is echoed in any response
// header.
func (b *browser) do(req *http.Request) response {
	t := b.ta.t
	t.Helper()
	resp, err := b.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	for name, values := range resp.Header {
		for _, v := range values {
			for _, tok := range b.ta.issuer.tokens() {
				if strings.Contains(v, signature(tok)) {
					t.Errorf("response header %s carries a token", name)
				}
			}
		}
	}
	return response{Response: resp, Body: string(body)}
}

func (b *browser) get(path string) response {
	b.ta.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.ta.srv.URL+path, nil)
	require.NoError(b.ta.t, err)
	return b.do(req)
}

func (b *browser) postForm(path string, form url.Values) response {
	b.ta.t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.ta.srv.URL+path, strings.NewReader(form.Encode()))
	require.NoError(b.ta.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// handoff posts token to /handoff as the issuer's auto-submit form does.
func (b *browser) handoff(tok string) response {
	b.ta.t.Helper()
	return b.postForm("/handoff", url.Values{"token": {tok}})
}

// callAPI calls the task API with an optional bearer token and a body.
func (b *browser) callAPI(path, authorization, body string) response {
	b.ta.t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.ta.srv.URL+path, strings.NewReader(body))
	require.NoError(b.ta.t, err)
	req.Header.Set("Content-Type", "application/json")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	return b.do(req)
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

// failingReplay is a replay store that cannot answer: a fault injector
// standing in for a store that is down.
type failingReplay struct{}

var errStoreDown = errors.New("replay store down")

func (failingReplay) Consume(context.Context, string, time.Time) error { return errStoreDown }

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
