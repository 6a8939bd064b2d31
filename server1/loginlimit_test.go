package main

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/broker/brokertest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sprayClient is the i-th of many distinct client addresses.
func sprayClient(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
}

func TestLoginLimiterPerClient(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	tests := []struct {
		name       string
		giveSpray  netip.Addr // sends loginClientBurst attempts, each for a new username
		giveClient netip.Addr // then tries once more
		wantErr    error
	}{
		{
			name:      "fail/same_ipv4",
			giveSpray: netip.MustParseAddr("192.0.2.1"), giveClient: netip.MustParseAddr("192.0.2.1"),
			wantErr: errClientLimited,
		},
		{
			name:      "ok/other_ipv4",
			giveSpray: netip.MustParseAddr("192.0.2.1"), giveClient: netip.MustParseAddr("192.0.2.2"),
		},
		{
			name:      "fail/same_ipv6_64",
			giveSpray: clientKey("2001:db8:1:2::1"), giveClient: clientKey("2001:db8:1:2:ffff::9"),
			wantErr: errClientLimited,
		},
		{
			name:      "ok/other_ipv6_64",
			giveSpray: clientKey("2001:db8:1:2::1"), giveClient: clientKey("2001:db8:1:3::1"),
		},
		{
			name:      "fail/ipv4_mapped_is_ipv4",
			giveSpray: clientKey("192.0.2.7"), giveClient: clientKey("::ffff:192.0.2.7"),
			wantErr: errClientLimited,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLoginLimiter(nil)
			for i := range loginClientBurst {
				require.NoError(t, l.allow(tt.giveSpray, fmt.Sprintf("user-%d", i), now))
			}

			err := l.allow(tt.giveClient, "victim", now)

			assert.ErrorIs(t, err, tt.wantErr)
			if tt.wantErr != nil {
				_, tracked := l.unknown["victim"]
				assert.False(t, tracked, "a refused client's username is not tracked")
				assert.NoError(t, l.allow(tt.giveClient, "victim", now.Add(loginClientRefill)), "one attempt back per refill period")
			}
		})
	}
}

func TestLoginLimiterUsernameLength(t *testing.T) {
	l := newLoginLimiter(nil)
	now := time.Unix(1_800_000_000, 0)
	client := netip.MustParseAddr("192.0.2.1")

	assert.NoError(t, l.allow(client, strings.Repeat("u", maxUsernameLen), now))
	for range 2 * loginClientBurst {
		require.ErrorIs(t, l.allow(client, strings.Repeat("u", maxUsernameLen+1), now), errUsernameTooLong)
	}
	assert.Len(t, l.unknown, 1, "a too-long username is never tracked")
	assert.NoError(t, l.allow(client, "alice", now), "nor does it spend the client's budget")
}

func TestLoginLimiterClientsStayBounded(t *testing.T) {
	l := newLoginLimiter(nil)
	now := time.Unix(1_800_000_000, 0)
	for i := range loginMaxClients + 10 {
		l.allow(sprayClient(i), "alice", now)
	}
	assert.Len(t, l.clients, loginMaxClients, "a full map forgets an address rather than grow")
	_, tracked := l.clients[sprayClient(loginMaxClients+9)]
	assert.True(t, tracked, "a new client still gets a budget")
}

// TestLoginLimiterMemoryBound fills every map to its bound with the
// longest keys (loginBoundUsers configured users, then the unknown-username
// and address tables), then sprays 10,000 usernames of 4 KiB (before the
// length cap, 10,000 of 64 KiB held about 626 MiB), and checks the heap the
// limiter holds against loginLimiterMaxBytes, the bound the README states.
func TestLoginLimiterMemoryBound(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	configured := make(map[string]bool, loginBoundUsers)
	for i := range loginBoundUsers {
		configured[fmt.Sprintf("u%0*d", maxUsernameLen-1, i)] = true
	}
	names := make([]string, loginMaxTracks+10)
	for i := range names {
		names[i] = fmt.Sprintf("%0*d", maxUsernameLen, i)
	}
	long := make([]string, loginMaxTracks)
	for i := range long {
		long[i] = fmt.Sprintf("%0*d", 4<<10, i)
	}
	before := heap()
	l := newLoginLimiter(func(name string) bool { return configured[name] })
	// Each call gets its own copy, as each request parses its own: the
	// limiter's keys are then counted in the heap it holds.
	i := 0
	for name := range configured {
		l.allow(sprayClient(i), strings.Clone(name), now)
		i++
	}
	for i, name := range names {
		l.allow(sprayClient(i), strings.Clone(name), now)
		l.allow(clientKey(fmt.Sprintf("2001:db8:%x:%x::1", i>>16, i&0xffff)), strings.Clone(name), now)
	}
	for i, name := range long {
		l.allow(sprayClient(i), strings.Clone(name), now)
	}
	held := int64(heap()) - int64(before)
	runtime.KeepAlive(names)
	runtime.KeepAlive(long)
	runtime.KeepAlive(configured)

	assert.Len(t, l.known, loginBoundUsers)
	assert.LessOrEqual(t, len(l.unknown), loginMaxTracks)
	assert.LessOrEqual(t, len(l.clients), loginMaxClients)
	t.Logf("limiter holds %d configured users, %d unknown usernames and %d clients in %.2f MiB",
		len(l.known), len(l.unknown), len(l.clients), float64(held)/(1<<20))
	assert.LessOrEqual(t, held, int64(loginLimiterMaxBytes), "the limiter's memory is bounded")
	runtime.KeepAlive(l)
}

// TestLoginLimiterFullUnknownTable fills the unknown-username table from
// many IPv6 /64s, as a spray of made-up names does: configured users still
// get their own budgets, new unknown names do not.
func TestLoginLimiterFullUnknownTable(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	tests := []struct {
		name         string
		giveUsername string
		wantErr      error
	}{
		{name: "ok/configured_user", giveUsername: "alice"},
		{name: "ok/configured_user_spent_by_spray", giveUsername: "bob"},
		{name: "fail/new_unknown_username", giveUsername: "mallory", wantErr: errUsernameLimited},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLoginLimiter(func(name string) bool { return name == "alice" || name == "bob" })
			for i := range loginMaxTracks {
				require.NoError(t, l.allow(clientKey(fmt.Sprintf("2001:db8:%x:%x::1", i>>16, i&0xffff)), fmt.Sprintf("spray-%d", i), now))
			}
			require.NoError(t, l.allow(clientKey("2001:db8:ffff::1"), "bob", now), "the sprayer tries a real user too")
			require.Len(t, l.unknown, loginMaxTracks)

			err := l.allow(netip.MustParseAddr("192.0.2.1"), tt.giveUsername, now)

			assert.ErrorIs(t, err, tt.wantErr)
			assert.Len(t, l.unknown, loginMaxTracks, "the unknown table stays bounded")
		})
	}
}

func TestWorkGate(t *testing.T) {
	g := newWorkGate(1, 1)
	release, err := g.acquire(context.Background(), nil)
	require.NoError(t, err)

	waited := make(chan error, 1)
	go func() {
		r, err := g.acquire(context.Background(), nil)
		if err == nil {
			r()
		}
		waited <- err
	}()
	require.Eventually(t, func() bool { return len(g.admit) == 2 }, 10*time.Second, time.Millisecond, "the second comparison queues")

	_, err = g.acquire(context.Background(), nil)
	assert.ErrorIs(t, err, errBusy, "a full queue refuses at once")

	release()
	require.NoError(t, <-waited, "the queued comparison runs once the slot is free")

	ctx, cancel := context.WithCancel(context.Background())
	release, err = g.acquire(context.Background(), nil)
	require.NoError(t, err)
	cancel()
	_, err = g.acquire(ctx, nil)
	assert.ErrorIs(t, err, context.Canceled)
	release()
	assert.Zero(t, len(g.admit), "every slot and queue place came back")
}

func TestSignInRefusals(t *testing.T) {
	tests := []struct {
		name         string
		giveBefore   func(t *testing.T, ts *testServer)
		giveUsername string
		wantStatus   int
		wantCode     string
		wantRetry    string
	}{
		{
			name:         "fail/username_too_long",
			giveUsername: strings.Repeat("a", maxUsernameLen+1),
			wantStatus:   http.StatusBadRequest, wantCode: "invalid_username",
		},
		{
			name: "fail/client_sprayed_usernames",
			giveBefore: func(t *testing.T, ts *testServer) {
				for i := range loginClientBurst {
					b := ts.browser(t)
					res := b.PostForm("/login", url.Values{csrfField: {b.csrfFromLogin()}, "username": {fmt.Sprintf("spray-%d", i)}, "password": {"x"}}, nil)
					require.Equal(t, http.StatusUnauthorized, res.StatusCode)
				}
			},
			giveUsername: "alice",
			wantStatus:   http.StatusTooManyRequests, wantCode: "too_many_attempts", wantRetry: "60",
		},
		{
			name: "fail/bcrypt_queue_full",
			giveBefore: func(t *testing.T, ts *testServer) {
				ts.app.bcryptGate = newWorkGate(1, 0)
				release, err := ts.app.bcryptGate.acquire(context.Background(), nil)
				require.NoError(t, err)
				t.Cleanup(release)
			},
			giveUsername: "alice",
			wantStatus:   http.StatusServiceUnavailable, wantCode: "sign_in_busy", wantRetry: "1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A stopped clock: no budget refills while giveBefore spends it,
			// however slowly this machine runs the sign-ins.
			clock := brokertest.NewClock(time.Now().Truncate(time.Second))
			ts := newTestServerWith(t, testConfig(t), options{Now: clock.Now})
			if tt.giveBefore != nil {
				tt.giveBefore(t, ts)
			}
			b := ts.browser(t)

			res := b.PostForm("/login", url.Values{csrfField: {b.csrfFromLogin()}, "username": {tt.giveUsername}, "password": {"alice-demo-pw"}}, nil)

			require.Equal(t, tt.wantStatus, res.StatusCode, res.Body)
			assert.Equal(t, tt.wantCode, errorCode(t, res))
			assert.Equal(t, tt.wantRetry, res.Header.Get("Retry-After"))
			assert.Empty(t, b.Cookie(sessionCookie), "nobody was signed in")
			assert.NotContains(t, res.Body, strings.Repeat("a", maxUsernameLen+1), "the refused username is not echoed")
		})
	}
}

// TestSignInAfterUnknownNameSpray fills the unknown-username table, as a
// spray of made-up names over many IPv6 /64s does, and signs in as a real
// user: the spray cannot lock real users out.
func TestSignInAfterUnknownNameSpray(t *testing.T) {
	ts := newTestServer(t, testConfig(t))
	now := time.Now()
	for i := range loginMaxTracks {
		require.NoError(t, ts.app.logins.allow(clientKey(fmt.Sprintf("2001:db8:%x:%x::1", i>>16, i&0xffff)), fmt.Sprintf("spray-%d", i), now))
	}
	b := ts.browser(t)

	b.signIn("alice", "alice-demo-pw")

	assert.NotEmpty(t, b.Cookie(sessionCookie), "alice is signed in")
}

// TestSignInBusySpendsNoBudget refuses more than a username's budget of
// sign-ins as sign_in_busy: they did no work, so they spend nothing, and
// the user signs in once the queue has room.
func TestSignInBusySpendsNoBudget(t *testing.T) {
	ts := newTestServer(t, testConfig(t))
	ts.app.bcryptGate = newWorkGate(1, 0)
	release, err := ts.app.bcryptGate.acquire(context.Background(), nil)
	require.NoError(t, err)
	for i := range loginBurst + 1 {
		b := ts.browser(t)
		res := b.PostForm("/login", url.Values{csrfField: {b.csrfFromLogin()}, "username": {"alice"}, "password": {"alice-demo-pw"}}, nil)
		require.Equal(t, http.StatusServiceUnavailable, res.StatusCode, "attempt %d", i+1)
		require.Equal(t, "sign_in_busy", errorCode(t, res))
	}
	release()
	b := ts.browser(t)

	b.signIn("alice", "alice-demo-pw")

	assert.NotEmpty(t, b.Cookie(sessionCookie), "alice is signed in")
}
