package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/handoffbroker/handoff/broker/revocation"
	"github.com/handoffbroker/handoff/broker/token"
	"github.com/handoffbroker/handoff/replaystore/redisstore"
)

// replayBackend is an opened replay store with what the server needs
// beside Consume.
type replayBackend struct {
	Store token.ReplayStore
	// Check answers nil when the store can serve, for /readyz.
	Check func(ctx context.Context) error
	// Kind classifies a Consume error for the ReplayErrors metric label.
	Kind func(error) string
	// Close releases the store.
	Close func() error
	// Completions records which tasks are done: the same Redis when the
	// replay store is Redis, so replicas agree, else memory.
	Completions completionStore
}

// openReplayStore opens the store --replay-store names: "memory", or a
// redis:// or rediss:// URL.
func openReplayStore(spec string, now func() time.Time) (replayBackend, error) {
	switch {
	case spec == "memory":
		s, err := token.NewMemoryReplayStore(token.MemoryReplayConfig{Now: now})
		if err != nil {
			return replayBackend{}, err
		}
		return replayBackend{
			Store: s,
			Check: func(context.Context) error { return nil },
			Kind: func(err error) string {
				if errors.Is(err, token.ErrStoreFull) {
					return "full"
				}
				return "other"
			},
			Close:       s.Close,
			Completions: newMemoryCompletions(now),
		}, nil
	case strings.HasPrefix(spec, "redis://"), strings.HasPrefix(spec, "rediss://"):
		s, err := redisstore.New(redisstore.Config{URL: spec, Now: now})
		if err != nil {
			return replayBackend{}, err
		}
		return replayBackend{Store: s, Check: s.Ping, Kind: redisstore.ErrorKind, Close: s.Close, Completions: s}, nil
	}
	return replayBackend{}, fmt.Errorf("replay-store: %w", checkReplayStore(spec))
}

// instrumentedReplay times every Consume and counts failures. It forwards
// RemembersSince, so a forgetful store keeps protecting against replays
// across restarts once wrapped, and answers Ping with the backend's
// readiness check, which the relying party runs for /readyz.
type instrumentedReplay struct {
	next    token.ReplayStore
	since   func() time.Time // nil when next remembers across restarts
	kind    func(error) string
	check   func(context.Context) error
	metrics *Metrics
}

// newInstrumentedReplay wraps b's store. When the store is also the
// revocation Sharer that can consume unless revoked (Redis), so is the
// wrapper, and the relying party asks both questions in one round trip.
func newInstrumentedReplay(b replayBackend, m *Metrics) token.ReplayStore {
	s := &instrumentedReplay{next: b.Store, kind: b.Kind, check: b.Check, metrics: m}
	if f, ok := b.Store.(interface{ RemembersSince() time.Time }); ok {
		s.since = f.RemembersSince
	}
	if s.kind == nil {
		s.kind = func(error) string { return "other" }
	}
	if g, ok := b.Store.(revocation.ConsumeGuard); ok {
		return &instrumentedGuard{instrumentedReplay: s, Sharer: g, guard: g}
	}
	return s
}

// Consume implements token.ReplayStore.
func (s *instrumentedReplay) Consume(ctx context.Context, key string, expiresAt time.Time) error {
	return s.observe(func() error { return s.next.Consume(ctx, key, expiresAt) })
}

func (s *instrumentedReplay) observe(consume func() error) error {
	start := time.Now()
	err := consume()
	s.metrics.ReplayLatency.Observe(time.Since(start).Seconds())
	if err != nil && !errors.Is(err, token.ErrAlreadyUsed) && !errors.Is(err, token.ErrMarkedRevoked) {
		s.metrics.ReplayErrors.WithLabelValues(s.kind(err)).Inc()
	}
	return err
}

// instrumentedGuard is an instrumentedReplay over a revocation.ConsumeGuard,
// and one itself.
type instrumentedGuard struct {
	*instrumentedReplay
	revocation.Sharer
	guard revocation.ConsumeGuard
}

// ConsumeUnlessRevoked implements revocation.ConsumeGuard, timed and
// counted as Consume is.
func (s *instrumentedGuard) ConsumeUnlessRevoked(ctx context.Context, key string, expiresAt time.Time) error {
	return s.observe(func() error { return s.guard.ConsumeUnlessRevoked(ctx, key, expiresAt) })
}

// RemembersSince returns when the wrapped store's memory starts; the zero
// time when it remembers across restarts, which refuses nothing.
func (s *instrumentedReplay) RemembersSince() time.Time {
	if s.since == nil {
		return time.Time{}
	}
	return s.since()
}

// Ping reports whether the store can serve.
func (s *instrumentedReplay) Ping(ctx context.Context) error { return s.check(ctx) }
