package revocation

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/handoffbroker/handoff/broker/fetch"
	"github.com/handoffbroker/handoff/broker/token"
)

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
	// is asked about every token by CheckRevoked: one more store round trip
	// per check, unless the verifier consumes through GuardedReplay over
	// Shared and checks with CheckRevokedExceptShared, which asks it in the
	// consume's own round trip. Default: none.
	Shared Sharer
}

// Remote is a token.RevocationChecker over an issuer's signed
// revocation list, polled over HTTP by a fetch.Fetcher: the way a relying
// service learns of withdrawn tokens, subjects and keys. Each list is
// verified with the revocation list profile and replaces the held one
// whole. Checks read an immutable snapshot and never touch the network
// (except through Shared). It is safe for concurrent use.
type Remote struct {
	cfg      RemoteConfig
	verifier *token.RevocationListVerifier
	lists    *fetch.Fetcher[heldList]
}

// heldList is one verified list.
type heldList struct {
	ix        *revocationIndex
	issuedAt  time.Time
	expiresAt time.Time
}

// RemoteStatus describes the held list, for metrics and
// readiness.
type RemoteStatus struct {
	// Status is the last poll's: FetchedAt, RefreshAt (the next scheduled
	// poll), LastError.
	fetch.Status
	// IssuedAt is the held list's "iat"; zero if none.
	IssuedAt time.Time
	// Entries is the number of entries in the held list.
	Entries int
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
	r := &Remote{cfg: cfg}
	// A negative Interval or an out-of-range MaxResponseBytes is reported
	// below, once: the fetcher gets its defaults instead.
	interval := max(cfg.Interval, 0)
	maxBytes := cfg.MaxResponseBytes
	if maxBytes < 0 || maxBytes > token.MaxRevocationListSize {
		maxBytes = 0
	}
	var err error
	r.lists, err = fetch.New(fetch.Config[heldList]{
		Name:               "broker: remote revocations",
		URL:                cfg.URL,
		Policy:             cfg.Policy,
		Client:             cfg.Client,
		Accept:             token.RevocationListMediaType,
		Timeout:            cfg.Timeout,
		MaxResponseBytes:   maxBytes,
		MinRefresh:         interval,
		MaxRefresh:         interval,
		DefaultRefresh:     interval,
		Retry:              fetch.Backoff{First: interval, Max: interval},
		Parse:              r.parse,
		ConfirmNotModified: r.confirmNotModified,
		OnChange:           r.share,
		Now:                cfg.Now,
		OnFetch:            cfg.OnFetch,
	})
	errs := fetch.Problems(err)
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
	if cfg.MaxResponseBytes < 0 || cfg.MaxResponseBytes > token.MaxRevocationListSize {
		errs = append(errs, fmt.Errorf("field MaxResponseBytes must be between 1 and %d", token.MaxRevocationListSize))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("broker: remote revocations config: %w", err)
	}
	r.verifier, err = token.NewRevocationListVerifier(token.RevocationListVerifierConfig{
		Issuers: []token.TrustedIssuer{{Issuer: cfg.Issuer, Keys: cfg.Keys}},
		Leeway:  cfg.Leeway,
		MaxSize: int(cfg.MaxResponseBytes),
		Now:     cfg.Now,
	})
	if err != nil {
		return nil, fmt.Errorf("broker: remote revocations config: %w", err)
	}
	return r, nil
}

// CheckRevoked implements token.RevocationChecker. It fails closed
// (token.ReasonUnavailable) when no list was fetched within MaxStale, unless
// FailOpen; and for tokens of another issuer, whose revocations this list
// does not cover.
func (r *Remote) CheckRevoked(ctx context.Context, t token.TokenRef) error {
	if err := r.CheckRevokedExceptShared(ctx, t); err != nil {
		return err
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

// CheckRevokedExceptShared is CheckRevoked without the question to Shared:
// the held list only, failing closed as CheckRevoked does. It is for a
// verifier whose replay store asks Shared in the consume itself, in the
// same atomic step (GuardedReplay over a ConsumeGuard that is Shared); any
// other caller would miss the revocations other replicas shared.
func (r *Remote) CheckRevokedExceptShared(_ context.Context, t token.TokenRef) error {
	if t.Issuer != r.cfg.Issuer {
		return unavailable("iss", "no revocation list for this issuer")
	}
	now := r.cfg.Now()
	s := r.lists.Load()
	if !r.fresh(s, now) && !r.cfg.FailOpen {
		return r.stale(s)
	}
	if s != nil {
		return s.Value.ix.check(t, now)
	}
	return nil
}

func (r *Remote) stale(s *fetch.Snapshot[heldList]) error {
	detail := "no revocation list fetched within MaxStale"
	if s == nil {
		detail = "no revocation list fetched yet"
	}
	if last := r.lists.Status().LastError; last != "" {
		detail += "; last poll: " + last
	}
	return unavailable("", "%s", detail)
}

// fresh reports whether s may be trusted at now. MaxStale bounds how long
// an attacker who cuts the verifier off from the issuer can keep a revoked
// token usable.
func (r *Remote) fresh(s *fetch.Snapshot[heldList], now time.Time) bool {
	return s != nil && now.Sub(s.FetchedAt) <= r.cfg.MaxStale
}

// SubjectNotBefore returns the time before which sub's tokens are revoked
// according to the held list, or the zero time. A relying service ends the
// sessions it created from sub's tokens issued earlier.
func (r *Remote) SubjectNotBefore(sub string) time.Time {
	s := r.lists.Load()
	if s == nil {
		return time.Time{}
	}
	return s.Value.ix.notBefore(sub, r.cfg.Now())
}

// HeldRevocation returns a token.ReasonRevoked *token.Error when the held list names t:
// its signing key, its jti, or its subject since a not-before later than
// t's issue time. Unlike CheckRevoked it never fails for a stale or missing
// list and never asks Shared. A relying service calls it for every request
// on a session it created from t: a session outlives its token, so without
// it revoking the key or the token would leave the session working.
func (r *Remote) HeldRevocation(t token.TokenRef) error {
	s := r.lists.Load()
	if s == nil || t.Issuer != r.cfg.Issuer {
		return nil
	}
	return s.Value.ix.check(t, r.cfg.Now())
}

// Ready reports whether a list fetched within MaxStale is held, that is,
// whether CheckRevoked can pass a token.
func (r *Remote) Ready() bool { return r.fresh(r.lists.Load(), r.cfg.Now()) }

// Status describes the held list and the last poll.
func (r *Remote) Status() RemoteStatus {
	st := RemoteStatus{Status: r.lists.Status()}
	if s := r.lists.Load(); s != nil {
		st.IssuedAt, st.Entries = s.Value.issuedAt, s.Value.ix.len()
	}
	return st
}

// Start polls in the background until ctx is done: at once if no list is
// held, then every Interval (±10% jitter, so replicas do not poll in step),
// after a failed poll too. It returns immediately; calls after the first do
// nothing.
func (r *Remote) Start(ctx context.Context) { r.lists.Start(ctx) }

// Refresh polls the issuer now, or joins a poll already under way, and
// returns the poll's error (or Shared's, for a new list it could not
// share). When it fails, the held list stays in use until MaxStale.
func (r *Remote) Refresh(ctx context.Context) error {
	_, err := r.lists.Refresh(ctx)
	return err
}

// share records in Shared the jtis that cur has and prev had not, within
// Timeout.
func (r *Remote) share(ctx context.Context, prev, cur *fetch.Snapshot[heldList]) error {
	if r.cfg.Shared == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	var errs []error
	for jti, exp := range cur.Value.ix.tokens {
		if prev != nil {
			if old, ok := prev.Value.ix.tokens[jti]; ok && !exp.After(old) {
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

// confirmNotModified refuses a 304 for an expired list. A 304 is not
// signed: it may confirm only a list that is itself still valid, so an
// attacker on the path who answers 304 forever freezes the verifier's view
// for at most the list's lifetime.
func (r *Remote) confirmNotModified(prev *fetch.Snapshot[heldList], now time.Time) error {
	if !now.Before(prev.Value.expiresAt.Add(r.cfg.Leeway)) {
		return errors.New("304 Not Modified for an expired list")
	}
	return nil
}

// parse verifies a list and refuses one older than the one held.
func (r *Remote) parse(ctx context.Context, body []byte, prev *fetch.Snapshot[heldList]) (heldList, error) {
	l, err := r.verifier.Verify(ctx, strings.TrimSpace(string(body)))
	if err != nil {
		return heldList{}, err
	}
	// Rollback: an older list, replayed while still within its lifetime,
	// would hide the revocations made since.
	if prev != nil && l.IssuedAt.Before(prev.Value.issuedAt) {
		return heldList{}, fmt.Errorf("list issued at %s is older than the one held (%s)",
			l.IssuedAt.UTC().Format(time.RFC3339), prev.Value.issuedAt.UTC().Format(time.RFC3339))
	}
	return heldList{ix: newRevocationIndex(*l), issuedAt: l.IssuedAt, expiresAt: l.ExpiresAt}, nil
}
