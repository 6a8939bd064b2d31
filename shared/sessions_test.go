package shared

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/broker/brokertest"
	"github.com/handoffbroker/handoff/broker/token"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// open reserves room and fills it, failing the test on any error.
func open(t testing.TB, s *Sessions[string], owner, data, replaced string) string {
	t.Helper()
	room, err := s.Reserve()
	require.NoError(t, err)
	id, _, err := room.Create(owner, data, replaced)
	require.NoError(t, err)
	return id
}

func TestSessions(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, s *Sessions[string], clock *brokertest.Clock)
	}{
		{
			name: "ok/new_session_of_an_owner_replaces_its_oldest",
			run: func(t *testing.T, s *Sessions[string], _ *brokertest.Clock) {
				var ids []string
				for _, data := range []string{"a1", "a2", "a3"} {
					ids = append(ids, open(t, s, "alice", data, ""))
				}
				_, ok := s.Get(ids[0])
				assert.False(t, ok, "alice's oldest session made room for her third")
				for _, id := range ids[1:] {
					_, ok := s.Get(id)
					assert.True(t, ok)
				}
				room, err := s.Reserve()
				require.NoError(t, err, "alice holds 2 of 3 slots: another owner still finds room")
				room.Release()
			},
		},
		{
			name: "fail/full_store_refuses_a_reservation",
			run: func(t *testing.T, s *Sessions[string], _ *brokertest.Clock) {
				var ids []string
				for _, owner := range []string{"alice", "bob", "carol"} {
					ids = append(ids, open(t, s, owner, owner, ""))
				}
				_, err := s.Reserve()
				assert.ErrorIs(t, err, ErrSessionsFull)
				for _, id := range ids {
					_, ok := s.Get(id)
					assert.True(t, ok, "a full store refuses; it never ends a live session to make room")
				}
			},
		},
		{
			name: "fail/reservations_count_until_released",
			run: func(t *testing.T, s *Sessions[string], _ *brokertest.Clock) {
				var held []*Reservation[string]
				for range 3 {
					room, err := s.Reserve()
					require.NoError(t, err)
					held = append(held, room)
				}
				_, err := s.Reserve()
				require.ErrorIs(t, err, ErrSessionsFull, "three handoffs being verified hold all the room")
				held[0].Release()
				held[0].Release()
				room, err := s.Reserve()
				require.NoError(t, err, "a released reservation is room again, once")
				_, err = s.Reserve()
				assert.ErrorIs(t, err, ErrSessionsFull)
				room.Release()
			},
		},
		{
			name: "fail/reservation_fills_once",
			run: func(t *testing.T, s *Sessions[string], _ *brokertest.Clock) {
				room, err := s.Reserve()
				require.NoError(t, err)
				_, _, err = room.Create("alice", "a1", "")
				require.NoError(t, err)
				_, _, err = room.Create("alice", "a2", "")
				assert.ErrorIs(t, err, ErrReservationUsed)
				released, err := s.Reserve()
				require.NoError(t, err)
				released.Release()
				_, _, err = released.Create("bob", "b1", "")
				assert.ErrorIs(t, err, ErrReservationUsed)
				s.mu.Lock()
				defer s.mu.Unlock()
				assert.Len(t, s.sessions, 1)
				assert.Zero(t, s.reserved)
			},
		},
		{
			name: "ok/expired_sessions_make_room",
			run: func(t *testing.T, s *Sessions[string], clock *brokertest.Clock) {
				for _, owner := range []string{"alice", "bob", "carol"} {
					open(t, s, owner, owner, "")
				}
				clock.Advance(time.Minute)
				id := open(t, s, "dave", "d", "")
				_, ok := s.Get(id)
				assert.True(t, ok)
				s.mu.Lock()
				defer s.mu.Unlock()
				assert.Len(t, s.sessions, 1)
				assert.Equal(t, map[string][]sessionKey{"dave": {keyOf(id)}}, s.byOwner, "the index forgets swept sessions")
			},
		},
		{
			name: "ok/replaced_session_is_dropped",
			run: func(t *testing.T, s *Sessions[string], _ *brokertest.Clock) {
				first := open(t, s, "alice", "a1", "")
				second := open(t, s, "bob", "b1", first)
				_, ok := s.Get(first)
				assert.False(t, ok)
				s.Delete(second)
				s.mu.Lock()
				defer s.mu.Unlock()
				assert.Empty(t, s.sessions)
				assert.Empty(t, s.byOwner)
				assert.Zero(t, s.reserved)
			},
		},
		{
			name: "ok/get_returns_the_session_until_it_expires",
			run: func(t *testing.T, s *Sessions[string], clock *brokertest.Clock) {
				start := clock.Now()
				id := open(t, s, "alice", "a1", "")
				clock.Advance(29 * time.Second)
				got, ok := s.Get(id)
				require.True(t, ok)
				assert.Equal(t, Session[string]{Owner: "alice", CreatedAt: start, ExpiresAt: start.Add(30 * time.Second), Data: "a1"}, got)
				clock.Advance(time.Second)
				_, ok = s.Get(id)
				assert.False(t, ok, "expired at CreatedAt + TTL")
				s.mu.Lock()
				defer s.mu.Unlock()
				assert.Empty(t, s.sessions, "an expired session found by Get is dropped")
			},
		},
		{
			name: "fail/unknown_and_empty_ids",
			run: func(t *testing.T, s *Sessions[string], _ *brokertest.Clock) {
				id := open(t, s, "alice", "a1", "")
				for _, give := range []string{"", "nope", id[:len(id)-1], strings.ToUpper(id)} {
					_, ok := s.Get(give)
					assert.False(t, ok, "id %q", give)
				}
				s.Delete("")
				s.Delete("nope")
				_, ok := s.Get(id)
				assert.True(t, ok, "deleting unknown ids ends nothing")
			},
		},
		{
			name: "ok/delete_owner_ends_only_that_owners_sessions",
			run: func(t *testing.T, s *Sessions[string], _ *brokertest.Clock) {
				a1 := open(t, s, "alice", "a1", "")
				a2 := open(t, s, "alice", "a2", "")
				b1 := open(t, s, "bob", "b1", "")
				assert.Equal(t, 2, s.DeleteOwner("alice"))
				assert.Zero(t, s.DeleteOwner("alice"))
				for _, id := range []string{a1, a2} {
					_, ok := s.Get(id)
					assert.False(t, ok)
				}
				_, ok := s.Get(b1)
				assert.True(t, ok)
				s.mu.Lock()
				defer s.mu.Unlock()
				assert.Equal(t, map[string][]sessionKey{"bob": {keyOf(b1)}}, s.byOwner)
			},
		},
		{
			name: "ok/update_changes_live_sessions_only",
			run: func(t *testing.T, s *Sessions[string], clock *brokertest.Clock) {
				old := open(t, s, "alice", "a1", "")
				clock.Advance(20 * time.Second)
				fresh := open(t, s, "bob", "b1", "")
				clock.Advance(10 * time.Second) // old has expired, not yet swept
				var seen []string
				n := s.Update(func(d *string) bool {
					seen = append(seen, *d)
					*d += "-revoked"
					return true
				})
				assert.Equal(t, 1, n)
				assert.Equal(t, []string{"b1"}, seen)
				got, ok := s.Get(fresh)
				require.True(t, ok)
				assert.Equal(t, "b1-revoked", got.Data)
				_, ok = s.Get(old)
				assert.False(t, ok)
				assert.Zero(t, s.Update(func(*string) bool { return false }), "calls that change nothing are not counted")
			},
		},
		{
			name: "ok/sweep_drops_expired_sessions",
			run: func(t *testing.T, s *Sessions[string], clock *brokertest.Clock) {
				open(t, s, "alice", "a1", "")
				clock.Advance(20 * time.Second)
				b1 := open(t, s, "bob", "b1", "")
				clock.Advance(10 * time.Second)
				s.Sweep()
				s.mu.Lock()
				defer s.mu.Unlock()
				assert.Len(t, s.sessions, 1)
				assert.Equal(t, map[string][]sessionKey{"bob": {keyOf(b1)}}, s.byOwner)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := brokertest.NewClock(time.Unix(1_800_000_000, 0))
			s, err := NewSessions[string](SessionsConfig{TTL: 30 * time.Second, MaxSessions: 3, MaxPerOwner: 2, Now: clock.Now})
			require.NoError(t, err)
			tt.run(t, s, clock)
		})
	}
}

// TestSessionIDs: an id is the 256 bits read from the injected Rand, and
// the store keeps only its SHA-256.
func TestSessionIDs(t *testing.T) {
	random := bytes.Repeat([]byte{0xA5}, 32)
	s, err := NewSessions[string](SessionsConfig{TTL: time.Minute, MaxSessions: 2, MaxPerOwner: 1, Rand: bytes.NewReader(random)})
	require.NoError(t, err)
	id := open(t, s, "alice", "a1", "")
	assert.Equal(t, base64.RawURLEncoding.EncodeToString(random), id)
	s.mu.Lock()
	for key := range s.sessions {
		assert.Equal(t, sessionKey(sha256.Sum256([]byte(id))), key)
	}
	s.mu.Unlock()

	room, err := s.Reserve()
	require.NoError(t, err)
	_, _, err = room.Create("bob", "b1", "")
	assert.ErrorIs(t, err, io.EOF, "Rand ran dry: no session, and the error says why")
	room.Release()
	s.mu.Lock()
	defer s.mu.Unlock()
	assert.Len(t, s.sessions, 1)
	assert.Zero(t, s.reserved, "the unfilled reservation was released")
}

func TestSessionsConfig(t *testing.T) {
	tests := []struct {
		name    string
		give    SessionsConfig
		wantErr []string
	}{
		{name: "ok/bounds", give: SessionsConfig{TTL: time.Minute, MaxSessions: 10, MaxPerOwner: 10}},
		{name: "fail/zero_config", give: SessionsConfig{}, wantErr: []string{"TTL must be positive", "MaxSessions must be positive", "MaxPerOwner 0 must be between 1 and MaxSessions 0"}},
		{name: "fail/per_owner_above_total", give: SessionsConfig{TTL: time.Minute, MaxSessions: 5, MaxPerOwner: 6}, wantErr: []string{"MaxPerOwner 6 must be between 1 and MaxSessions 5"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewSessions[struct{}](tt.give)
			if len(tt.wantErr) == 0 {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, want := range tt.wantErr {
				assert.ErrorContains(t, err, want)
			}
		})
	}
}

// server2Session has the fields of SERVER2's session data (server2/sessions.go),
// so BenchmarkSessionsFootprint measures the store as SERVER2 fills it.
type server2Session struct {
	Issuer   string
	Subject  string
	Task     token.Task
	TokenID  string
	KeyID    string
	IssuedAt time.Time
	CSRF     string
	Revoked  string
}

// BenchmarkSessionsFootprint reports the heap held per live session in a
// store of 1,000,000 sessions filled as SERVER2 fills it: each session's
// strings decoded from its own token (issuer, subject, the demo task with
// its three parameters and digest, a UUID jti), the signing key's id shared,
// a fresh CSRF token. "one_per_subject" is the worst case for the
// per-subject index; "ten_per_subject" is SERVER2's default
// --max-sessions-per-subject reached by every subject.
func BenchmarkSessionsFootprint(b *testing.B) {
	const sessions = 1_000_000
	keyID := strings.Repeat("k", 43)
	for _, tt := range []struct {
		name       string
		perSubject int
	}{
		{name: "one_per_subject", perSubject: 1},
		{name: "ten_per_subject", perSubject: 10},
	} {
		b.Run(tt.name, func(b *testing.B) {
			var perSession float64
			for range b.N {
				before := liveHeap()
				s, err := NewSessions[server2Session](SessionsConfig{TTL: time.Hour, MaxSessions: sessions, MaxPerOwner: tt.perSubject})
				require.NoError(b, err)
				now := time.Now()
				for j := range sessions {
					data := server2Session{
						Issuer:  strings.Clone("http://localhost:8081"),
						Subject: fmt.Sprintf("user-%07d", j/tt.perSubject),
						Task: token.Task{
							ID: fmt.Sprintf("transfer-%07d", j), Action: strings.Clone("approve"),
							Params:       map[string]string{strings.Clone("amount"): fmt.Sprintf("%d.00", j%1000), strings.Clone("currency"): strings.Clone("EUR"), strings.Clone("payee"): strings.Clone("ACME Corp")},
							ParamsDigest: "sha256:" + strings.Repeat("d", 43),
						},
						TokenID:  fmt.Sprintf("0e2d4c6a-8b1f-4c3e-9a7d-%012d", j),
						KeyID:    keyID,
						IssuedAt: now,
					}
					if data.CSRF, err = RandomID(rand.Reader); err != nil {
						b.Fatal(err)
					}
					room, err := s.Reserve()
					if err != nil {
						b.Fatalf("session %d: %v", j, err)
					}
					if _, _, err := room.Create(data.Subject, data, ""); err != nil {
						b.Fatal(err)
					}
				}
				after := liveHeap()
				if _, err := s.Reserve(); !errors.Is(err, ErrSessionsFull) {
					b.Fatalf("store of %d sessions: Reserve = %v, want ErrSessionsFull", sessions, err)
				}
				runtime.KeepAlive(s)
				perSession = float64(after-before) / sessions
			}
			b.ReportMetric(perSession, "B/session")
			b.ReportMetric(perSession*sessions/1e6, "MB/1M")
		})
	}
}

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestRandomID: 256 bits from the reader, base64url without padding, in
// two allocations (the bytes read through the io.Reader and the id);
// encoding through EncodeToString took a third.
func TestRandomID(t *testing.T) {
	src := bytes.Repeat([]byte{0xfb, 0xff, 0x01}, 11)
	id, err := RandomID(bytes.NewReader(src))
	require.NoError(t, err)
	require.Equal(t, base64.RawURLEncoding.EncodeToString(src[:32]), id)

	_, err = RandomID(bytes.NewReader(src[:31]))
	require.ErrorIs(t, err, io.ErrUnexpectedEOF, "a short read must fail, not pad the id")

	r := bytes.NewReader(nil)
	allocs := testing.AllocsPerRun(100, func() {
		r.Reset(src)
		if _, err := RandomID(r); err != nil {
			t.Fatal(err)
		}
	})
	require.LessOrEqual(t, allocs, 2.0)
}
