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

// TestHandoffRefusedForLackOfRoomLeavesTokenUsable: a handoff SERVER2
// cannot open a session for is refused before its jti is consumed, so the
// same token works once there is room (it used to get 409 replayed).
func TestHandoffRefusedForLackOfRoomLeavesTokenUsable(t *testing.T) {
	ta := newTestApp(t, func(c *Config, _ *Options) {
		c.MaxSessions, c.MaxSessionsPerSubject = 1, 1
		c.SessionTTL = 20 * time.Second
	})
	require.Equal(t, http.StatusSeeOther, ta.newBrowser().handoff(ta.issuer.Mint(t, handoffFor("bob"))).StatusCode)

	alice := ta.newBrowser()
	tok := ta.issuer.Mint(t, handoffFor("alice"))
	refused := alice.handoff(tok)
	require.Equal(t, http.StatusServiceUnavailable, refused.StatusCode, refused.Body)
	assert.Equal(t, CodeTooManySessions, pageReason(t, refused))
	assert.Equal(t, "5", refused.Header.Get("Retry-After"))
	assert.Empty(t, refused.Cookies(), "a refused handoff opens no session")

	ta.clock.Advance(21 * time.Second) // bob's session expires; alice's token (60s) has not
	got := alice.handoff(tok)
	require.Equal(t, http.StatusSeeOther, got.StatusCode, "the refused token still works: %s", got.Body)
	assert.Equal(t, http.StatusOK, alice.Get("/tasks/transfer-123").StatusCode)
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
		got := b.handoff(ta.issuer.Mint(t, handoffFor("alice")))
		require.Equal(t, http.StatusSeeOther, got.StatusCode, "alice's handoff %d: %s", i+1, got.Body)
		flood = append(flood, b)
	}
	assert.Equal(t, http.StatusUnauthorized, flood[0].Get("/tasks/transfer-123").StatusCode, "alice's oldest session was replaced")
	assert.Equal(t, http.StatusOK, flood[9].Get("/tasks/transfer-123").StatusCode)

	bob := ta.newBrowser()
	got := bob.handoff(ta.issuer.Mint(t, handoffFor("bob")))
	require.Equal(t, http.StatusSeeOther, got.StatusCode, "bob's handoff after alice's flood: %s", got.Body)
	assert.Equal(t, http.StatusOK, bob.Get("/tasks/transfer-123").StatusCode)
}
