package main

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Sign-in limits. Per username: a burst of loginBurst attempts, refilled
// one every loginRefill (10 a minute once the burst is spent). Per client
// address: loginClientBurst, refilled one every loginClientRefill. At most
// loginMaxTracks usernames and loginMaxClients addresses are tracked, and
// usernames longer than maxUsernameLen are refused before anything is
// tracked, so the limiter's memory is bounded (loginLimiterMaxBytes).
const (
	loginBurst        = 10
	loginRefill       = 6 * time.Second
	loginMaxTracks    = 10_000
	loginClientBurst  = 30
	loginClientRefill = 2 * time.Second
	loginMaxClients   = 10_000
	maxUsernameLen    = 64
)

// loginLimiterMaxBytes is the most heap the limiter holds with both maps
// full of the longest keys: 10,000 × (64-byte key, limiter, map slot) and
// 10,000 × (address key, limiter, map slot), about 3.2 MiB measured on
// amd64. TestLoginLimiterMemoryBound checks it and the README states it.
const loginLimiterMaxBytes = 5 << 20

// Why allow refused an attempt.
var (
	errUsernameTooLong = errors.New("username longer than the limit")
	errClientLimited   = errors.New("too many sign-in attempts from this client")
	errUsernameLimited = errors.New("too many sign-in attempts for this username")
)

// loginLimiter slows online password guessing and credential stuffing: each
// username gets a small budget of attempts that refills slowly, so one
// account cannot be guessed at fast from anywhere, and each client address
// gets a larger one, so one client cannot spray many usernames (each new
// username costs a bcrypt comparison). It is checked before the password
// hash, so a refused attempt costs the server no bcrypt work.
type loginLimiter struct {
	mu      sync.Mutex
	users   map[string]*rate.Limiter
	clients map[netip.Addr]*rate.Limiter
	// usersSwept and clientsSwept are when each full map was last swept.
	usersSwept, clientsSwept time.Time
}

func newLoginLimiter() *loginLimiter {
	return &loginLimiter{users: make(map[string]*rate.Limiter), clients: make(map[netip.Addr]*rate.Limiter)}
}

// clientKey is the address a client's budget is kept under: an IPv6
// client's /64, since one host usually holds a whole /64 and could
// otherwise take a fresh budget per address.
func clientKey(ip string) netip.Addr {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return netip.Addr{}
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// allow spends one attempt of client and one of username at now, or
// returns why it refused: errUsernameTooLong (nothing tracked),
// errClientLimited (the username's budget untouched) or
// errUsernameLimited.
//
// Memory is bounded. When loginMaxTracks usernames are tracked, those
// whose budget is full again are forgotten (they carry no state); if none
// is, the attempt is refused rather than any budget reset, so spraying
// usernames cannot wipe another account's limit. When loginMaxClients
// addresses are tracked, full budgets are forgotten and, if none is, any
// one: the address budget only slows one client, and resetting it cannot
// open an account to faster guessing. A full map is swept at most once per
// refill period, so a spray cannot make every attempt scan it.
func (l *loginLimiter) allow(client netip.Addr, username string, now time.Time) error {
	if len(username) > maxUsernameLen {
		return errUsernameTooLong
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	cl, ok := l.clients[client]
	if !ok {
		if len(l.clients) >= loginMaxClients {
			l.clientsSwept = forgetFull(l.clients, loginClientBurst, l.clientsSwept, loginClientRefill, now)
			for k := range l.clients {
				if len(l.clients) < loginMaxClients {
					break
				}
				delete(l.clients, k)
			}
		}
		cl = rate.NewLimiter(rate.Every(loginClientRefill), loginClientBurst)
		l.clients[client] = cl
	}
	if !cl.AllowN(now, 1) {
		return errClientLimited
	}
	ul, ok := l.users[username]
	if !ok {
		if len(l.users) >= loginMaxTracks {
			l.usersSwept = forgetFull(l.users, loginBurst, l.usersSwept, loginRefill, now)
			if len(l.users) >= loginMaxTracks {
				return errUsernameLimited
			}
		}
		ul = rate.NewLimiter(rate.Every(loginRefill), loginBurst)
		l.users[username] = ul
	}
	if !ul.AllowN(now, 1) {
		return errUsernameLimited
	}
	return nil
}

// forgetFull drops the limiters whose budget has refilled completely,
// unless it last did so within one refill period (nothing much can have
// refilled since), and returns when it last swept. The pause keeps a
// stream of new keys against a full map from costing a scan each.
func forgetFull[K comparable](m map[K]*rate.Limiter, burst int, swept time.Time, refill time.Duration, now time.Time) time.Time {
	if !swept.IsZero() && now.Sub(swept) < refill {
		return swept
	}
	for k, lim := range m {
		if lim.TokensAt(now) >= float64(burst) {
			delete(m, k)
		}
	}
	return now
}

// workGate bounds concurrent bcrypt comparisons: a spray of sign-ins would
// otherwise run one per request on every core at once and slow everyone's
// sign-in (and every other request) several-fold. At most slots run; at
// most queue more wait; beyond that acquire refuses at once.
type workGate struct {
	run   chan struct{}
	admit chan struct{}
}

func newWorkGate(slots, queue int) *workGate {
	return &workGate{run: make(chan struct{}, slots), admit: make(chan struct{}, slots+queue)}
}

// errBusy is returned by acquire when the queue is full.
var errBusy = errors.New("too many sign-ins in progress")

// acquire waits for a slot, or returns errBusy when the queue is full or
// ctx's error when it ends first. On success the caller must call release.
func (g *workGate) acquire(ctx context.Context) (release func(), err error) {
	select {
	case g.admit <- struct{}{}:
	default:
		return nil, errBusy
	}
	select {
	case g.run <- struct{}{}:
		return func() { <-g.run; <-g.admit }, nil
	case <-ctx.Done():
		<-g.admit
		return nil, ctx.Err()
	}
}
