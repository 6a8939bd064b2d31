package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// Snapshot is one fetched document: the value Config.Parse made of it and
// what the fetch learnt about it. A Fetcher replaces its snapshot whole and
// never modifies one, so readers need no lock; they must not modify it
// either.
type Snapshot[T any] struct {
	// Value is what Parse returned for the document.
	Value T
	// ETag is the response's ETag, sent as If-None-Match by the next
	// fetch; "" for none.
	ETag string
	// FetchedAt is when the document was last fetched, or confirmed by a
	// 304 Not Modified.
	FetchedAt time.Time
	// RefreshAt is when the document is due for a refresh: FetchedAt plus
	// the response's Cache-Control max-age clamped to [MinRefresh,
	// MaxRefresh], or plus DefaultRefresh without one.
	RefreshAt time.Time
}

// Config configures a Fetcher of documents of type T.
type Config[T any] struct {
	// Name begins every error of the fetcher, for logs: "broker: remote
	// keys", for one. Default "broker: fetch".
	Name string
	// URL is the document's URL, http or https; Policy must allow it.
	// Required.
	URL string
	// Policy checks URL and every redirect of every fetch. Default: the
	// policy of an issuer at URL, so redirects stay on URL's
	// host and never leave https.
	Policy *Policy
	// Client sends the requests; Policy checks its redirects before its own
	// CheckRedirect does. Default: a client with Timeout.
	Client *http.Client
	// Accept is the Accept header of each request. Default
	// "application/json".
	Accept string
	// Timeout bounds each fetch, reading the body and Parse included.
	// Default 5s.
	Timeout time.Duration
	// MaxResponseBytes is the largest response body accepted; a larger one
	// fails the fetch unread. Default 64 KiB.
	MaxResponseBytes int64
	// MinRefresh is the shortest refresh interval, whatever the response's
	// Cache-Control max-age says. Default 1m.
	MinRefresh time.Duration
	// MaxRefresh is the longest refresh interval, whatever the response's
	// Cache-Control max-age says. Default 1h.
	MaxRefresh time.Duration
	// DefaultRefresh is the refresh interval when the response has no
	// max-age. Default 5m, clamped to [MinRefresh, MaxRefresh].
	DefaultRefresh time.Duration
	// Retry is how long Start's loop waits after failed fetches. Default
	// from 1s (or MinRefresh, if smaller) up to MinRefresh.
	Retry Backoff
	// Parse validates the body of a 200 response and returns its value.
	// prev is the snapshot held, nil for none, for checks against it (a
	// rollback, say). An error fails the fetch and keeps prev. Required.
	Parse func(ctx context.Context, body []byte, prev *Snapshot[T]) (T, error)
	// ConfirmNotModified, when set, decides whether a 304 Not Modified may
	// confirm prev at now: a 304 is not signed, so a document with a
	// lifetime of its own must not be kept alive by one past it. An error
	// fails the fetch and drops prev's ETag, so the next fetch asks for the
	// whole document. Default: every 304 to the held ETag confirms it.
	ConfirmNotModified func(prev *Snapshot[T], now time.Time) error
	// OnChange, when set, is called by the fetch that stored a newly
	// fetched document (not a 304), with the snapshot it replaced (nil for
	// none). Its error is returned to that fetch's callers without failing
	// the fetch: the new document stays.
	OnChange func(ctx context.Context, prev, cur *Snapshot[T]) error
	// Now returns the current time. Default time.Now.
	Now func() time.Time
	// OnFetch, when set, is called after every fetch with its result
	// (ResultOK, ResultNotModified, ResultError), for metrics. It must
	// return quickly.
	OnFetch func(result string)
}

// ConfigError is a Config that New refused, with every problem found.
// A component that embeds a Fetcher appends Problems to its own, so that
// its New reports everything at once too.
type ConfigError struct {
	Problems []error
}

func (e *ConfigError) Error() string {
	return "broker: fetch config: " + errors.Join(e.Problems...).Error()
}

// Unwrap returns the problems, for errors.Is and errors.As.
func (e *ConfigError) Unwrap() []error { return e.Problems }

// Problems returns the problems of the *ConfigError in err, or, when err
// is not one, err itself (nil for nil): what a component's New appends to
// its own list.
func Problems(err error) []error {
	var ce *ConfigError
	if errors.As(err, &ce) {
		return ce.Problems
	}
	if err != nil {
		return []error{err}
	}
	return nil
}

// Fetcher holds the latest good copy of one remote document: the issuer's
// JWK Set, its revocation list, its metadata. It is the one place that
// fetches them, for keys.Remote, revocation.Remote and discovery alike.
//
// Each fetch is a GET under the Policy (URL and redirects), bounded by
// Timeout and MaxResponseBytes, conditional on the held ETag. A 200 is
// handed to Parse; its value replaces the held snapshot whole (an
// atomic.Pointer), so readers never wait and never see half a document. A
// failure keeps the held snapshot, however old: deciding how long it may
// still be served is the caller's job. Concurrent refreshes share one
// request (singleflight), and its leader first re-checks whether the
// snapshot the callers found wanting was replaced meanwhile; only the
// leader writes the snapshot.
//
// A Fetcher is safe for concurrent use.
type Fetcher[T any] struct {
	cfg     Config[T]
	snap    atomic.Pointer[Snapshot[T]]
	group   singleflight.Group
	lastErr atomic.Pointer[string]
	started atomic.Bool
}

// New validates cfg, reporting every problem at once in a *ConfigError. It
// does not fetch.
func New[T any](cfg Config[T]) (*Fetcher[T], error) {
	if cfg.Name == "" {
		cfg.Name = "broker: fetch"
	}
	if cfg.Accept == "" {
		cfg.Accept = "application/json"
	}
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
	if cfg.Retry == (Backoff{}) {
		cfg.Retry = Backoff{First: min(time.Second, cfg.MinRefresh), Max: cfg.MinRefresh}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}

	var errs []error
	policy, err := policyFor(cfg.Policy, cfg.URL)
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
	if cfg.Retry.First <= 0 || cfg.Retry.Max < cfg.Retry.First {
		errs = append(errs, fmt.Errorf("need 0 < Retry.First (%v) <= Retry.Max (%v)", cfg.Retry.First, cfg.Retry.Max))
	}
	if cfg.Parse == nil {
		errs = append(errs, errors.New("field Parse is required"))
	}
	if len(errs) > 0 {
		return nil, &ConfigError{Problems: errs}
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: cfg.Timeout}
	}
	cfg.Policy, cfg.Client = policy, policy.Client(cfg.Client)
	return &Fetcher[T]{cfg: cfg}, nil
}

// Load returns the held snapshot, nil before the first successful fetch.
// It never touches the network and never waits.
func (f *Fetcher[T]) Load() *Snapshot[T] { return f.snap.Load() }

// Status describes a Fetcher's document and its last fetch, for metrics
// and readiness.
type Status struct {
	// FetchedAt is the time of the last successful fetch; zero if none.
	FetchedAt time.Time
	// RefreshAt is when the held document is due for a refresh; zero if
	// none.
	RefreshAt time.Time
	// LastError is the error of the last fetch if it failed; "" after a
	// success or before any fetch.
	LastError string
}

// Status describes the held snapshot and the last fetch.
func (f *Fetcher[T]) Status() Status {
	var st Status
	if s := f.snap.Load(); s != nil {
		st.FetchedAt, st.RefreshAt = s.FetchedAt, s.RefreshAt
	}
	if last := f.lastErr.Load(); last != nil {
		st.LastError = *last
	}
	return st
}

// Refresh fetches the document now, or joins a fetch already under way, and
// returns the snapshot held afterwards. When the fetch fails it returns the
// error and no snapshot; the one fetched before stays held.
func (f *Fetcher[T]) Refresh(ctx context.Context) (*Snapshot[T], error) {
	return f.RefreshFrom(ctx, f.snap.Load())
}

// RefreshFrom is Refresh for a caller that found seen wanting (a kid it
// lacks, say): if another fetch replaced seen meanwhile, RefreshFrom
// returns that snapshot and fetches nothing. The fetch is shared by every
// caller that needs it: one caller giving up (ctx) returns at once without
// cancelling it for the others; Timeout still bounds it.
func (f *Fetcher[T]) RefreshFrom(ctx context.Context, seen *Snapshot[T]) (*Snapshot[T], error) {
	ch := f.group.DoChan("fetch", func() (any, error) {
		if cur := f.snap.Load(); cur != seen {
			return cur, nil
		}
		return f.lead(context.WithoutCancel(ctx))
	})
	select {
	case res := <-ch:
		s, _ := res.Val.(*Snapshot[T])
		return s, res.Err
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: waiting for the fetch: %w", f.cfg.Name, context.Cause(ctx))
	}
}

// lead runs one fetch, stores its snapshot and reports its result. Only a
// singleflight leader calls it.
func (f *Fetcher[T]) lead(ctx context.Context) (*Snapshot[T], error) {
	prev := f.snap.Load()
	s, result, err := f.get(ctx, prev)
	if err != nil {
		msg := err.Error()
		f.lastErr.Store(&msg)
		f.report(ResultError)
		return nil, err
	}
	f.snap.Store(s)
	f.lastErr.Store(nil)
	f.report(result)
	if result == ResultOK && f.cfg.OnChange != nil {
		return s, f.cfg.OnChange(ctx, prev, s)
	}
	return s, nil
}

func (f *Fetcher[T]) report(result string) {
	if f.cfg.OnFetch != nil {
		f.cfg.OnFetch(result)
	}
}

// get requests the document and builds a snapshot from the response.
// Every failure leaves prev held.
func (f *Fetcher[T]) get(ctx context.Context, prev *Snapshot[T]) (*Snapshot[T], string, error) {
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.cfg.URL, nil)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", f.cfg.Name, err)
	}
	req.Header.Set("Accept", f.cfg.Accept)
	if prev != nil && prev.ETag != "" {
		req.Header.Set("If-None-Match", prev.ETag)
	}
	resp, err := f.cfg.Client.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("%s: fetch: %w", f.cfg.Name, err)
	}
	defer resp.Body.Close()

	if resp.StatusCode == http.StatusNotModified && prev != nil && prev.ETag != "" {
		return f.notModified(prev, resp.Header)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("%s: issuer answered HTTP %d", f.cfg.Name, resp.StatusCode)
	}
	// The size cap stops a hostile or broken endpoint from exhausting
	// memory; the content type is not checked, Parse checks the body.
	limit := f.cfg.MaxResponseBytes
	if resp.ContentLength > limit {
		return nil, "", fmt.Errorf("%s: response of %d bytes exceeds the %d byte limit", f.cfg.Name, resp.ContentLength, limit)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, "", fmt.Errorf("%s: read: %w", f.cfg.Name, err)
	}
	if int64(len(body)) > limit {
		return nil, "", fmt.Errorf("%s: response exceeds the %d byte limit", f.cfg.Name, limit)
	}
	v, err := f.cfg.Parse(ctx, body, prev)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", f.cfg.Name, err)
	}
	now := f.cfg.Now()
	return &Snapshot[T]{Value: v, ETag: resp.Header.Get("ETag"), FetchedAt: now, RefreshAt: now.Add(f.interval(resp.Header))}, ResultOK, nil
}

// notModified confirms prev for a 304 answer, unless ConfirmNotModified
// refuses it; then prev's ETag is dropped, so the next request is
// unconditional.
func (f *Fetcher[T]) notModified(prev *Snapshot[T], h http.Header) (*Snapshot[T], string, error) {
	now := f.cfg.Now()
	if confirm := f.cfg.ConfirmNotModified; confirm != nil {
		if err := confirm(prev, now); err != nil {
			unconditional := *prev
			unconditional.ETag = ""
			f.snap.Store(&unconditional)
			return nil, "", fmt.Errorf("%s: %w", f.cfg.Name, err)
		}
	}
	next := *prev
	next.FetchedAt, next.RefreshAt = now, now.Add(f.interval(h))
	return &next, ResultNotModified, nil
}

// interval is the response's Cache-Control max-age clamped to
// [MinRefresh, MaxRefresh], or DefaultRefresh without one. The clamp stops
// an issuer's max-age=0 from causing a fetch storm, and a huge max-age from
// keeping a withdrawn key or an old list for days.
func (f *Fetcher[T]) interval(h http.Header) time.Duration {
	d, ok := maxAge(h.Values("Cache-Control"))
	if !ok {
		return f.cfg.DefaultRefresh
	}
	return min(max(d, f.cfg.MinRefresh), f.cfg.MaxRefresh)
}

// Start keeps the document fresh in the background until ctx is done: it
// fetches at once if nothing is held yet, then at each snapshot's
// RefreshAt (±10% jitter, so replicas do not fetch in step); after a
// failure it retries after Retry. Start returns immediately; calls after
// the first do nothing.
func (f *Fetcher[T]) Start(ctx context.Context) {
	if !f.started.CompareAndSwap(false, true) {
		return
	}
	go f.loop(ctx)
}

func (f *Fetcher[T]) loop(ctx context.Context) {
	failures := 0
	for {
		seen := f.snap.Load()
		if !sleep(ctx, f.nextWait(seen, failures)) {
			return
		}
		if _, err := f.RefreshFrom(ctx, seen); err != nil {
			failures++
		} else {
			failures = 0
		}
	}
}

func (f *Fetcher[T]) nextWait(s *Snapshot[T], failures int) time.Duration {
	if failures > 0 {
		return f.cfg.Retry.Wait(failures)
	}
	if s == nil {
		return 0
	}
	return jitter(max(s.RefreshAt.Sub(f.cfg.Now()), 0))
}
