package broker

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/handoffbroker/handoff/broker/fetch"
	"github.com/handoffbroker/handoff/broker/keys"
	"github.com/handoffbroker/handoff/broker/revocation"
	"github.com/handoffbroker/handoff/broker/token"
)

// RevocationOff as Config.RevocationURL turns revocation checks off:
// revoked tokens, signed-out subjects and revoked keys are then accepted
// until the tokens expire or the key leaves the JWKS.
const RevocationOff = "off"

// ErrRevocationOff is what the "revocations" readiness check returns when
// Config.RevocationURL is RevocationOff: not a failure, but a choice that
// should show wherever readiness is watched. Ready ignores it.
var ErrRevocationOff = errors.New("revocation checks are turned off by configuration")

const (
	defaultFetchTimeout   = 5 * time.Second
	defaultDiscoveryRetry = time.Second
	maxDiscoveryRetry     = 30 * time.Second
)

// Config configures a RelyingParty. Issuer and Audience are all most
// services set.
type Config struct {
	// Issuer is the issuer's URL: the only accepted "iss", and where its
	// handoff configuration (MetadataPath) is discovered. Required.
	Issuer string
	// Audience is this service's identifier: tokens must name exactly it
	// in "aud". Required.
	Audience string
	// Replay records used tokens, so each works once. Default: an embedded
	// memory store, which protects one process only and refuses tokens
	// issued before it started; replicas need a shared store (Redis:
	// redisstore.New(redisstore.Config{URL: url})). Close does not close a
	// store passed here.
	Replay token.ReplayStore
	// JWKSURL is the issuer's JWK Set. Default "": the jwks_uri of the
	// issuer's handoff configuration.
	JWKSURL string
	// Keys, when set, are the issuer's keys, used instead of its JWK Set,
	// which is then never fetched (JWKSURL must be empty): for keys pinned
	// by configuration, or a tool checking tokens against a key file. A key
	// the issuer rotates in stays unknown until Keys holds it. Default: the
	// issuer's JWK Set.
	Keys token.KeySource
	// RevocationURL is the issuer's signed revocation list, or
	// RevocationOff. Default "": the revocation_endpoint of the issuer's
	// handoff configuration, which is then required (the relying party
	// stays unready while the issuer advertises none). Required when
	// JWKSURL is set: revocation is never turned off by leaving a setting
	// out.
	RevocationURL string
	// AllowedHosts are hosts besides Issuer's ("name" or "name:port") that
	// the metadata, JWKS and revocation list may be fetched from,
	// configured or discovered, redirects included. Every such URL must
	// also be https when Issuer is. Default none.
	AllowedHosts []string
	// Transport carries every fetch from the issuer, for a private CA or a
	// test server's certificate; the fetch policy still checks every URL
	// and redirect. Default http.DefaultTransport.
	Transport http.RoundTripper
	// FetchTimeout bounds each metadata, JWKS or revocation list fetch.
	// Default 5s.
	FetchTimeout time.Duration
	// Leeway is the tolerated clock skew. Default token.DefaultLeeway, at
	// most token.MaxLeeway.
	Leeway time.Duration
	// MaxTokenLifetime caps exp - iat. Default token.DefaultMaxTTL.
	MaxTokenLifetime time.Duration
	// JWKSMaxStale is how long the last fetched keys stay usable while the
	// issuer is unreachable. Default 24h; at least JWKSMinRefresh.
	JWKSMaxStale time.Duration
	// JWKSCooldown is the least time between refreshes caused by unknown
	// kids. Default 10s.
	JWKSCooldown time.Duration
	// JWKSMinRefresh is the shortest scheduled refresh interval. Default 1m.
	JWKSMinRefresh time.Duration
	// RevocationInterval is the time between polls of the list. Default 5s.
	RevocationInterval time.Duration
	// RevocationMaxStale is how long after the last successful poll the
	// held list is trusted; after it, verification fails closed
	// (unavailable). Default 60s; at least RevocationInterval.
	RevocationMaxStale time.Duration
	// RevocationFailOpen accepts tokens against a stale list (or none)
	// instead of failing closed. It lets whoever can cut this service off
	// from the issuer use revoked tokens. Default false.
	RevocationFailOpen bool
	// RevocationShared receives the revoked jtis learned from each list and
	// is asked about every token, so replicas sharing it agree at once.
	// When it is Replay and Replay implements revocation.ConsumeGuard (as
	// redisstore.Store does), Verify asks it in the consume's own atomic
	// step, one store round trip per token. Default: Replay, when it
	// implements revocation.Sharer; else none.
	RevocationShared revocation.Sharer
	// ExplainOnly builds a relying party for troubleshooting tools (such
	// as `server2 verify`) that explain tokens and must not consume them:
	// it has no replay store (Replay must be nil), so Verify refuses every
	// token as unavailable, and Explain leaves out single use, including
	// the embedded store's refusal of tokens issued before it started. When
	// no fresh revocation list is held, Explain leaves the revocation check
	// out too, instead of failing it, so the other checks still report; a
	// caller tells by the absent token.StepRevocation. Default false.
	ExplainOnly bool
	// DiscoveryRetry is the first wait before retrying a failed metadata
	// fetch; it doubles up to 30s. Default 1s.
	DiscoveryRetry time.Duration
	// OnJWKSFetch, when set, is called after every JWKS fetch with its
	// result (fetch.ResultOK, ...), for metrics. It must return quickly.
	OnJWKSFetch func(result string)
	// OnRevocationFetch, when set, is called after every poll of the list
	// with its result, for metrics and for ending sessions the new list
	// names (HeldRevocation). It must return quickly.
	OnRevocationFetch func(result string)
	// Logger receives discovery progress, the revocation list's polls
	// (each at debug; failures and staleness at warn) and, through the
	// default ErrorFunc, refusals (reason and detail, never a token).
	// Default slog.Default().
	Logger *slog.Logger
	// Binding says whether HandoffHandler requires tokens bound to the
	// browser that posts them (StartHandler sets the secret). Default
	// BindingRequired. BindingOff is for an issuer without binding
	// support: any page can then post a token for its own user into a
	// visitor's browser (login CSRF, session swapping).
	Binding Binding
	// BoundHandoffURL is where StartHandler sends the browser to have a
	// bound token minted. Default "": the bound_handoff_endpoint of the
	// issuer's handoff configuration (fetched on first use when the keys
	// and list are configured rather than discovered). Set it where this
	// service cannot reach the issuer at its public URL.
	BoundHandoffURL string
	// BindingTTL is how long a binding secret lives in the browser.
	// Default DefaultBindingTTL; at most 10m.
	BindingTTL time.Duration
	// Rand is the source of binding secrets. Default crypto/rand.Reader.
	Rand io.Reader
	// Now returns the current time. Default time.Now.
	Now func() time.Time
}

// RelyingParty accepts handoff tokens from one issuer: it discovers the
// issuer's metadata, keeps its keys and revocation list fresh, records
// used tokens, and verifies. It is safe for concurrent use.
type RelyingParty struct {
	cfg         Config
	log         *slog.Logger
	policy      *fetch.Policy
	keys        *issuerKeys
	revocations *issuerRevocations
	replay      token.ReplayStore
	closeReplay func() error
	verifier    *token.Verifier
	// explainer is Explain's verifier: it names a revoked key the issuer
	// no longer publishes. explainerNoList, of an ExplainOnly relying
	// party, leaves revocation out, for when no fresh list is held.
	explainer, explainerNoList *token.Verifier
	// metadata is the issuer's handoff configuration, once discovered.
	metadata atomic.Pointer[Metadata]

	mu     sync.Mutex
	cancel context.CancelFunc // set by Start
	closed bool
}

// Status describes what a RelyingParty holds, for metrics and operators.
type Status struct {
	// JWKSURL and RevocationURL are the URLs in use, configured or
	// discovered; "" until known (RevocationURL also when revocation is off).
	JWKSURL, RevocationURL string
	Keys                   keys.RemoteStatus
	Revocation             revocation.RemoteStatus
}

// NewRelyingParty validates cfg and returns a started RelyingParty: it
// discovers the issuer in the background, retrying until it succeeds, and
// keeps the keys and revocation list fresh until ctx is done or Close is
// called. It does not wait for the network: Ready reports when the first
// keys and list are in.
func NewRelyingParty(ctx context.Context, cfg Config) (*RelyingParty, error) {
	rp, err := New(cfg)
	if err != nil {
		return nil, err
	}
	rp.Start(ctx)
	return rp, nil
}

// New is NewRelyingParty without the start: it touches no network until
// Start. Use it where construction and start-up are separate steps.
func New(cfg Config) (*RelyingParty, error) {
	policy, err := cfg.validate(nil)
	if err != nil {
		return nil, err
	}
	cfg.setDefaults()
	rp := &RelyingParty{
		cfg:         cfg,
		log:         cfg.Logger,
		policy:      policy,
		keys:        &issuerKeys{static: cfg.Keys},
		revocations: &issuerRevocations{failOpen: cfg.RevocationFailOpen},
		replay:      cfg.Replay,
		closeReplay: func() error { return nil },
	}
	switch {
	case cfg.ExplainOnly:
		rp.replay = explainOnlyReplay{}
	case rp.replay == nil:
		s, err := token.NewMemoryReplayStore(token.MemoryReplayConfig{Now: cfg.Now})
		if err != nil {
			return nil, err
		}
		rp.replay, rp.closeReplay = s, s.Close
	}
	if err := rp.build(); err != nil {
		_ = rp.closeReplay()
		return nil, err
	}
	return rp, nil
}

// build sets up the configured key and list sources and the verifiers.
func (rp *RelyingParty) build() error {
	cfg := rp.cfg
	if cfg.JWKSURL != "" {
		rk, err := rp.newRemoteKeys(cfg.JWKSURL)
		if err != nil {
			return err
		}
		rp.keys.remote.Store(rk)
	}
	var revocations token.RevocationChecker = rp.revocations
	switch cfg.RevocationURL {
	case RevocationOff:
		rp.revocations.off.Store(true)
		revocations = nil
		rp.log.Warn("revocation checks are off: revoked tokens, subjects and keys are accepted")
	case "":
		// Discovered in Start or Refresh, with the JWKS URL (validate
		// requires RevocationURL whenever JWKSURL is set).
	default:
		rr, err := rp.newRemoteRevocations(cfg.RevocationURL)
		if err != nil {
			return err
		}
		rp.revocations.remote.Store(rr)
	}
	explainKeys := revokedKeys{keys: rp.keys, list: rp.revocations, issuer: cfg.Issuer}
	consume, verifyRevocations := rp.replay, revocations
	// With a replay store that is also the Sharer (Redis), the shared
	// revocation mark is asked in the consume's own atomic step: one store
	// round trip per handoff instead of two. The held list is still
	// checked first; Explain, which consumes nothing, asks the mark itself.
	if g, ok := rp.replay.(revocation.ConsumeGuard); ok && revocations != nil && sameStore(cfg.RevocationShared, g) {
		consume, verifyRevocations = revocation.GuardedReplay(g), exceptShared{rp.revocations}
	}
	var err error
	if rp.verifier, err = rp.newVerifier(rp.keys, verifyRevocations, consume); err != nil {
		return err
	}
	if rp.explainer, err = rp.newVerifier(explainKeys, revocations, rp.replay); err != nil {
		return err
	}
	if cfg.ExplainOnly {
		rp.explainerNoList, err = rp.newVerifier(explainKeys, nil, rp.replay)
	}
	return err
}

// sameStore reports whether the Sharer and the replay store are one
// value, so that asking the mark in the consume asks the same store.
func sameStore(shared revocation.Sharer, g revocation.ConsumeGuard) bool {
	if shared == nil {
		return false
	}
	t := reflect.TypeOf(shared)
	return t == reflect.TypeOf(g) && t.Comparable() && any(shared) == any(g)
}

// errExplainOnly is what the replay store of an ExplainOnly relying party
// answers: Verify then fails closed.
var errExplainOnly = errors.New("this relying party only explains tokens (Config.ExplainOnly): it records no use")

// explainOnlyReplay is the replay store of an ExplainOnly relying party. It
// has no RemembersSince: explaining must not refuse a token for predating
// the tool.
type explainOnlyReplay struct{}

func (explainOnlyReplay) Consume(context.Context, string, time.Time) error { return errExplainOnly }

// newVerifier is the one place a token verifier is configured; keys and
// revocations are what it checks tokens against (revocations nil: none),
// replay where it records their use.
func (rp *RelyingParty) newVerifier(keys token.KeySource, revocations token.RevocationChecker, replay token.ReplayStore) (*token.Verifier, error) {
	return token.NewVerifier(token.VerifierConfig{
		Issuers:     []token.TrustedIssuer{{Issuer: rp.cfg.Issuer, Keys: keys}},
		Audience:    rp.cfg.Audience,
		Replay:      replay,
		Revocation:  revocations,
		Leeway:      rp.cfg.Leeway,
		MaxLifetime: rp.cfg.MaxTokenLifetime,
		Now:         rp.cfg.Now,
	})
}

// Validate reports every problem of c at once, as New does. name renders
// a field's name (such as "JWKSURL") in the caller's terms, a flag name
// for instance, so a program can report problems as its users spell its
// settings; nil names them "field JWKSURL".
func (c Config) Validate(name func(field string) string) error {
	_, err := c.validate(name)
	return err
}

func (c Config) validate(name func(field string) string) (*fetch.Policy, error) {
	if name == nil {
		name = func(field string) string { return "field " + field }
	}
	var errs []error
	if c.Issuer == "" {
		errs = append(errs, fmt.Errorf("%s is required", name("Issuer")))
	}
	if c.Audience == "" {
		errs = append(errs, fmt.Errorf("%s is required", name("Audience")))
	}
	policy, err := fetch.NewPolicy(fetch.PolicyConfig{Issuer: c.Issuer, AllowedHosts: c.AllowedHosts})
	if err != nil && c.Issuer != "" {
		errs = append(errs, fmt.Errorf("%s or %s: %w", name("Issuer"), name("AllowedHosts"), err))
	}
	for _, u := range []struct{ field, url string }{{"JWKSURL", c.JWKSURL}, {"RevocationURL", c.RevocationURL}, {"BoundHandoffURL", c.BoundHandoffURL}} {
		if u.url == "" || u.url == RevocationOff {
			continue
		}
		check := fetch.CheckURL // without a valid issuer, only the URL's shape
		if policy != nil {
			check = policy.Check
		}
		if err := check(u.url); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name(u.field), err))
		}
	}
	if c.Keys != nil && c.JWKSURL != "" {
		errs = append(errs, fmt.Errorf("%s must be empty with %s: the keys are either given or fetched", name("JWKSURL"), name("Keys")))
	}
	if c.ExplainOnly && c.Replay != nil {
		errs = append(errs, fmt.Errorf("%s must be nil with %s, which records no use", name("Replay"), name("ExplainOnly")))
	}
	if c.JWKSURL != "" && c.RevocationURL == "" {
		// Without this, configuring the JWKS URL alone would silently turn
		// revocation off: signing out everywhere, cancelled handoffs and
		// revoked keys would then do nothing here.
		errs = append(errs, fmt.Errorf(`%s is required with %s: set it to the issuer's revocation list, or to "off" to run without revocation checks`, name("RevocationURL"), name("JWKSURL")))
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{
		{"FetchTimeout", c.FetchTimeout}, {"Leeway", c.Leeway}, {"MaxTokenLifetime", c.MaxTokenLifetime},
		{"JWKSMaxStale", c.JWKSMaxStale}, {"JWKSCooldown", c.JWKSCooldown}, {"JWKSMinRefresh", c.JWKSMinRefresh},
		{"RevocationInterval", c.RevocationInterval}, {"RevocationMaxStale", c.RevocationMaxStale},
		{"DiscoveryRetry", c.DiscoveryRetry}, {"BindingTTL", c.BindingTTL},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative, got %v", name(d.field), d.v))
		}
	}
	if c.Binding != "" && c.Binding != BindingRequired && c.Binding != BindingOff {
		errs = append(errs, fmt.Errorf("%s must be %q or %q, got %q", name("Binding"), BindingRequired, BindingOff, c.Binding))
	}
	if c.BindingTTL > token.DefaultMaxTTL {
		errs = append(errs, fmt.Errorf("%s %v exceeds the maximum %v", name("BindingTTL"), c.BindingTTL, token.DefaultMaxTTL))
	}
	if c.Leeway > token.MaxLeeway {
		errs = append(errs, fmt.Errorf("%s %v exceeds the maximum %v", name("Leeway"), c.Leeway, token.MaxLeeway))
	}
	if least := cmpOr(c.JWKSMinRefresh, time.Minute); c.JWKSMaxStale > 0 && c.JWKSMaxStale < least {
		errs = append(errs, fmt.Errorf("%s %v must be at least %s %v", name("JWKSMaxStale"), c.JWKSMaxStale, name("JWKSMinRefresh"), least))
	}
	if least := cmpOr(c.RevocationInterval, 5*time.Second); c.RevocationMaxStale > 0 && c.RevocationMaxStale < least {
		errs = append(errs, fmt.Errorf("%s %v must be at least %s %v", name("RevocationMaxStale"), c.RevocationMaxStale, name("RevocationInterval"), least))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return policy, nil
}

func cmpOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

func (c *Config) setDefaults() {
	c.FetchTimeout = cmpOr(c.FetchTimeout, defaultFetchTimeout)
	c.Leeway = cmpOr(c.Leeway, token.DefaultLeeway)
	c.MaxTokenLifetime = cmpOr(c.MaxTokenLifetime, token.DefaultMaxTTL)
	c.JWKSMinRefresh = cmpOr(c.JWKSMinRefresh, time.Minute)
	c.JWKSMaxStale = cmpOr(c.JWKSMaxStale, 24*time.Hour)
	c.JWKSCooldown = cmpOr(c.JWKSCooldown, 10*time.Second)
	c.DiscoveryRetry = cmpOr(c.DiscoveryRetry, defaultDiscoveryRetry)
	c.BindingTTL = cmpOr(c.BindingTTL, DefaultBindingTTL)
	if c.Binding == "" {
		c.Binding = BindingRequired
	}
	if c.Rand == nil {
		c.Rand = rand.Reader
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.RevocationShared == nil {
		c.RevocationShared, _ = c.Replay.(revocation.Sharer)
	}
}

// client is the HTTP client of one kind of fetch; the policy checks its
// redirects.
func (rp *RelyingParty) client() *http.Client {
	return &http.Client{Timeout: rp.cfg.FetchTimeout, Transport: rp.cfg.Transport}
}

// newRemoteKeys builds the cached JWKS client for jwksURL.
func (rp *RelyingParty) newRemoteKeys(jwksURL string) (*remoteKeys, error) {
	c := rp.cfg
	rk, err := keys.NewRemote(keys.RemoteConfig{
		URL:                jwksURL,
		Policy:             rp.policy,
		Client:             rp.client(),
		Timeout:            c.FetchTimeout,
		MinRefresh:         c.JWKSMinRefresh,
		MaxRefresh:         max(c.JWKSMinRefresh, min(time.Hour, c.JWKSMaxStale)),
		UnknownKidCooldown: c.JWKSCooldown,
		MaxStale:           c.JWKSMaxStale,
		Now:                c.Now,
		OnFetch:            c.OnJWKSFetch,
	})
	if err != nil {
		return nil, err
	}
	return &remoteKeys{url: jwksURL, Remote: rk}, nil
}

// newRemoteRevocations builds the poller of the issuer's list at listURL,
// verified with the issuer's keys.
func (rp *RelyingParty) newRemoteRevocations(listURL string) (*remoteList, error) {
	c := rp.cfg
	var rr *revocation.Remote
	polls := &revocationLog{log: rp.log, url: listURL, failOpen: c.RevocationFailOpen}
	onFetch := func(result string) {
		polls.polled(result, rr.Status().LastError, rr.Ready())
		if c.OnRevocationFetch != nil {
			c.OnRevocationFetch(result)
		}
	}
	rr, err := revocation.NewRemote(revocation.RemoteConfig{
		URL:      listURL,
		Policy:   rp.policy,
		Client:   rp.client(),
		Keys:     listKeys{rp.keys},
		Issuer:   c.Issuer,
		Interval: c.RevocationInterval,
		MaxStale: c.RevocationMaxStale,
		FailOpen: c.RevocationFailOpen,
		Timeout:  c.FetchTimeout,
		Leeway:   c.Leeway,
		Now:      c.Now,
		OnFetch:  onFetch,
		Shared:   c.RevocationShared,
	})
	if err != nil {
		return nil, err
	}
	return &remoteList{url: listURL, Remote: rr}, nil
}

// Start runs the background work until ctx is done or Close is called:
// discovering the issuer's URLs that are neither configured nor found by
// an earlier Refresh, and keeping its keys and revocation list fresh. It
// returns at once; calls after the first do nothing.
func (rp *RelyingParty) Start(ctx context.Context) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if rp.cancel != nil || rp.closed {
		return
	}
	ctx, rp.cancel = context.WithCancel(ctx)
	if rr := rp.revocations.remote.Load(); rr != nil {
		rr.Start(ctx)
	}
	if rk := rp.keys.remote.Load(); rk != nil {
		rk.Start(ctx)
	}
	if !rp.undiscovered() {
		return
	}
	go discoverLoop(ctx, rp.log, rp.client(), rp.policy, rp.cfg.DiscoveryRetry, maxDiscoveryRetry,
		func(md Metadata) error {
			rp.metadata.Store(&md)
			// The list is in place before the keys: no token passes
			// verification while revocation is still undecided.
			if err := rp.adoptRevocations(ctx, md.RevocationEndpoint, true); err != nil {
				return err
			}
			return rp.adoptKeys(ctx, md.JWKSURI, true)
		})
}

// undiscovered reports whether a URL is still to be discovered: the JWKS
// (keys neither given nor configured) or the revocation list (neither
// configured nor off).
func (rp *RelyingParty) undiscovered() bool {
	return rp.keys.static == nil && rp.keys.remote.Load() == nil ||
		!rp.revocations.off.Load() && rp.revocations.remote.Load() == nil
}

// ErrNoRevocationEndpoint fails discovery when the issuer advertises no
// revocation list and revocation was not turned off explicitly: the
// relying party then stays unready, and Refresh reports it in
// RefreshError.RevocationList.
var ErrNoRevocationEndpoint = errors.New(`the issuer's handoff configuration has no revocation_endpoint: set RevocationURL to its revocation list, or to "off" to run without revocation checks`)

// adoptRevocations polls the revocation list the issuer advertises, unless
// one is configured or revocation is off; start starts the poller. An
// issuer that advertises none fails discovery: revocation is off only when
// configured so.
func (rp *RelyingParty) adoptRevocations(ctx context.Context, endpoint string, start bool) error {
	switch {
	case rp.revocations.remote.Load() != nil || rp.revocations.off.Load():
		return nil
	case endpoint == "":
		return ErrNoRevocationEndpoint
	}
	rr, err := rp.newRemoteRevocations(endpoint)
	if err != nil {
		return err
	}
	if rp.revocations.remote.CompareAndSwap(nil, rr) && start {
		rr.Start(ctx)
	}
	return nil
}

// adoptKeys uses the JWK Set the issuer advertises, unless keys are given
// or their URL is configured or already discovered; start starts the
// cache's refreshes.
func (rp *RelyingParty) adoptKeys(ctx context.Context, jwksURI string, start bool) error {
	if rp.keys.static != nil || rp.keys.remote.Load() != nil {
		return nil
	}
	rk, err := rp.newRemoteKeys(jwksURI)
	if err != nil {
		return err
	}
	if rp.keys.remote.CompareAndSwap(nil, rk) && start {
		rk.Start(ctx)
	}
	return nil
}

// Verify runs every check on tok and consumes it: it returns the verified
// token or a *token.Error with a stable Reason. want says what the caller
// already knows the token must allow.
func (rp *RelyingParty) Verify(ctx context.Context, tok string, want token.Expect) (*token.Verified, error) {
	return rp.verifier.Verify(ctx, tok, want)
}

// Explain runs the checks Verify runs, without consuming the token, and
// reports each one: a troubleshooting aid. A token it accepts may still be
// refused by Verify as replayed. Where Verify says unknown_key for a token
// whose key the issuer no longer publishes, Explain says revoked when the
// held list names that key (the kid is unverified there, which is safe: it
// can only turn a refusal into another refusal). Config.ExplainOnly says
// what an explain-only relying party leaves out.
func (rp *RelyingParty) Explain(ctx context.Context, tok string, want token.Expect) token.Explanation {
	if rp.explainerNoList != nil {
		if rr := rp.revocations.remote.Load(); rr == nil || !rr.Ready() {
			return rp.explainerNoList.Explain(ctx, tok, want)
		}
	}
	return rp.explainer.Explain(ctx, tok, want)
}

// HeldRevocation returns a token.ReasonRevoked error when the revocation
// list held now names t (its jti, its key, or its subject since before it
// was issued), with the claim it matched in the error's Claim; nil when it
// does not, when revocation is off, or before the first list. A service
// that keeps sessions made from tokens asks this on every request, so
// revoking a token ends the session it opened.
func (rp *RelyingParty) HeldRevocation(t token.TokenRef) error {
	return rp.revocations.HeldRevocation(t)
}

// Check is one readiness condition.
type Check struct {
	// Name is "jwks", "replay_store" or "revocations".
	Name string
	// Check returns nil when the condition holds, ErrRevocationOff for
	// revocation turned off, and another error when it fails.
	Check func(ctx context.Context) error
}

// Checks returns the readiness conditions, for a /readyz that names each:
// the issuer's keys are held, the replay store answers (when it has a
// Ping(ctx) error method, as redisstore.Store does), and a fresh
// revocation list is held.
func (rp *RelyingParty) Checks() []Check {
	return []Check{
		{Name: "jwks", Check: func(context.Context) error {
			if !rp.keys.Ready() {
				return errors.New("no usable JWKS")
			}
			return nil
		}},
		{Name: "replay_store", Check: func(ctx context.Context) error {
			if p, ok := rp.replay.(interface{ Ping(context.Context) error }); ok {
				return p.Ping(ctx)
			}
			return nil
		}},
		{Name: "revocations", Check: rp.revocations.check},
	}
}

// Ready returns nil when every readiness condition holds (revocation
// turned off counts as holding), else the failures joined.
func (rp *RelyingParty) Ready(ctx context.Context) error {
	var errs []error
	for _, c := range rp.Checks() {
		if err := c.Check(ctx); err != nil && !errors.Is(err, ErrRevocationOff) {
			errs = append(errs, fmt.Errorf("%s: %w", c.Name, err))
		}
	}
	return errors.Join(errs...)
}

// RefreshError is the error Refresh returns: what failed, per document;
// a nil field either worked or was not attempted.
type RefreshError struct {
	// Metadata is the failure to discover the issuer's handoff
	// configuration: not fetched, or refused (see Discover).
	Metadata error
	// RevocationList is the failure to fetch or verify the revocation
	// list, or ErrNoRevocationEndpoint.
	RevocationList error
	// JWKS is the failure to fetch the issuer's JWK Set.
	JWKS error
}

func (e *RefreshError) Error() string { return e.join().Error() }

// Unwrap returns the failures, for errors.Is and errors.As.
func (e *RefreshError) Unwrap() []error { return []error{e.Metadata, e.RevocationList, e.JWKS} }

func (e *RefreshError) join() error {
	var errs []error
	for _, f := range []struct {
		what string
		err  error
	}{{"issuer metadata", e.Metadata}, {"revocation list", e.RevocationList}, {"JWKS", e.JWKS}} {
		if f.err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.what, f.err))
		}
	}
	return errors.Join(errs...)
}

// Refresh fetches the issuer's revocation list and keys now and returns a
// *RefreshError when any of it failed. Before Start it first discovers,
// in one attempt, the URLs that are not configured, and takes the keys
// even when the issuer advertises no revocation list (tokens still fail
// closed on revocation then). The background work does all this on its
// own: call Refresh to fail fast at start-up, or, with an unstarted
// relying party, to check tokens once against fresh documents without
// pollers (what `server2 verify` does). The list comes first: verifying it
// fetches any key it is signed with that is not cached yet.
func (rp *RelyingParty) Refresh(ctx context.Context) error {
	var e RefreshError
	rp.discoverOnce(ctx, &e)
	if rr := rp.revocations.remote.Load(); rr != nil {
		e.RevocationList = rr.Refresh(ctx)
	}
	if rk := rp.keys.remote.Load(); rk != nil {
		e.JWKS = rk.Refresh(ctx)
	}
	if e.Metadata == nil && e.RevocationList == nil && e.JWKS == nil {
		return nil
	}
	return &e
}

// discoverOnce is Refresh's discovery: one attempt, and only before Start
// (after it, the background discovery is the one that adopts URLs). It
// holds the lock, so a Start meanwhile waits and then starts what it found.
func (rp *RelyingParty) discoverOnce(ctx context.Context, e *RefreshError) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if rp.cancel != nil || rp.closed || !rp.undiscovered() {
		return
	}
	md, err := Discover(ctx, rp.policy, rp.client())
	if err != nil {
		e.Metadata = err
		return
	}
	rp.metadata.Store(&md)
	e.RevocationList = rp.adoptRevocations(ctx, md.RevocationEndpoint, false)
	e.JWKS = rp.adoptKeys(ctx, md.JWKSURI, false)
}

// Metadata returns the issuer's handoff configuration, and false until it
// is discovered (never, when every URL it would give was configured).
// Its display members name the issuer on pages that link back to it.
func (rp *RelyingParty) Metadata() (Metadata, bool) {
	if md := rp.metadata.Load(); md != nil {
		return *md, true
	}
	return Metadata{}, false
}

// Status describes the keys and revocation list held.
func (rp *RelyingParty) Status() Status {
	s := Status{Keys: rp.keys.Status(), Revocation: rp.revocations.Status()}
	if rk := rp.keys.remote.Load(); rk != nil {
		s.JWKSURL = rk.url
	}
	if rr := rp.revocations.remote.Load(); rr != nil {
		s.RevocationURL = rr.url
	}
	return s
}

// Close stops the background work and releases the embedded replay store.
// Verify keeps answering with what is held.
func (rp *RelyingParty) Close() error {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if rp.closed {
		return nil
	}
	rp.closed = true
	if rp.cancel != nil {
		rp.cancel()
	}
	return rp.closeReplay()
}
