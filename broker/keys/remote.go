package keys

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/handoffbroker/handoff/broker/fetch"
	"github.com/handoffbroker/handoff/broker/token"
)

// RemoteConfig configures Remote.
type RemoteConfig struct {
	// URL is the issuer's JWKS endpoint, http or https; Policy must allow
	// it. Required. Use https anywhere but loopback: whoever can change the
	// response can mint tokens. Keys are fetched from this URL only, never
	// from one a token names ("jku", "x5u"), so a token cannot send the
	// verifier to a host of its choosing (SSRF) or make it trust keys of
	// its choosing.
	URL string
	// Policy checks URL and every redirect of every fetch. Default: the
	// policy of an issuer at URL, so redirects stay on URL's host and never
	// leave https.
	Policy *fetch.Policy
	// Client sends the requests; Policy checks its redirects before its own
	// CheckRedirect does. Default: a client with Timeout.
	Client *http.Client
	// Timeout bounds each fetch, reading the body included. Default 5s.
	Timeout time.Duration
	// MaxResponseBytes is the largest response body accepted; a larger one
	// fails the fetch. Default 64 KiB.
	MaxResponseBytes int64
	// MinRefresh is the shortest interval between scheduled refreshes,
	// whatever the response's Cache-Control max-age says. Default 1m.
	MinRefresh time.Duration
	// MaxRefresh is the longest interval between scheduled refreshes,
	// whatever the response's Cache-Control max-age says. Default 1h.
	MaxRefresh time.Duration
	// DefaultRefresh is the interval when the response has no max-age.
	// Default 5m (clamped to [MinRefresh, MaxRefresh]).
	DefaultRefresh time.Duration
	// UnknownKidCooldown is the least time between two refreshes triggered
	// by a token whose "kid" is not in the cached set. Default 10s.
	UnknownKidCooldown time.Duration
	// MaxStale is how long after the last successful fetch the cached keys
	// are still served while the issuer cannot be reached. After it, every
	// lookup fails with token.ReasonUnavailable until a fetch succeeds. Default 24h
	// (or MaxRefresh, when that is longer); at least MaxRefresh.
	MaxStale time.Duration
	// Algorithms narrows the key algorithms accepted from the JWK Set.
	// Default token.Algorithms().
	Algorithms []token.Algorithm
	// Now returns the current time. Default time.Now.
	Now func() time.Time
	// OnFetch, when set, is called after every fetch attempt with its
	// result (fetch.ResultOK, fetch.ResultNotModified, fetch.ResultError), for
	// metrics. It must return quickly.
	OnFetch func(result string)
}

// Remote is a token.KeySource over an issuer's published JWK Set (RFC 7517
// §5), fetched over HTTP and cached: the way a relying service trusts an
// issuer without sharing any secret with it. It is safe for concurrent use.
//
// A lookup of a cached kid never touches the network and never waits. A kid
// that is not cached may trigger one refresh, at most once per
// UnknownKidCooldown, shared by every caller that needs it. When the issuer
// cannot be reached, the last good keys are served for up to MaxStale, then
// lookups fail closed. The fetching itself (conditional requests, size cap,
// max-age clamp, singleflight, backoff) is a fetch.Fetcher's.
//
// The keys are refreshed only by Refresh, by lookups of unknown kids, and by
// the loop Start runs: call Start, or keys the issuer withdraws stay trusted
// until MaxStale.
type Remote struct {
	cfg  RemoteConfig
	algs map[token.Algorithm]bool
	jwks *fetch.Fetcher[remoteKeys]

	// unknown is claimed by lookups of a kid missing from a usable set,
	// empty by lookups made with no usable set at all. They are separate so
	// that the fetch of a verifier's very first set (say, by a lookup
	// racing the Start loop) does not hold back, for a whole cool-down, the
	// refresh a genuinely new key needs.
	unknown, empty *fetch.Cooldown
}

// remoteKeys is the usable keys of one JWK Set, by kid.
type remoteKeys map[string]token.PublicKey

// RemoteStatus describes the cached keys, for metrics and readiness.
type RemoteStatus struct {
	// Status is the last fetch's: FetchedAt, RefreshAt (when the cached
	// set is due for a refresh), LastError.
	fetch.Status
	// Keys is the number of cached keys.
	Keys int
}

// NewRemote validates cfg, reporting every problem at once. It does not
// fetch: call Refresh to fail fast at start-up, and Start to keep the keys
// fresh.
func NewRemote(cfg RemoteConfig) (*Remote, error) {
	if cfg.MaxRefresh == 0 {
		cfg.MaxRefresh = time.Hour
	}
	if cfg.UnknownKidCooldown == 0 {
		cfg.UnknownKidCooldown = 10 * time.Second
	}
	if cfg.MaxStale == 0 {
		cfg.MaxStale = max(24*time.Hour, cfg.MaxRefresh)
	}
	if len(cfg.Algorithms) == 0 {
		cfg.Algorithms = token.Algorithms()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}

	r := &Remote{cfg: cfg, algs: make(map[token.Algorithm]bool)}
	jwks, err := fetch.New(fetch.Config[remoteKeys]{
		Name:             "broker: remote keys",
		URL:              cfg.URL,
		Policy:           cfg.Policy,
		Client:           cfg.Client,
		Accept:           "application/jwk-set+json, application/json",
		Timeout:          cfg.Timeout,
		MaxResponseBytes: cfg.MaxResponseBytes,
		MinRefresh:       cfg.MinRefresh,
		MaxRefresh:       cfg.MaxRefresh,
		DefaultRefresh:   cfg.DefaultRefresh,
		Parse:            r.parse,
		Now:              cfg.Now,
		OnFetch:          cfg.OnFetch,
	})
	errs := fetch.Problems(err)
	if cfg.UnknownKidCooldown < 0 {
		errs = append(errs, errors.New("field UnknownKidCooldown must be positive"))
	}
	if cfg.MaxStale < cfg.MaxRefresh {
		errs = append(errs, fmt.Errorf("field MaxStale %v must be at least MaxRefresh %v", cfg.MaxStale, cfg.MaxRefresh))
	}
	for _, a := range cfg.Algorithms {
		if !a.Supported() {
			errs = append(errs, fmt.Errorf("algorithm %q is not supported", a))
		}
		r.algs[a] = true
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("broker: remote keys config: %w", err)
	}
	r.jwks = jwks
	r.unknown, r.empty = fetch.NewCooldown(cfg.UnknownKidCooldown), fetch.NewCooldown(cfg.UnknownKidCooldown)
	return r, nil
}

// parse keeps the keys of a JWK Set whose algorithm is accepted.
func (r *Remote) parse(_ context.Context, body []byte, _ *fetch.Snapshot[remoteKeys]) (remoteKeys, error) {
	parsed, err := ParseJWKS(body)
	if err != nil {
		return nil, err
	}
	keys := make(remoteKeys, len(parsed))
	for _, k := range parsed {
		if r.algs[k.Algorithm] {
			keys[k.KeyID] = k
		}
	}
	// An answer with nothing usable is more likely a broken deployment than
	// a deliberate withdrawal of every key; keeping the last good set
	// (until MaxStale) avoids turning it into an outage.
	if len(keys) == 0 {
		return nil, errors.New("the JWKS has no usable key")
	}
	return keys, nil
}

// LookupKey implements token.KeySource.
//
// A kid in a cached set younger than MaxStale is answered from memory. Any
// other kid (or any kid at all when no usable set is cached) may trigger a
// refresh, which the call waits for, bounded by ctx and Timeout; if another
// lookup claimed a refresh less than UnknownKidCooldown ago, it returns
// token.ReasonUnknownKey (token.ReasonUnavailable without a usable set) at once. Lookups
// with no usable set and lookups of a kid missing from a usable set have
// separate cool-downs.
func (r *Remote) LookupKey(ctx context.Context, kid string) (token.PublicKey, error) {
	seen := r.jwks.Load()
	now := r.cfg.Now()
	if r.usable(seen, now) {
		if k, ok := seen.Value[kid]; ok {
			return k, nil
		}
	}
	// The kid is unverified and attacker-chosen: the cool-down stops a
	// flood of made-up kids from becoming a flood of fetches.
	claim := r.unknown
	if !r.usable(seen, now) {
		claim = r.empty
	}
	if !claim.Claim(now) {
		return token.PublicKey{}, r.miss(seen, now)
	}
	cur, err := r.jwks.RefreshFrom(ctx, seen)
	if err != nil {
		return token.PublicKey{}, &token.Error{Reason: token.ReasonUnavailable, Claim: "kid", Err: err}
	}
	now = r.cfg.Now()
	if r.usable(cur, now) {
		if k, ok := cur.Value[kid]; ok {
			return k, nil
		}
	}
	return token.PublicKey{}, r.miss(cur, now)
}

// miss is the rejection for a kid not found in s.
func (r *Remote) miss(s *fetch.Snapshot[remoteKeys], now time.Time) error {
	if r.usable(s, now) {
		return &token.Error{Reason: token.ReasonUnknownKey, Claim: "kid", Detail: "the issuer's JWKS has no key with this kid"}
	}
	detail := "no JWKS fetched within MaxStale"
	if s == nil {
		detail = "no JWKS fetched yet"
	}
	if last := r.jwks.Status().LastError; last != "" {
		detail += "; last fetch: " + last
	}
	return &token.Error{Reason: token.ReasonUnavailable, Claim: "kid", Detail: detail}
}

// usable reports whether s may still be served: MaxStale bounds how long an
// attacker who cuts the verifier off from the issuer can keep a key alive
// that the issuer has since withdrawn.
func (r *Remote) usable(s *fetch.Snapshot[remoteKeys], now time.Time) bool {
	return s != nil && now.Sub(s.FetchedAt) <= r.cfg.MaxStale
}

// Refresh fetches the JWK Set now, or joins a fetch already under way, and
// returns its error. Call it at start-up to fail fast on a wrong URL. When
// it fails, the keys fetched before stay in use.
func (r *Remote) Refresh(ctx context.Context) error {
	_, err := r.jwks.Refresh(ctx)
	return err
}

// Start keeps the keys fresh in the background until ctx is done: it
// fetches at once if nothing was fetched yet, then at each set's refresh
// time (±10% jitter, so replicas do not fetch in step); after a failure it
// retries with exponential backoff from 1s (or MinRefresh, if smaller) up to
// MinRefresh. Start returns immediately; calls after the first do nothing.
func (r *Remote) Start(ctx context.Context) { r.jwks.Start(ctx) }

// Ready reports whether a key set fetched within MaxStale is cached, that
// is, whether lookups can succeed without reaching the issuer.
func (r *Remote) Ready() bool {
	return r.usable(r.jwks.Load(), r.cfg.Now())
}

// Status describes the cached keys and the last fetch.
func (r *Remote) Status() RemoteStatus {
	st := RemoteStatus{Status: r.jwks.Status()}
	if s := r.jwks.Load(); s != nil {
		st.Keys = len(s.Value)
	}
	return st
}
