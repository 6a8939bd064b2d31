package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/broker/token"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// handoffFor mints the demo task for subject.
func handoffFor(subject string) token.MintRequest {
	req := demoRequest()
	req.Subject = subject
	return req
}

func TestSessionStoreBounds(t *testing.T) {
	claims := func(sub, jti string) token.Claims {
		return token.Claims{Subject: sub, ID: jti, Task: token.Task{ID: "t-" + jti, Action: "approve"}}
	}
	tests := []struct {
		name string
		run  func(t *testing.T, s *sessionStore, clock *fakeClock)
	}{
		{
			name: "ok/new_session_of_a_subject_replaces_its_oldest",
			run: func(t *testing.T, s *sessionStore, _ *fakeClock) {
				var ids []string
				for _, jti := range []string{"a1", "a2", "a3"} {
					room, err := s.reserve()
					require.NoError(t, err)
					id, _ := s.create(room, claims("alice", jti), "")
					ids = append(ids, id)
				}
				_, ok := s.get(ids[0])
				assert.False(t, ok, "alice's oldest session made room for her third")
				for _, id := range ids[1:] {
					_, ok := s.get(id)
					assert.True(t, ok)
				}
				room, err := s.reserve()
				require.NoError(t, err, "alice holds 2 of 3 slots: another subject still finds room")
				room.release()
			},
		},
		{
			name: "fail/full_store_refuses_a_reservation",
			run: func(t *testing.T, s *sessionStore, _ *fakeClock) {
				for _, sub := range []string{"alice", "bob", "carol"} {
					room, err := s.reserve()
					require.NoError(t, err)
					s.create(room, claims(sub, sub), "")
				}
				_, err := s.reserve()
				assert.ErrorIs(t, err, errTooManySessions)
			},
		},
		{
			name: "fail/reserved_slots_count_until_released",
			run: func(t *testing.T, s *sessionStore, _ *fakeClock) {
				var held []*slot
				for range 3 {
					room, err := s.reserve()
					require.NoError(t, err)
					held = append(held, room)
				}
				_, err := s.reserve()
				require.ErrorIs(t, err, errTooManySessions, "three handoffs being verified hold all the room")
				held[0].release()
				held[0].release()
				room, err := s.reserve()
				require.NoError(t, err, "a released slot is room again, once")
				_, err = s.reserve()
				assert.ErrorIs(t, err, errTooManySessions)
				room.release()
			},
		},
		{
			name: "ok/expired_sessions_make_room",
			run: func(t *testing.T, s *sessionStore, clock *fakeClock) {
				for _, sub := range []string{"alice", "bob", "carol"} {
					room, err := s.reserve()
					require.NoError(t, err)
					s.create(room, claims(sub, sub), "")
				}
				clock.Advance(time.Minute)
				room, err := s.reserve()
				require.NoError(t, err)
				id, _ := s.create(room, claims("dave", "d"), "")
				_, ok := s.get(id)
				assert.True(t, ok)
				s.mu.Lock()
				defer s.mu.Unlock()
				assert.Len(t, s.sessions, 1)
				assert.Equal(t, map[string][]string{"dave": {id}}, s.bySubject, "the index forgets swept sessions")
			},
		},
		{
			name: "ok/replaced_session_is_dropped",
			run: func(t *testing.T, s *sessionStore, _ *fakeClock) {
				room, err := s.reserve()
				require.NoError(t, err)
				first, _ := s.create(room, claims("alice", "a1"), "")
				room, err = s.reserve()
				require.NoError(t, err)
				second, _ := s.create(room, claims("bob", "b1"), first)
				_, ok := s.get(first)
				assert.False(t, ok)
				s.delete(second)
				s.mu.Lock()
				defer s.mu.Unlock()
				assert.Empty(t, s.sessions)
				assert.Empty(t, s.bySubject)
				assert.Zero(t, s.reserved)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newClock()
			tt.run(t, newSessionStore(30*time.Second, 3, 2, clock.Now), clock)
		})
	}
}

// TestHandoffRefusedForLackOfRoomLeavesTokenUsable: a handoff SERVER2
// cannot open a session for is refused before its jti is consumed, so the
// same token works once there is room (it used to get 409 replayed).
func TestHandoffRefusedForLackOfRoomLeavesTokenUsable(t *testing.T) {
	ta := newTestApp(t, func(c *Config, _ *Options) {
		c.MaxSessions, c.MaxSessionsPerSubject = 1, 1
		c.SessionTTL = 20 * time.Second
	})
	require.Equal(t, http.StatusSeeOther, ta.newBrowser().handoff(ta.issuer.mint(t, handoffFor("bob"))).StatusCode)

	alice := ta.newBrowser()
	tok := ta.issuer.mint(t, handoffFor("alice"))
	refused := alice.handoff(tok)
	require.Equal(t, http.StatusServiceUnavailable, refused.StatusCode, refused.Body)
	assert.Equal(t, CodeTooManySessions, pageReason(t, refused))
	assert.Equal(t, "5", refused.Header.Get("Retry-After"))
	assert.Empty(t, refused.Cookies(), "a refused handoff opens no session")

	ta.clock.Advance(21 * time.Second) // bob's session expires; alice's token (60s) has not
	got := alice.handoff(tok)
	require.Equal(t, http.StatusSeeOther, got.StatusCode, "the refused token still works: %s", got.Body)
	assert.Equal(t, http.StatusOK, alice.get("/tasks/transfer-123").StatusCode)
	ta.clock.Advance(21 * time.Second) // room again, the token still unexpired
	again := ta.newBrowser().handoff(tok)
	require.Equal(t, http.StatusConflict, again.StatusCode, "and then it is used: %s", again.Body)
	assert.Equal(t, string(token.ReasonReplayed), pageReason(t, again))
}

// TestOneSubjectCannotFillSessions: one user handing off over and over
// recycles their own sessions and never takes another user's room.
func TestOneSubjectCannotFillSessions(t *testing.T) {
	ta := newTestApp(t, func(c *Config, _ *Options) {
		c.MaxSessions, c.MaxSessionsPerSubject = 3, 2
	})
	var flood []*browser
	for i := range 10 {
		b := ta.newBrowser()
		got := b.handoff(ta.issuer.mint(t, handoffFor("alice")))
		require.Equal(t, http.StatusSeeOther, got.StatusCode, "alice's handoff %d: %s", i+1, got.Body)
		flood = append(flood, b)
	}
	assert.Equal(t, http.StatusUnauthorized, flood[0].get("/tasks/transfer-123").StatusCode, "alice's oldest session was replaced")
	assert.Equal(t, http.StatusOK, flood[9].get("/tasks/transfer-123").StatusCode)

	bob := ta.newBrowser()
	got := bob.handoff(ta.issuer.mint(t, handoffFor("bob")))
	require.Equal(t, http.StatusSeeOther, got.StatusCode, "bob's handoff after alice's flood: %s", got.Body)
	assert.Equal(t, http.StatusOK, bob.get("/tasks/transfer-123").StatusCode)
}
