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
// address: loginClientBurst, refilled one every loginClientRefill. Every
// configured user is tracked (so at most one budget per user), and at most
// loginMaxTracks unknown usernames and loginMaxClients addresses; usernames
// longer than maxUsernameLen are refused before anything is tracked, so the
// limiter's memory is bounded (loginLimiterMaxBytes).
const (
	loginBurst        = 10
	loginRefill       = 6 * time.Second
	loginMaxTracks    = 10_000
	loginClientBurst  = 30
	loginClientRefill = 2 * time.Second
	loginMaxClients   = 10_000
	maxUsernameLen    = 64
)

// loginLimiterMaxBytes is the most heap the limiter holds with every map
// full of the longest keys and loginBoundUsers configured users:
// 10,000 × (64-byte key, limiter, map slot) unknown usernames, 10,000 ×
// (address key, limiter, map slot) and 1,000 configured users, about
// 3.4 MiB measured on amd64. Each further configured user adds about
// 200 bytes. TestLoginLimiterMemoryBound checks it
// and the README states it.
const (
	loginLimiterMaxBytes = 5 << 20
	loginBoundUsers      = 1_000
)

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
//
// Configured users' budgets are kept apart from unknown usernames': a spray
// of made-up names (from many addresses, such as many IPv6 /64s) fills only
// the unknown table, and never locks a real user out.
type loginLimiter struct {
	mu sync.Mutex
	// isUser reports whether a username is a configured user.
	isUser func(username string) bool
	// known holds configured users' budgets: at most one per user.
	known map[string]*rate.Limiter
	// unknown holds every other username's, at most loginMaxTracks.
	unknown map[string]*rate.Limiter
	clients map[netip.Addr]*rate.Limiter
	// unknownSwept and clientsSwept are when each full map was last swept.
	unknownSwept, clientsSwept time.Time
}

// newLoginLimiter returns a limiter for the users isUser reports as
// configured; nil means none.
func newLoginLimiter(isUser func(username string) bool) *loginLimiter {
	if isUser == nil {
		isUser = func(string) bool { return false }
	}
	return &loginLimiter{
		isUser:  isUser,
		known:   make(map[string]*rate.Limiter),
		unknown: make(map[string]*rate.Limiter),
		clients: make(map[netip.Addr]*rate.Limiter),
	}
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
// Memory is bounded. A configured user always has a budget. When
// loginMaxTracks unknown usernames are tracked, those whose budget is full
// again are forgotten (they carry no state); if none is, an attempt for a
// new unknown username is refused rather than any budget reset, so spraying
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
	ul, err := l.usernameBudget(username, now)
	if err != nil {
		return err
	}
	if !ul.AllowN(now, 1) {
		return errUsernameLimited
	}
	return nil
}

// usernameBudget returns username's budget, creating it if need be, or
// errUsernameLimited when username is unknown and the unknown table is full
// of live budgets. The caller holds l.mu.
func (l *loginLimiter) usernameBudget(username string, now time.Time) (*rate.Limiter, error) {
	known := l.isUser(username)
	table := l.unknown
	if known {
		table = l.known
	}
	if lim, ok := table[username]; ok {
		return lim, nil
	}
	if !known && len(table) >= loginMaxTracks {
		l.unknownSwept = forgetFull(table, loginBurst, l.unknownSwept, loginRefill, now)
		if len(table) >= loginMaxTracks {
			return nil, errUsernameLimited
		}
	}
	lim := rate.NewLimiter(rate.Every(loginRefill), loginBurst)
	table[username] = lim
	return lim, nil
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

// acquire takes a queue place, or returns errBusy at once when the queue is
// full; then calls admit (when not nil) and, if it refuses, gives the place
// back and returns its error; then waits for a slot, or returns ctx's error
// when it ends first. On success the caller must call release.
//
// admit runs only for attempts the queue took, so what it records (the
// sign-in budgets) is not spent by attempts refused as busy, which do no
// work; it must not block, since it holds a queue place.
func (g *workGate) acquire(ctx context.Context, admit func() error) (release func(), err error) {
	select {
	case g.admit <- struct{}{}:
	default:
		return nil, errBusy
	}
	if admit != nil {
		if err := admit(); err != nil {
			<-g.admit
			return nil, err
		}
	}
	select {
	case g.run <- struct{}{}:
		return func() { <-g.run; <-g.admit }, nil
	case <-ctx.Done():
		<-g.admit
		return nil, ctx.Err()
	}
}
