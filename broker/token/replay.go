package token

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ReplayMargin is how long a consumed (iss, jti) is kept beyond exp +
// MaxLeeway, the last instant at which any verifier, whatever leeway it is
// configured with, could judge the token unexpired.
//
// Without a margin a used token is accepted again at the instant its record
// expires: the verifier reads its clock for the claims check before it
// consumes, and the store judges expiry by its own clock (Redis by the Redis
// server's), so a resubmission that passes the claims check just before
// exp + leeway can reach the store just after and find the record gone.
//
// The bound: a token is never accepted twice as long as, for any verifier
// sharing the store, the time from its clock read to the store's write plus
// how far the store's clock runs ahead of that verifier's stays below
// ReplayMargin, whatever leeways the verifiers use (the retention counts from
// exp + MaxLeeway, not from the consuming verifier's leeway, so a replica
// with a larger leeway than the one that consumed cannot eat the margin). It
// is MaxLeeway (2 min): the first term is bounded by the store's timeout
// (milliseconds) and clocks kept by NTP agree to well under a second.
const ReplayMargin = MaxLeeway

// MinReplayRetention is the shortest time a store keeps a consumed key,
// measured from its own clock, whatever expiresAt says. A record that expired
// on arrival would let a racing second use through.
const MinReplayRetention = time.Second

// ReplayRetention returns until when a token that expires at exp must stay
// recorded once used: exp + MaxLeeway + ReplayMargin, the same for every
// verifier whatever its leeway. It is the expiresAt the Verifier passes to
// ReplayStore.Consume; a caller of Consume outside a Verifier should pass the
// same.
func ReplayRetention(exp time.Time) time.Time {
	return exp.Add(MaxLeeway + ReplayMargin)
}

// RetainUntil returns when a store that consumes a key at now, by its own
// clock, may forget it: expiresAt, but no sooner than MinReplayRetention
// after now. Every store applies it, so all stores keep records equally long.
func RetainUntil(expiresAt, now time.Time) time.Time {
	if floor := now.Add(MinReplayRetention); expiresAt.Before(floor) {
		return floor
	}
	return expiresAt
}

// ReplayKey is the key under which a token's use is recorded: the pair
// (iss, jti), as "iss jti" (docs/PROTOCOL.md, Replay store). It is never the
// token string, which an attacker can re-spell (ECDSA signatures are
// malleable; base64 has twin encodings).
func ReplayKey(issuer, jti string) string { return issuer + " " + jti }

// ErrMarkedRevoked is returned by a ReplayStore's Consume that also checks
// a shared revocation mark in the same atomic step (revocation.ConsumeGuard)
// and found the token marked: nothing was recorded, and the Verifier
// refuses the token with ReasonRevoked.
var ErrMarkedRevoked = errors.New("broker: marked revoked in the shared store")

// ReplayStore remembers which tokens were used, so each works only once.
//
// Consume atomically records key as used until expiresAt (the Verifier
// passes ReplayRetention, which already includes ReplayMargin), extended by
// RetainUntil to at least MinReplayRetention from the store's own clock; it
// must never forget the key sooner. It returns ErrAlreadyUsed when key is
// already recorded and not yet expired, and any other error when it cannot
// tell; the verifier then fails closed with ReasonUnavailable. Two concurrent
// Consume calls for one key must never both succeed.
//
// A store that forgets its entries on restart should also implement
//
//	RemembersSince() time.Time
//
// returning when its memory starts. The verifier then refuses tokens issued
// earlier (ReasonIssuedBeforeRestart), which closes the replay window a
// restart would otherwise open.
type ReplayStore interface {
	Consume(ctx context.Context, key string, expiresAt time.Time) error
}

// MemoryReplayConfig configures a MemoryReplayStore.
type MemoryReplayConfig struct {
	// MaxEntries bounds the entries held, never exceeded. When full,
	// Consume fails (ErrStoreFull) instead of forgetting a live entry, which
	// would reopen a replay window. Capacity is split evenly between the
	// shards, so a store may report full a little before it holds
	// MaxEntries. Default 1,000,000 (about 56 MB).
	MaxEntries int
	// Shards splits the lock. Default 64, at most MaxEntries.
	Shards int
	// SweepInterval is how often expired entries are removed. Default 10s.
	SweepInterval time.Duration
	// Now returns the current time. Default time.Now.
	Now func() time.Time
}

// MemoryReplayStore is a ReplayStore for a single process. Entries are keyed
// by a 128-bit SHA-256 prefix of the replay key (fixed size whatever the
// issuer's jti length) in sharded maps, and swept when they expire.
//
// It forgets everything on restart; RemembersSince reports its start time so
// a Verifier refuses older tokens. Several replicas need a shared store.
type MemoryReplayStore struct {
	cfg      MemoryReplayConfig
	started  time.Time
	shards   []replayShard
	stop     chan struct{}
	stopOnce sync.Once
}

type replayShard struct {
	mu       sync.Mutex
	entries  map[[16]byte]int64 // expiry, unix nanoseconds
	capacity int                // this shard's share of MaxEntries
	_        [32]byte           // keep shards on separate cache lines
}

// NewMemoryReplayStore returns a started store. Call Close to stop its sweeper.
func NewMemoryReplayStore(cfg MemoryReplayConfig) (*MemoryReplayStore, error) {
	if cfg.MaxEntries == 0 {
		cfg.MaxEntries = 1_000_000
	}
	if cfg.Shards == 0 {
		cfg.Shards = 64
	}
	if cfg.SweepInterval == 0 {
		cfg.SweepInterval = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	var errs []error
	if cfg.MaxEntries < 0 {
		errs = append(errs, errors.New("field MaxEntries must be positive"))
	}
	if cfg.Shards < 1 || cfg.Shards > 4096 {
		errs = append(errs, errors.New("field Shards must be between 1 and 4096"))
	}
	if cfg.SweepInterval < 0 {
		errs = append(errs, errors.New("field SweepInterval must be positive"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("broker: memory replay store: %w", err)
	}
	n := min(cfg.Shards, cfg.MaxEntries)
	s := &MemoryReplayStore{
		cfg:     cfg,
		started: cfg.Now(),
		shards:  make([]replayShard, n),
		stop:    make(chan struct{}),
	}
	for i := range s.shards {
		s.shards[i].entries = make(map[[16]byte]int64)
		s.shards[i].capacity = cfg.MaxEntries / n
		if i < cfg.MaxEntries%n {
			s.shards[i].capacity++
		}
	}
	go s.sweepLoop()
	return s, nil
}

// Consume implements ReplayStore. It keeps key until RetainUntil(expiresAt,
// now).
func (s *MemoryReplayStore) Consume(_ context.Context, key string, expiresAt time.Time) error {
	sum := sha256.Sum256([]byte(key))
	var h [16]byte
	copy(h[:], sum[:16])
	// 32 hash bits pick the shard, so any shard count up to 4096 gets an
	// even share; capacity is per shard, and an uneven split would report
	// full long before MaxEntries.
	sh := &s.shards[binary.BigEndian.Uint32(h[:4])%uint32(len(s.shards))]
	at := s.cfg.Now()
	now, until := at.UnixNano(), RetainUntil(expiresAt, at).UnixNano()

	sh.mu.Lock()
	defer sh.mu.Unlock()
	if exp, ok := sh.entries[h]; ok && exp > now {
		return ErrAlreadyUsed
	}
	if len(sh.entries) >= sh.capacity {
		sh.sweep(now)
		if len(sh.entries) >= sh.capacity {
			return ErrStoreFull
		}
	}
	sh.entries[h] = until
	return nil
}

// RemembersSince returns when the store started: it knows nothing of uses
// before then.
func (s *MemoryReplayStore) RemembersSince() time.Time { return s.started }

// Len returns the number of entries held, expired ones not yet swept included.
func (s *MemoryReplayStore) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += len(sh.entries)
		sh.mu.Unlock()
	}
	return n
}

// Sweep removes expired entries now. The store also sweeps on its own.
func (s *MemoryReplayStore) Sweep() {
	now := s.cfg.Now().UnixNano()
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		sh.sweep(now)
		sh.mu.Unlock()
	}
}

// Close stops the sweeper. The store keeps answering Consume.
func (s *MemoryReplayStore) Close() error {
	s.stopOnce.Do(func() { close(s.stop) })
	return nil
}

func (s *MemoryReplayStore) sweepLoop() {
	t := time.NewTicker(s.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.Sweep()
		}
	}
}

func (sh *replayShard) sweep(now int64) {
	for k, exp := range sh.entries {
		if exp <= now {
			delete(sh.entries, k)
		}
	}
}
