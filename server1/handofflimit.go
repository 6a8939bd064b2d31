package main

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// handoffLimiter limits how fast one user can have tokens minted, on the
// browser and API paths alike: each user gets a burst that refills at a
// steady rate. Without it one signed-in user could mint without end and
// fill the relying services' session stores and this instance's record of
// minted tokens for everyone. Callers pass only known users, so the map
// holds at most one limiter per configured user.
type handoffLimiter struct {
	every rate.Limit
	burst int

	mu     sync.Mutex
	byUser map[string]*rate.Limiter
}

func newHandoffLimiter(perMinute, burst int) *handoffLimiter {
	return &handoffLimiter{
		every:  rate.Limit(float64(perMinute) / 60),
		burst:  burst,
		byUser: make(map[string]*rate.Limiter),
	}
}

// take spends one handoff of subject at now. It returns 0 when the handoff
// is within budget, and otherwise how long until the next one is, without
// spending anything.
func (l *handoffLimiter) take(subject string, now time.Time) time.Duration {
	l.mu.Lock()
	lim, ok := l.byUser[subject]
	if !ok {
		lim = rate.NewLimiter(l.every, l.burst)
		l.byUser[subject] = lim
	}
	l.mu.Unlock()
	r := lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d
	}
	return 0
}
