package revocation

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/handoffbroker/handoff/broker/fetch"
	"github.com/handoffbroker/handoff/broker/token"
)

// Sharer is a store that replicas of a relying service share (the
// Redis replay store, for one), so a revocation one replica learned takes
// effect at all of them before their own next poll. Keys are
// SharedKey values; implementations add their own prefix.
type Sharer interface {
	// MarkRevoked records key as revoked until until.
	MarkRevoked(ctx context.Context, key string, until time.Time) error
	// IsRevoked reports whether key is recorded and not yet expired.
	IsRevoked(ctx context.Context, key string) (bool, error)
}

// SharedKey is the key under which a revoked token is recorded in
// a Sharer: "jti:", the token's issuer, a space and its jti.
func SharedKey(issuer, jti string) string { return "jti:" + issuer + " " + jti }

// RemoteConfig configures Remote.
type RemoteConfig struct {
	// URL is the issuer's revocation list endpoint, http or https; Policy
	// must allow it. Required. Use https anywhere but loopback.
	URL string
	// Policy checks URL and every redirect of every poll. Default: the
	// policy of an issuer at URL, so redirects stay on URL's host and never
	// leave https.
	Policy *fetch.Policy
	// Keys verifies the lists: the issuer's JWKS, the same token.KeySource that
	// verifies its handoff tokens. Required.
	Keys token.KeySource
	// Issuer is the issuer whose list this is: the list's "iss" must equal
	// it, and only its tokens are checked. Required.
	Issuer string
	// Interval is the time between polls. Default 5s.
	Interval time.Duration
	// MaxStale is how long after the last successful poll the held list is
	// still trusted. After it, CheckRevoked fails closed with
	// token.ReasonUnavailable until a poll succeeds. Default 60s; at least
	// Interval.
	MaxStale time.Duration
	// FailOpen makes CheckRevoked pass tokens (against the last list held,
	// if any) when the list is stale or the Shared store fails, instead of
	// refusing them. It weakens revocation: whoever can keep the verifier
	// from reaching the issuer can then use revoked tokens. Default false.
	FailOpen bool
	// Timeout bounds each poll, reading the body included. Default 5s.
	Timeout time.Duration
	// MaxResponseBytes is the largest response body accepted. Default and
	// maximum token.MaxRevocationListSize.
	MaxResponseBytes int64
	// Leeway is the clock skew tolerated on a list's "iat" and "exp".
	// Default 30s.
	Leeway time.Duration
	// Client sends the requests; Policy checks its redirects before its own
	// CheckRedirect does. Default: a client with Timeout.
	Client *http.Client
	// Now returns the current time. Default time.Now.
	Now func() time.Time
	// OnFetch, when set, is called after every poll with its result
	// (fetch.ResultOK, fetch.ResultNotModified, fetch.ResultError), for
	// metrics. It must return quickly.
	OnFetch func(result string)
	// Shared, when set, receives every revoked jti learned from a list and
	// is asked about every token: one more store round trip per check.
	// Default: none.
	Shared Sharer
}

// Remote is a token.RevocationChecker over an issuer's signed
// revocation list, polled over HTTP: the way a relying service learns of
// withdrawn tokens, subjects and keys. Each list is verified with the
// revocation list profile and replaces the held one whole. Checks read an
// immutable snapshot and never touch the network (except through Shared).
// It is safe for concurrent use.
type Remote struct {
	cfg      RemoteConfig
	verifier *token.RevocationListVerifier

	snap    atomic.Pointer[remoteRevocationSet]
	fetchMu sync.Mutex // one poll at a time
	lastErr atomic.Pointer[string]
	started atomic.Bool
}

// remoteRevocationSet is one verified list with its fetch metadata.
type remoteRevocationSet struct {
	ix        *revocationIndex
	issuedAt  time.Time
	expiresAt time.Time
	etag      string
	fetchedAt time.Time
}

// RemoteStatus describes the held list, for metrics and
// readiness.
type RemoteStatus struct {
	// FetchedAt is the time of the last successful poll; zero if none.
	FetchedAt time.Time
	// IssuedAt is the held list's "iat"; zero if none.
	IssuedAt time.Time
	// Entries is the number of entries in the held list.
	Entries int
	// LastError is the error of the last poll if it failed; "" otherwise.
	LastError string
}

// NewRemote validates cfg, reporting every problem at once. It
// does not fetch: call Refresh to fail fast at start-up, and Start to poll.
func NewRemote(cfg RemoteConfig) (*Remote, error) {
	if cfg.Interval == 0 {
		cfg.Interval = 5 * time.Second
	}
	if cfg.MaxStale == 0 {
		cfg.MaxStale = max(60*time.Second, cfg.Interval)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.MaxResponseBytes == 0 {
		cfg.MaxResponseBytes = token.MaxRevocationListSize
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = token.DefaultLeeway
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	var errs []error
	policy, err := fetch.PolicyFor(cfg.Policy, cfg.URL)
	if err != nil {
		errs = append(errs, err)
	}
	if cfg.Keys == nil {
		errs = append(errs, errors.New("field Keys is required"))
	}
	if cfg.Issuer == "" {
		errs = append(errs, errors.New("field Issuer is required"))
	}
	if cfg.Interval < 0 {
		errs = append(errs, errors.New("field Interval must be positive"))
	}
	if cfg.MaxStale < cfg.Interval {
		errs = append(errs, fmt.Errorf("field MaxStale %v must be at least Interval %v", cfg.MaxStale, cfg.Interval))
	}
	if cfg.Timeout < 0 {
		errs = append(errs, errors.New("field Timeout must be positive"))
	}
	if cfg.MaxResponseBytes < 0 || cfg.MaxResponseBytes > token.MaxRevocationListSize {
		errs = append(errs, fmt.Errorf("field MaxResponseBytes must be between 1 and %d", token.MaxRevocationListSize))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("broker: remote revocations config: %w", err)
	}
	v, err := token.NewRevocationListVerifier(token.RevocationListVerifierConfig{
		Issuers: []token.TrustedIssuer{{Issuer: cfg.Issuer, Keys: cfg.Keys}},
		Leeway:  cfg.Leeway,
		MaxSize: int(cfg.MaxResponseBytes),
		Now:     cfg.Now,
	})
	if err != nil {
		return nil, fmt.Errorf("broker: remote revocations config: %w", err)
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: cfg.Timeout}
	}
	cfg.Policy, cfg.Client = policy, policy.Client(cfg.Client)
	return &Remote{cfg: cfg, verifier: v}, nil
}

// CheckRevoked implements token.RevocationChecker. It fails closed
// (token.ReasonUnavailable) when no list was fetched within MaxStale, unless
// FailOpen; and for tokens of another issuer, whose revocations this list
// does not cover.
func (r *Remote) CheckRevoked(ctx context.Context, t token.TokenRef) error {
	if t.Issuer != r.cfg.Issuer {
		return unavailable("iss", "no revocation list for this issuer")
	}
	now := r.cfg.Now()
	s := r.snap.Load()
	if !r.fresh(s, now) && !r.cfg.FailOpen {
		return r.stale(s)
	}
	if s != nil {
		if err := s.ix.check(t, now); err != nil {
			return err
		}
	}
	if r.cfg.Shared != nil {
		shared, err := r.cfg.Shared.IsRevoked(ctx, SharedKey(t.Issuer, t.ID))
		switch {
		case err != nil && !r.cfg.FailOpen:
			return unavailableErr(fmt.Errorf("shared revocations: %w", err))
		case err == nil && shared:
			return revoked("jti", "the token was revoked")
		}
	}
	return nil
}

func (r *Remote) stale(s *remoteRevocationSet) error {
	detail := "no revocation list fetched within MaxStale"
	if s == nil {
		detail = "no revocation list fetched yet"
	}
	if last := r.lastErr.Load(); last != nil {
		detail += "; last poll: " + *last
	}
	return unavailable("", "%s", detail)
}

// fresh reports whether s may be trusted at now. MaxStale bounds how long
// an attacker who cuts the verifier off from the issuer can keep a revoked
// token usable.
func (r *Remote) fresh(s *remoteRevocationSet, now time.Time) bool {
	return s != nil && now.Sub(s.fetchedAt) <= r.cfg.MaxStale
}

// SubjectNotBefore returns the time before which sub's tokens are revoked
// according to the held list, or the zero time. A relying service ends the
// sessions it created from sub's tokens issued earlier.
func (r *Remote) SubjectNotBefore(sub string) time.Time {
	s := r.snap.Load()
	if s == nil {
		return time.Time{}
	}
	return s.ix.notBefore(sub, r.cfg.Now())
}

// HeldRevocation returns a token.ReasonRevoked *token.Error when the held list names t:
// its signing key, its jti, or its subject since a not-before later than
// t's issue time. Unlike CheckRevoked it never fails for a stale or missing
// list and never asks Shared. A relying service calls it for every request
// on a session it created from t: a session outlives its token, so without
// it revoking the key or the token would leave the session working.
func (r *Remote) HeldRevocation(t token.TokenRef) error {
	s := r.snap.Load()
	if s == nil || t.Issuer != r.cfg.Issuer {
		return nil
	}
	return s.ix.check(t, r.cfg.Now())
}

// Ready reports whether a list fetched within MaxStale is held, that is,
// whether CheckRevoked can pass a token.
func (r *Remote) Ready() bool { return r.fresh(r.snap.Load(), r.cfg.Now()) }

// Status describes the held list and the last poll.
func (r *Remote) Status() RemoteStatus {
	var st RemoteStatus
	if s := r.snap.Load(); s != nil {
		st.FetchedAt, st.IssuedAt, st.Entries = s.fetchedAt, s.issuedAt, s.ix.len()
	}
	if last := r.lastErr.Load(); last != nil {
		st.LastError = *last
	}
	return st
}

// Start polls in the background every Interval (±10% jitter, so replicas
// do not poll in step) until ctx is done, starting at once. It returns
// immediately; calls after the first do nothing.
func (r *Remote) Start(ctx context.Context) {
	if !r.started.CompareAndSwap(false, true) {
		return
	}
	go func() {
		wait := time.Duration(0)
		for {
			timer := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
			}
			_ = r.Refresh(ctx) // recorded in Status and OnFetch
			wait = fetch.Jitter(r.cfg.Interval)
		}
	}()
}

// Refresh polls the issuer now and returns the poll's error. When it fails,
// the held list stays in use until MaxStale.
func (r *Remote) Refresh(ctx context.Context) error {
	r.fetchMu.Lock()
	defer r.fetchMu.Unlock()
	prev := r.snap.Load()
	s, result, err := r.get(ctx, prev)
	if errors.Is(err, errNotModifiedExpired) {
		// Ask without If-None-Match next time, for a freshly signed list.
		unconditional := *prev
		unconditional.etag = ""
		r.snap.Store(&unconditional)
	}
	if err != nil {
		msg := err.Error()
		r.lastErr.Store(&msg)
		r.report(fetch.ResultError)
		return err
	}
	r.snap.Store(s)
	r.lastErr.Store(nil)
	r.report(result)
	if result == fetch.ResultOK && r.cfg.Shared != nil {
		if err := r.share(ctx, prev, s); err != nil {
			return err
		}
	}
	return nil
}

func (r *Remote) report(result string) {
	if r.cfg.OnFetch != nil {
		r.cfg.OnFetch(result)
	}
}

// share records in Shared the jtis that s has and prev had not, within
// Timeout.
func (r *Remote) share(ctx context.Context, prev, s *remoteRevocationSet) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	var errs []error
	for jti, exp := range s.ix.tokens {
		if prev != nil {
			if old, ok := prev.ix.tokens[jti]; ok && !exp.After(old) {
				continue
			}
		}
		if err := r.cfg.Shared.MarkRevoked(ctx, SharedKey(r.cfg.Issuer, jti), exp); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("broker: remote revocations: share: %w", err)
	}
	return nil
}

var errNotModifiedExpired = errors.New("broker: remote revocations: 304 Not Modified for an expired list")

// get requests the list and builds a snapshot from the response. Every
// failure leaves prev in place.
func (r *Remote) get(ctx context.Context, prev *remoteRevocationSet) (*remoteRevocationSet, string, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.cfg.URL, nil)
	if err != nil {
		return nil, "", fmt.Errorf("broker: remote revocations: %w", err)
	}
	req.Header.Set("Accept", token.RevocationListMediaType)
	if prev != nil && prev.etag != "" {
		req.Header.Set("If-None-Match", prev.etag)
	}
	resp, err := r.cfg.Client.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("broker: remote revocations: fetch: %w", err)
	}
	defer resp.Body.Close()

	now := r.cfg.Now()
	if resp.StatusCode == http.StatusNotModified && prev != nil && prev.etag != "" {
		// A 304 is not signed. It may confirm only a list that is itself
		// still valid, so an attacker on the path who answers 304 forever
		// freezes the verifier's view for at most the list's lifetime.
		if !now.Before(prev.expiresAt.Add(r.cfg.Leeway)) {
			return nil, "", errNotModifiedExpired
		}
		next := *prev
		next.fetchedAt = now
		return &next, fetch.ResultNotModified, nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("broker: remote revocations: issuer answered HTTP %d", resp.StatusCode)
	}
	limit := r.cfg.MaxResponseBytes
	if resp.ContentLength > limit {
		return nil, "", fmt.Errorf("broker: remote revocations: response of %d bytes exceeds the %d byte limit", resp.ContentLength, limit)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, "", fmt.Errorf("broker: remote revocations: read: %w", err)
	}
	if int64(len(body)) > limit {
		return nil, "", fmt.Errorf("broker: remote revocations: response exceeds the %d byte limit", limit)
	}
	l, err := r.verifier.Verify(ctx, strings.TrimSpace(string(body)))
	if err != nil {
		return nil, "", fmt.Errorf("broker: remote revocations: %w", err)
	}
	// Rollback: an older list, replayed while still within its lifetime,
	// would hide the revocations made since.
	if prev != nil && l.IssuedAt.Before(prev.issuedAt) {
		return nil, "", fmt.Errorf("broker: remote revocations: list issued at %s is older than the one held (%s)",
			l.IssuedAt.UTC().Format(time.RFC3339), prev.issuedAt.UTC().Format(time.RFC3339))
	}
	return &remoteRevocationSet{
		ix:        newRevocationIndex(*l),
		issuedAt:  l.IssuedAt,
		expiresAt: l.ExpiresAt,
		etag:      resp.Header.Get("ETag"),
		fetchedAt: now,
	}, fetch.ResultOK, nil
}
