package fetch

import (
	"context"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// Backoff is how long to wait before retrying after failures: First after
// the first, doubling with each failure up to Max, spread by ±10% jitter
// so replicas retrying one issuer do not fetch in step.
type Backoff struct {
	// First is the wait after one failure. Required (> 0).
	First time.Duration
	// Max is the longest wait. Required (>= First).
	Max time.Duration
}

// Wait returns the wait after the given number of consecutive failures
// (1 for the first).
func (b Backoff) Wait(failures int) time.Duration {
	d := b.First
	for i := 1; i < failures && d < b.Max; i++ {
		d *= 2
	}
	return jitter(min(d, b.Max))
}

// Sleep waits d, or until ctx is done; it reports whether the wait ran to
// its end.
func Sleep(ctx context.Context, d time.Duration) bool { return sleep(ctx, d) }

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// jitter spreads d by ±10%.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	spread := int64(d) / 5
	return d - time.Duration(spread/2) + time.Duration(rand.Int64N(spread+1))
}

// Cooldown bounds how often lookups of an item a snapshot lacks (an
// unknown kid) may trigger a fetch. The item is named by untrusted input:
// without it a flood of made-up names turns each request into a fetch at
// the issuer (amplification). Callers that lose a claim answer at once, so
// the flood never queues behind a fetch. It is safe for concurrent use.
type Cooldown struct {
	period time.Duration
	// last is the time in Unix nanoseconds of the last successful claim;
	// 0 means never.
	last atomic.Int64
}

// NewCooldown returns a Cooldown that allows one claim per period; a
// period of 0 allows every claim.
func NewCooldown(period time.Duration) *Cooldown { return &Cooldown{period: period} }

// Claim reports whether a lookup at now may trigger a fetch, and if so
// starts a new cool-down. A clock that went backwards allows a claim.
func (c *Cooldown) Claim(now time.Time) bool {
	for {
		prev := c.last.Load()
		if prev != 0 {
			if d := now.Sub(time.Unix(0, prev)); d >= 0 && d < c.period {
				return false
			}
		}
		if c.last.CompareAndSwap(prev, now.UnixNano()) {
			return true
		}
	}
}
