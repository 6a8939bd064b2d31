package brokertest

import (
	"cmp"
	"crypto/x509"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/handoffbroker/handoff/broker/keys"
	"github.com/handoffbroker/handoff/broker/revocation"
	"github.com/handoffbroker/handoff/broker/token"
)

// DisplayName is the display_name of an Issuer's handoff configuration;
// its homepage_uri is the Issuer's URL with the path "/".
const DisplayName = "Test Portal"

// The paths an Issuer serves, below its URL: the same as SERVER1's.
const (
	JWKSPath      = "/.well-known/jwks.json"
	DiscoveryPath = "/.well-known/handoff-configuration"
	// BoundHandoffPath is the bound_handoff_endpoint the issuer
	// advertises. It serves nothing: tests mint bound tokens with
	// MintRequest.Nonce instead.
	BoundHandoffPath = "/handoffs/bound"
	RevocationsPath  = "/revocations"
)

// CacheControl is the Cache-Control an Issuer sends with its key set and
// its handoff configuration.
const CacheControl = "public, max-age=300"

// KeyRevocationTTL is how long RevokeKey lists a key: the longest a relying
// service keeps a key set it cannot refresh (SERVER2's jwks-max-stale), as
// `server1 keys revoke` does.
const KeyRevocationTTL = 24 * time.Hour

// Issuer is a handoff token issuer under httptest: a keyring, a minter, a
// revocation state and the HTTP endpoints SERVER1 serves over them. Build
// one with StartIssuer; its methods are safe for concurrent use and fail
// the test they are given on any error.
type Issuer struct {
	// URL is the issuer identifier, the "iss" of every token and list it
	// signs: the server's URL, unless WithIssuer named another.
	URL string
	// JWKSURL serves the published keys as a JWK Set (RFC 7517 §5).
	JWKSURL string
	// DiscoveryURL serves the handoff configuration.
	DiscoveryURL string
	// RevocationURL serves the signed revocation list, while published.
	RevocationURL string

	srv       *httptest.Server
	now       func() time.Time
	keyring   *keys.Keyring
	minter    *token.Minter
	state     *revocation.State
	publisher *revocation.Publisher
	endpoints map[string]string
	discovery []func(map[string]any)

	mu        sync.Mutex
	minted    []string
	down      map[string]bool
	published bool
}

type options struct {
	issuer    string
	now       func() time.Time
	alg       token.Algorithm
	tls       bool
	endpoints map[string]string
	discovery []func(map[string]any)
	published bool
	listTTL   time.Duration
}

// T is the part of testing.TB the kit uses: *testing.T, *testing.B and
// *testing.F satisfy it. A method given a T fails it with Fatalf on any
// error.
type T interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// Option configures StartIssuer.
type Option func(*options)

// WithIssuer makes id the issuer identifier instead of the server's URL,
// for an issuer whose documents are served from elsewhere (a mirror, a
// proxy in front of Handler). The endpoints stay on the server.
func WithIssuer(id string) Option { return func(o *options) { o.issuer = id } }

// WithNow makes the issuer read the time from now (a Clock's Now) when it
// mints, signs lists, revokes and rotates. Default time.Now.
func WithNow(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithAlgorithm makes the issuer's first key, and the replacements
// ReplaceKey generates, use alg. Default token.EdDSA.
func WithAlgorithm(alg token.Algorithm) Option { return func(o *options) { o.alg = alg } }

// WithTLS serves the issuer over https, with httptest's certificate: talk to
// it through Issuer.Client, or trust Issuer.Certificate. Default http.
func WithTLS() Option { return func(o *options) { o.tls = true } }

// WithHandoffEndpoint lists url as the handoff endpoint of audience in the
// handoff configuration's "handoff_endpoints". Default: none listed.
func WithHandoffEndpoint(audience, url string) Option {
	return func(o *options) { o.endpoints[audience] = url }
}

// WithDiscovery lets edit change the handoff configuration before each
// response: add a member, drop one, point one elsewhere. Edits run in the
// order given.
func WithDiscovery(edit func(doc map[string]any)) Option {
	return func(o *options) { o.discovery = append(o.discovery, edit) }
}

// WithoutRevocations starts the issuer with its revocation list
// unpublished: the handoff configuration names no revocation_endpoint and
// RevocationsPath answers 404 until PublishRevocations(true). Revoke
// methods still record entries. Default: published, as SERVER1 does.
func WithoutRevocations() Option { return func(o *options) { o.published = false } }

// WithRevocationListTTL sets the signed list's lifetime. Default
// token.DefaultRevocationListTTL.
func WithRevocationListTTL(ttl time.Duration) Option { return func(o *options) { o.listTTL = ttl } }

// StartIssuer starts an issuer with one current key and an empty revocation
// list, and stops it when the test ends.
func StartIssuer(t T, opts ...Option) *Issuer {
	t.Helper()
	o := options{now: time.Now, alg: token.EdDSA, endpoints: map[string]string{}, published: true}
	for _, opt := range opts {
		opt(&o)
	}
	dir, err := os.MkdirTemp("", "brokertest-keys-")
	if err != nil {
		t.Fatalf("brokertest: key directory: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	ring, err := keys.Open(keys.KeyringConfig{Dir: dir, Now: o.now})
	if err != nil {
		t.Fatalf("brokertest: open keyring: %v", err)
	}
	if _, err := ring.Generate(o.alg, time.Time{}); err != nil {
		t.Fatalf("brokertest: generate key: %v", err)
	}
	is := &Issuer{
		now: o.now, keyring: ring, endpoints: o.endpoints, discovery: o.discovery,
		down: map[string]bool{}, published: o.published,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+JWKSPath, is.serveJWKS)
	mux.HandleFunc("GET "+DiscoveryPath, is.serveDiscovery)
	mux.HandleFunc("GET "+RevocationsPath, is.serveRevocations)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if is.isDown(r.URL.Path) {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		mux.ServeHTTP(w, r)
	})
	if o.tls {
		is.srv = httptest.NewTLSServer(handler)
	} else {
		is.srv = httptest.NewServer(handler)
	}
	t.Cleanup(is.srv.Close)
	is.URL = cmp.Or(o.issuer, is.srv.URL)
	is.JWKSURL = is.srv.URL + JWKSPath
	is.DiscoveryURL = is.srv.URL + DiscoveryPath
	is.RevocationURL = is.srv.URL + RevocationsPath
	is.minter = is.NewMinter(t, nil)
	if is.state, err = revocation.NewState(revocation.StateConfig{Now: o.now}); err != nil {
		t.Fatalf("brokertest: revocation state: %v", err)
	}
	if is.publisher, err = revocation.NewPublisher(is.state, is.minter, o.listTTL); err != nil {
		t.Fatalf("brokertest: revocation publisher: %v", err)
	}
	return is
}

// Handler returns the issuer's endpoints as one handler, to serve the same
// documents from another host (a mirror, a second name) in a test.
func (is *Issuer) Handler() http.Handler { return is.srv.Config.Handler }

// Certificate returns the certificate the issuer serves with WithTLS, nil
// otherwise.
func (is *Issuer) Certificate() *x509.Certificate { return is.srv.Certificate() }

// Client returns an HTTP client that trusts the issuer's certificate when
// it serves https.
func (is *Issuer) Client() *http.Client { return is.srv.Client() }

// Keys returns the issuer's published keys as a token.KeySource, for a
// verifier that needs no HTTP.
func (is *Issuer) Keys() token.KeySource { return is.keyring }

// Keyring returns the issuer's keyring, for what the methods here do not
// cover. Its private keys never leave it.
func (is *Issuer) Keyring() *keys.Keyring { return is.keyring }

// Minter returns the minter Mint uses.
func (is *Issuer) Minter() *token.Minter { return is.minter }

// Revocations returns the state RevocationsPath publishes.
func (is *Issuer) Revocations() *revocation.State { return is.state }

// NewMinter returns a minter with the issuer's settings (its URL as "iss",
// its keyring, its clock) after edit, if not nil, changes them: a minter
// for another issuer name, another key, another clock. Mint tokens from it
// with MintWith so Leaked knows them.
func (is *Issuer) NewMinter(t T, edit func(*token.MinterConfig)) *token.Minter {
	t.Helper()
	cfg := token.MinterConfig{Issuer: is.URL, Keys: is.keyring, Now: is.now}
	if edit != nil {
		edit(&cfg)
	}
	m, err := token.NewMinter(cfg)
	if err != nil {
		t.Fatalf("brokertest: minter: %v", err)
	}
	return m
}

// Mint signs a handoff token for req and returns it.
func (is *Issuer) Mint(t T, req token.MintRequest) string {
	t.Helper()
	return is.MintFull(t, req).Token
}

// MintFull signs a handoff token for req and returns it with its facts
// (jti, kid, expiry), for revoking it or checking what a service logged.
func (is *Issuer) MintFull(t T, req token.MintRequest) token.Minted {
	t.Helper()
	return is.mint(t, is.minter, req)
}

// MintWith signs a handoff token for req with m (from NewMinter) and
// returns it.
func (is *Issuer) MintWith(t T, m *token.Minter, req token.MintRequest) string {
	t.Helper()
	return is.mint(t, m, req).Token
}

func (is *Issuer) mint(t T, m *token.Minter, req token.MintRequest) token.Minted {
	t.Helper()
	got, err := m.Mint(req)
	if err != nil {
		t.Fatalf("brokertest: mint: %v", err)
	}
	is.mu.Lock()
	is.minted = append(is.minted, got.Token)
	is.mu.Unlock()
	return got
}

// Tokens returns every token minted so far, oldest first.
func (is *Issuer) Tokens() []string {
	is.mu.Lock()
	defer is.mu.Unlock()
	return append([]string(nil), is.minted...)
}

// Leaked reports whether s (a log, a page, a header) contains a token this
// issuer minted, whole or only its signature: the signature is unique to
// the token, so finding it means the token leaked even if cut up.
func (is *Issuer) Leaked(s string) bool {
	for _, tok := range is.Tokens() {
		if strings.Contains(s, tok[strings.LastIndexByte(tok, '.')+1:]) {
			return true
		}
	}
	return false
}

// RevokeToken puts the token jti, expiring at exp, on the revocation list.
func (is *Issuer) RevokeToken(t T, jti string, exp time.Time) {
	t.Helper()
	if err := is.state.RevokeToken(jti, exp); err != nil {
		t.Fatalf("brokertest: revoke token: %v", err)
	}
}

// RevokeSubject revokes every token of sub issued until now, the current
// second included ("sign out everywhere"), for as long as such a token can
// live.
func (is *Issuer) RevokeSubject(t T, sub string) {
	t.Helper()
	now := is.now()
	if err := is.state.RevokeSubject(sub, now, now.Add(token.DefaultMaxTTL+token.MaxLeeway)); err != nil {
		t.Fatalf("brokertest: revoke subject: %v", err)
	}
}

// RevokeKey puts the key kid on the revocation list for KeyRevocationTTL:
// verifiers refuse its tokens from their next poll, though the key stays
// published. ReplaceKey also takes it out of the key set.
func (is *Issuer) RevokeKey(t T, kid string) {
	t.Helper()
	if err := is.state.RevokeKey(kid, is.now().Add(KeyRevocationTTL)); err != nil {
		t.Fatalf("brokertest: revoke key: %v", err)
	}
}

// ReplaceKey removes the key kid from the key set at once; when kid signs
// now, an immediately current replacement of the issuer's algorithm takes
// over and is returned (nil otherwise). See keys.Keyring.RevokeAndReplace.
func (is *Issuer) ReplaceKey(t T, kid string) *keys.Info {
	t.Helper()
	alg := token.EdDSA
	for _, k := range is.keyring.Keys() {
		if k.ID == kid {
			alg = k.Algorithm
		}
	}
	info, err := is.keyring.RevokeAndReplace(kid, alg)
	if err != nil {
		t.Fatalf("brokertest: replace key: %v", err)
	}
	return info
}

// Rotate publishes a new key of alg at once and makes it sign publishFor
// later (on the issuer's clock), when the current key retires. See
// keys.Keyring.Rotate.
func (is *Issuer) Rotate(t T, alg token.Algorithm, publishFor time.Duration) keys.Info {
	t.Helper()
	info, err := is.keyring.Rotate(alg, publishFor)
	if err != nil {
		t.Fatalf("brokertest: rotate: %v", err)
	}
	return info
}

// SetDown makes the endpoint at path (JWKSPath, DiscoveryPath or
// RevocationsPath) answer 503 while down is true, like an issuer behind a
// load balancer with no healthy instance.
func (is *Issuer) SetDown(path string, down bool) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.down[path] = down
}

// PublishRevocations publishes the revocation list, or stops publishing it
// (see WithoutRevocations).
func (is *Issuer) PublishRevocations(on bool) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.published = on
}

func (is *Issuer) isDown(path string) bool {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.down[path]
}

func (is *Issuer) revocationsPublished() bool {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.published
}

func (is *Issuer) serveJWKS(w http.ResponseWriter, _ *http.Request) {
	body, err := is.keyring.JWKS()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", CacheControl)
	_, _ = w.Write(body)
}

func (is *Issuer) serveDiscovery(w http.ResponseWriter, _ *http.Request) {
	doc := map[string]any{
		"issuer":                       is.URL,
		"jwks_uri":                     is.JWKSURL,
		"token_types_supported":        []string{token.HandoffTokenType},
		"signing_alg_values_supported": token.Algorithms(),
		"handoff_endpoints":            maps.Clone(is.endpoints),
		"bound_handoff_endpoint":       is.URL + BoundHandoffPath,
		"handoff_origins":              []string{is.URL},
		"display_name":                 DisplayName,
		"homepage_uri":                 is.URL + "/",
	}
	if is.revocationsPublished() {
		doc["revocation_endpoint"] = is.RevocationURL
	}
	for _, edit := range is.discovery {
		edit(doc)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", CacheControl)
	_ = json.NewEncoder(w).Encode(doc)
}

func (is *Issuer) serveRevocations(w http.ResponseWriter, r *http.Request) {
	if !is.revocationsPublished() {
		http.NotFound(w, r)
		return
	}
	tok, etag, err := is.publisher.Current()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("ETag", etag)
	w.Header().Set("Cache-Control", "no-cache")
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", token.RevocationListMediaType)
	_, _ = io.WriteString(w, tok)
}
