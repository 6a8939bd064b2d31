package main

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Sign-in attempt budget per username: a burst of loginBurst, refilled one
// attempt every loginRefill (10 a minute once the burst is spent).
const (
	loginBurst     = 10
	loginRefill    = 6 * time.Second
	loginMaxTracks = 10_000
)

// loginLimiter slows online password guessing and credential stuffing
// against one account: each username gets a small budget of attempts that
// refills slowly. It is checked before the password hash, so a locked
// username also costs the server no bcrypt work.
type loginLimiter struct {
	mu       sync.Mutex
	limiters map[string]*rate.Limiter
}

func newLoginLimiter() *loginLimiter {
	return &loginLimiter{limiters: make(map[string]*rate.Limiter)}
}

// allow spends one attempt for username at now and reports whether it was
// within budget. Memory is bounded: when loginMaxTracks usernames are
// tracked, those whose budget is full again are forgotten (they carry no
// state); if none is, the attempt is refused rather than any budget reset,
// so spraying usernames cannot wipe another account's limit.
func (l *loginLimiter) allow(username string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.limiters[username]
	if !ok {
		if len(l.limiters) >= loginMaxTracks {
			for name, other := range l.limiters {
				if other.TokensAt(now) >= loginBurst {
					delete(l.limiters, name)
				}
			}
			if len(l.limiters) >= loginMaxTracks {
				return false
			}
		}
		lim = rate.NewLimiter(rate.Every(loginRefill), loginBurst)
		l.limiters[username] = lim
	}
	return lim.AllowN(now, 1)
}
