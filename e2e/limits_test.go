package e2e

import (
	"net/http"
	"testing"
	"time"
)

// bobsParams are the parameters of bobsTask.
var bobsParams = map[string]string{"amount": "1200.00", "currency": "EUR", "payee": "Initech"}

// TestOneUserFloodingDoesNotStopAnother: a user who starts handoffs as fast
// as they can is held to SERVER1's per-user budget (429 too_many_handoffs,
// Retry-After), and however many tokens they post, SERVER2 keeps only
// their newest sessions: another user's handoff still goes through.
func TestOneUserFloodingDoesNotStopAnother(t *testing.T) {
	t.Parallel()
	c := StartCluster(t, ClusterConfig{
		Server1Env: map[string]string{"SERVER1_HANDOFF_BURST": "3", "SERVER1_HANDOFFS_PER_MINUTE": "1"},
		Server2Env: map[string]string{"SERVER2_MAX_SESSIONS": "4", "SERVER2_MAX_SESSIONS_PER_SUBJECT": "2"},
	})
	alice := NewUser(t, c)
	home := alice.Home(t)
	for i := range 3 {
		h := alice.StartHandoff(t, home, demoTask)
		if p := alice.Submit(t, h); p.Status != http.StatusSeeOther {
			t.Fatalf("alice's handoff %d within her burst: %s", i+1, p.describe())
		}
	}
	refused, _ := alice.PressContinue(t, home, demoTask)
	if refused.Status != http.StatusTooManyRequests || refused.Reason() != "too_many_handoffs" {
		t.Fatalf("alice's 4th handoff in a row: %s, want 429 too_many_handoffs", refused.describe())
	}
	if got := refused.Header.Get("Retry-After"); got != "60" {
		t.Errorf("Retry-After %q, want 60 (one handoff a minute once the burst is spent)", got)
	}
	if refused.ByID("handoff") != nil {
		t.Errorf("the refusal carries a handoff form")
	}

	// Tokens alice collected over time (minted by the operator's command
	// here, to skip the wait) fill only her own share of SERVER2.
	for i := range 6 {
		if p := postToken(t, c.Server2, c.Mint(t, mintRequest{})); p.Status != http.StatusSeeOther {
			t.Fatalf("alice's extra token %d: %s, want 303 (her oldest session is replaced)", i+1, p.describe())
		}
	}

	bob := NewUser(t, c)
	bobHome := bob.SignIn(t, "bob", "bob-demo-pw")
	resp := bob.Submit(t, bob.StartHandoff(t, bobHome, bobsTask))
	if resp.Status != http.StatusSeeOther {
		t.Fatalf("bob's handoff after alice's flood: %s, want 303", resp.describe())
	}
	checkTaskPage(t, bob.Follow(t, resp), "bob", bobsTask, bobsParams)
}

// TestRefusedHandoffLeavesTokenUsable: when SERVER2 has no room for another
// session it refuses the handoff before consuming the token (503
// too_many_sessions), so the same token works once room frees up, instead
// of 409 replayed.
func TestRefusedHandoffLeavesTokenUsable(t *testing.T) {
	t.Parallel()
	const sessionTTL = 3 * time.Second
	c := StartCluster(t, ClusterConfig{
		Server2Env: map[string]string{
			"SERVER2_MAX_SESSIONS": "1", "SERVER2_MAX_SESSIONS_PER_SUBJECT": "1",
			"SERVER2_SESSION_TTL": sessionTTL.String(),
		},
	})
	bobs := c.Mint(t, mintRequest{Subject: "bob", TaskID: bobsTask, Params: bobsParams})
	if p := postToken(t, c.Server2, bobs); p.Status != http.StatusSeeOther {
		t.Fatalf("bob's handoff: %s", p.describe())
	}

	alice := NewUser(t, c)
	h := alice.StartHandoff(t, alice.Home(t), demoTask)
	first := alice.Submit(t, h)
	if first.Status != http.StatusServiceUnavailable || first.Reason() != "too_many_sessions" {
		t.Fatalf("alice's handoff with SERVER2 full: %s, want 503 too_many_sessions", first.describe())
	}
	if first.Header.Get("Retry-After") == "" {
		t.Errorf("the refusal has no Retry-After")
	}

	var resp *Page
	waitFor(t, sessionTTL+20*time.Second, "alice's retry to be accepted once bob's session expired", func() bool {
		resp = alice.Submit(t, h)
		if resp.Status == http.StatusServiceUnavailable && resp.Reason() == "too_many_sessions" {
			return false
		}
		if resp.Status != http.StatusSeeOther {
			t.Fatalf("alice's retry of the refused token: %s, want 303 (it was never consumed)", resp.describe())
		}
		return true
	})
	checkTaskPage(t, alice.Follow(t, resp), demoUser, demoTask, demoParams)
}
