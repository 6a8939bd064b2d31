package keys

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/handoffbroker/handoff/broker/fetch"
	"github.com/handoffbroker/handoff/broker/token"
	"golang.org/x/sync/singleflight"
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
// lookups fail closed.
//
// The keys are refreshed only by Refresh, by lookups of unknown kids, and by
// the loop Start runs: call Start, or keys the issuer withdraws stay trusted
// until MaxStale.
type Remote struct {
	cfg  RemoteConfig
	algs map[token.Algorithm]bool

	// snap is replaced whole, never modified, so lookups read it without
	// locks. Only a singleflight leader stores it.
	snap  atomic.Pointer[remoteKeySet]
	group singleflight.Group

	// lastUnknown is cfg.Now in Unix nanoseconds when a lookup of a kid
	// missing from a usable set last claimed a refresh; lastEmpty the same
	// for lookups made with no usable set at all. 0 means never. They are
	// separate so that the fetch of a verifier's very first set (say, by a
	// lookup racing the Start loop) does not hold back, for a whole
	// cool-down, the refresh a genuinely new key needs.
	lastUnknown atomic.Int64
	lastEmpty   atomic.Int64
	lastErr     atomic.Pointer[string]
	started     atomic.Bool
}

// remoteKeySet is one immutable snapshot of the issuer's keys.
type remoteKeySet struct {
	keys      map[string]token.PublicKey
	etag      string
	fetchedAt time.Time
	refreshAt time.Time
}

// RemoteStatus describes the cached keys, for metrics and readiness.
type RemoteStatus struct {
	// FetchedAt is the time of the last successful fetch; zero if none.
	FetchedAt time.Time
	// RefreshAt is when the cached set is due for a refresh; zero if none.
	RefreshAt time.Time
	// Keys is the number of cached keys.
	Keys int
	// LastError is the error of the last fetch if it failed; "" after a
	// success or before any fetch.
	LastError string
}

// NewRemote validates cfg, reporting every problem at once. It does not
// fetch: call Refresh to fail fast at start-up, and Start to keep the keys
// fresh.
func NewRemote(cfg RemoteConfig) (*Remote, error) {
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.MaxResponseBytes == 0 {
		cfg.MaxResponseBytes = 64 << 10
	}
	if cfg.MinRefresh == 0 {
		cfg.MinRefresh = time.Minute
	}
	if cfg.MaxRefresh == 0 {
		cfg.MaxRefresh = time.Hour
	}
	if cfg.DefaultRefresh == 0 {
		cfg.DefaultRefresh = min(max(5*time.Minute, cfg.MinRefresh), cfg.MaxRefresh)
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

	var errs []error
	policy, err := fetch.PolicyFor(cfg.Policy, cfg.URL)
	if err != nil {
		errs = append(errs, err)
	}
	if cfg.Timeout < 0 {
		errs = append(errs, errors.New("field Timeout must be positive"))
	}
	if cfg.MaxResponseBytes < 0 {
		errs = append(errs, errors.New("field MaxResponseBytes must be positive"))
	}
	if cfg.MinRefresh < 0 || cfg.MaxRefresh < cfg.MinRefresh {
		errs = append(errs, fmt.Errorf("need 0 < MinRefresh (%v) <= MaxRefresh (%v)", cfg.MinRefresh, cfg.MaxRefresh))
	}
	if cfg.DefaultRefresh < cfg.MinRefresh || cfg.DefaultRefresh > cfg.MaxRefresh {
		errs = append(errs, fmt.Errorf("field DefaultRefresh %v must be between MinRefresh and MaxRefresh", cfg.DefaultRefresh))
	}
	if cfg.UnknownKidCooldown < 0 {
		errs = append(errs, errors.New("field UnknownKidCooldown must be positive"))
	}
	if cfg.MaxStale < cfg.MaxRefresh {
		errs = append(errs, fmt.Errorf("field MaxStale %v must be at least MaxRefresh %v", cfg.MaxStale, cfg.MaxRefresh))
	}
	algs := make(map[token.Algorithm]bool)
	for _, a := range cfg.Algorithms {
		if !a.Supported() {
			errs = append(errs, fmt.Errorf("algorithm %q is not supported", a))
		}
		algs[a] = true
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("broker: remote keys config: %w", err)
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: cfg.Timeout}
	}
	cfg.Policy, cfg.Client = policy, policy.Client(cfg.Client)
	return &Remote{cfg: cfg, algs: algs}, nil
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
	seen := r.snap.Load()
	now := r.cfg.Now()
	if r.usable(seen, now) {
		if k, ok := seen.keys[kid]; ok {
			return k, nil
		}
	}
	// The kid is unverified and attacker-chosen. The cool-down stops a flood
	// of made-up kids from turning each token into a fetch at the issuer
	// (amplification); callers that lose the claim return at once, so the
	// flood never queues verifications behind a fetch.
	claim := &r.lastUnknown
	if !r.usable(seen, now) {
		claim = &r.lastEmpty
	}
	if !r.claimCooldown(claim, now) {
		return token.PublicKey{}, r.miss(seen, now)
	}
	cur, err := r.refresh(ctx, seen)
	if err != nil {
		return token.PublicKey{}, &token.Error{Reason: token.ReasonUnavailable, Claim: "kid", Err: err}
	}
	now = r.cfg.Now()
	if r.usable(cur, now) {
		if k, ok := cur.keys[kid]; ok {
			return k, nil
		}
	}
	return token.PublicKey{}, r.miss(cur, now)
}

// miss is the rejection for a kid not found in s.
func (r *Remote) miss(s *remoteKeySet, now time.Time) error {
	if r.usable(s, now) {
		return &token.Error{Reason: token.ReasonUnknownKey, Claim: "kid", Detail: "the issuer's JWKS has no key with this kid"}
	}
	detail := "no JWKS fetched within MaxStale"
	if s == nil {
		detail = "no JWKS fetched yet"
	}
	if last := r.lastErr.Load(); last != nil {
		detail += "; last fetch: " + *last
	}
	return &token.Error{Reason: token.ReasonUnavailable, Claim: "kid", Detail: detail}
}

// usable reports whether s may still be served: MaxStale bounds how long an
// attacker who cuts the verifier off from the issuer can keep a key alive
// that the issuer has since withdrawn.
func (r *Remote) usable(s *remoteKeySet, now time.Time) bool {
	return s != nil && now.Sub(s.fetchedAt) <= r.cfg.MaxStale
}

// claimCooldown reports whether a lookup at now may trigger a refresh, and
// if so starts a new cool-down on the clock last. A clock that went
// backwards allows a claim.
func (r *Remote) claimCooldown(last *atomic.Int64, now time.Time) bool {
	for {
		prev := last.Load()
		if prev != 0 {
			if d := now.Sub(time.Unix(0, prev)); d >= 0 && d < r.cfg.UnknownKidCooldown {
				return false
			}
		}
		if last.CompareAndSwap(prev, now.UnixNano()) {
			return true
		}
	}
}

// refresh fetches the JWK Set through singleflight, so concurrent callers
// share one request, and returns the resulting snapshot. seen is the
// snapshot the caller found wanting: if another fetch replaced it
// meanwhile, that result is used and nothing is fetched.
func (r *Remote) refresh(ctx context.Context, seen *remoteKeySet) (*remoteKeySet, error) {
	ch := r.group.DoChan("jwks", func() (any, error) {
		if cur := r.snap.Load(); cur != seen {
			return cur, nil
		}
		// The fetch is shared: one caller giving up must not cancel it for
		// the others. Timeout still bounds it.
		return r.fetch(context.WithoutCancel(ctx))
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*remoteKeySet), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("broker: remote keys: waiting for the JWKS: %w", context.Cause(ctx))
	}
}

// fetch runs one request, stores the new snapshot on success and records
// the outcome. Only a singleflight leader calls it.
func (r *Remote) fetch(ctx context.Context) (*remoteKeySet, error) {
	s, result, err := r.get(ctx, r.snap.Load())
	if err != nil {
		msg := err.Error()
		r.lastErr.Store(&msg)
		r.report(fetch.ResultError)
		return nil, err
	}
	r.snap.Store(s)
	r.lastErr.Store(nil)
	r.report(result)
	return s, nil
}

func (r *Remote) report(result string) {
	if r.cfg.OnFetch != nil {
		r.cfg.OnFetch(result)
	}
}

// get requests the JWK Set and builds a snapshot from the response. Every
// failure leaves prev in place.
func (r *Remote) get(ctx context.Context, prev *remoteKeySet) (*remoteKeySet, string, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.cfg.URL, nil)
	if err != nil {
		return nil, "", fmt.Errorf("broker: remote keys: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	if prev != nil && prev.etag != "" {
		req.Header.Set("If-None-Match", prev.etag)
	}
	resp, err := r.cfg.Client.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("broker: remote keys: fetch: %w", err)
	}
	defer resp.Body.Close()

	if resp.StatusCode == http.StatusNotModified && prev != nil && prev.etag != "" {
		now := r.cfg.Now()
		return &remoteKeySet{keys: prev.keys, etag: prev.etag, fetchedAt: now, refreshAt: now.Add(r.interval(resp.Header))}, fetch.ResultNotModified, nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("broker: remote keys: issuer answered HTTP %d", resp.StatusCode)
	}
	// The size cap stops a hostile or broken endpoint from exhausting
	// memory; the content type is not checked, the body is.
	limit := r.cfg.MaxResponseBytes
	if resp.ContentLength > limit {
		return nil, "", fmt.Errorf("broker: remote keys: response of %d bytes exceeds the %d byte limit", resp.ContentLength, limit)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, "", fmt.Errorf("broker: remote keys: read: %w", err)
	}
	if int64(len(body)) > limit {
		return nil, "", fmt.Errorf("broker: remote keys: response exceeds the %d byte limit", limit)
	}
	parsed, err := ParseJWKS(body)
	if err != nil {
		return nil, "", fmt.Errorf("broker: remote keys: %w", err)
	}
	keys := make(map[string]token.PublicKey, len(parsed))
	for _, k := range parsed {
		if r.algs[k.Algorithm] {
			keys[k.KeyID] = k
		}
	}
	// An answer with nothing usable is more likely a broken deployment than
	// a deliberate withdrawal of every key; keeping the last good set
	// (until MaxStale) avoids turning it into an outage.
	if len(keys) == 0 {
		return nil, "", errors.New("broker: remote keys: the JWKS has no usable key")
	}
	now := r.cfg.Now()
	return &remoteKeySet{keys: keys, etag: resp.Header.Get("ETag"), fetchedAt: now, refreshAt: now.Add(r.interval(resp.Header))}, fetch.ResultOK, nil
}

// interval is the response's Cache-Control max-age clamped to
// [MinRefresh, MaxRefresh], or DefaultRefresh without one. The clamp stops
// an issuer's max-age=0 from causing a fetch storm, and a huge max-age from
// keeping withdrawn keys trusted for days.
func (r *Remote) interval(h http.Header) time.Duration {
	d, ok := maxAge(h.Values("Cache-Control"))
	if !ok {
		return r.cfg.DefaultRefresh
	}
	return min(max(d, r.cfg.MinRefresh), r.cfg.MaxRefresh)
}

// maxAge finds the max-age directive (RFC 9111 §5.2.2.1) in Cache-Control
// header values.
func maxAge(values []string) (time.Duration, bool) {
	const ceiling = 1 << 31 // RFC 9111 §1.2.2: treat larger values as this
	for _, v := range values {
		for _, dir := range strings.Split(v, ",") {
			name, arg, found := strings.Cut(strings.TrimSpace(dir), "=")
			if !found || !strings.EqualFold(strings.TrimSpace(name), "max-age") {
				continue
			}
			n, err := strconv.ParseUint(strings.Trim(strings.TrimSpace(arg), `"`), 10, 64)
			if errors.Is(err, strconv.ErrRange) {
				n = ceiling
			} else if err != nil {
				return 0, false
			}
			return time.Duration(min(n, ceiling)) * time.Second, true
		}
	}
	return 0, false
}

// Refresh fetches the JWK Set now, or joins a fetch already under way, and
// returns its error. Call it at start-up to fail fast on a wrong URL. When
// it fails, the keys fetched before stay in use.
func (r *Remote) Refresh(ctx context.Context) error {
	_, err := r.refresh(ctx, r.snap.Load())
	return err
}

// Start keeps the keys fresh in the background until ctx is done: it
// fetches at once if nothing was fetched yet, then at each set's refresh
// time (±10% jitter, so replicas do not fetch in step); after a failure it
// retries with exponential backoff from 1s (or MinRefresh, if smaller) up to
// MinRefresh. Start returns immediately; calls after the first do nothing.
func (r *Remote) Start(ctx context.Context) {
	if !r.started.CompareAndSwap(false, true) {
		return
	}
	go r.loop(ctx)
}

func (r *Remote) loop(ctx context.Context) {
	failures := 0
	for {
		seen := r.snap.Load()
		timer := time.NewTimer(r.nextWait(seen, failures))
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		if _, err := r.refresh(ctx, seen); err != nil {
			failures++
		} else {
			failures = 0
		}
	}
}

func (r *Remote) nextWait(s *remoteKeySet, failures int) time.Duration {
	if failures > 0 {
		base := min(time.Second, r.cfg.MinRefresh)
		return fetch.Jitter(min(base<<min(failures-1, 30), r.cfg.MinRefresh))
	}
	if s == nil {
		return 0
	}
	return fetch.Jitter(max(s.refreshAt.Sub(r.cfg.Now()), 0))
}

// Ready reports whether a key set fetched within MaxStale is cached, that
// is, whether lookups can succeed without reaching the issuer.
func (r *Remote) Ready() bool {
	return r.usable(r.snap.Load(), r.cfg.Now())
}

// Status describes the cached keys and the last fetch.
func (r *Remote) Status() RemoteStatus {
	var st RemoteStatus
	if s := r.snap.Load(); s != nil {
		st.FetchedAt, st.RefreshAt, st.Keys = s.fetchedAt, s.refreshAt, len(s.keys)
	}
	if last := r.lastErr.Load(); last != nil {
		st.LastError = *last
	}
	return st
}
