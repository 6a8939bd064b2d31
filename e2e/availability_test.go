package e2e

import (
	"net/http"
	"testing"
)

// TestServer1DownAfterKeysCached: once SERVER2 holds SERVER1's keys, an
// outage of SERVER1 does not stop handoffs: a token minted just before the
// stop is accepted, and SERVER2 stays ready.
func TestServer1DownAfterKeysCached(t *testing.T) {
	t.Parallel()
	c := StartCluster(t, ClusterConfig{})
	token := c.Mint(t, mintRequest{})

	c.Server1.Stop(t)

	if code := c.Server2.Readyz(t); code != http.StatusOK {
		t.Errorf("SERVER2 /readyz = %d with SERVER1 down, want 200", code)
	}
	if p := postToken(t, c.Server2, token); p.Status != http.StatusSeeOther {
		t.Errorf("handoff with SERVER1 down: %s, want 303", p.describe())
	}
	if code := c.Server2.Readyz(t); code != http.StatusOK {
		t.Errorf("SERVER2 /readyz = %d after a handoff with SERVER1 down, want 200", code)
	}
}

// TestServer2StartsBeforeServer1: SERVER2 started while SERVER1 is down is
// not ready and refuses handoffs as unavailable (it cannot tell a good
// token from a forged one); once SERVER1 is up it becomes ready by itself
// and accepts the same token.
func TestServer2StartsBeforeServer1(t *testing.T) {
	t.Parallel()
	c := NewCluster(t, ClusterConfig{})
	c.Server1.MustExec(t, "keys", "generate")

	c.Server2.Start(t)
	if code := c.Server2.Readyz(t); code != http.StatusServiceUnavailable {
		t.Errorf("SERVER2 /readyz = %d with SERVER1 never started, want 503", code)
	}
	c.Server2.WaitStartSecondOver(t)
	token := c.Mint(t, mintRequest{})
	p := postToken(t, c.Server2, token)
	if p.Status != http.StatusServiceUnavailable || p.Reason() != "unavailable" {
		t.Errorf("handoff with SERVER1 never started: %s, want 503 unavailable", p.describe())
	}

	c.Server1.Start(t)
	c.Server1.WaitReady(t)
	c.Server2.WaitReady(t)
	if p := postToken(t, c.Server2, token); p.Status != http.StatusSeeOther {
		t.Errorf("the same handoff once SERVER1 is up: %s, want 303", p.describe())
	}
}

// TestServer2RestartRefusesOlderTokens: SERVER2 with the in-memory replay store
// forgets the used tokens when it restarts, so it refuses every token
// issued before the restart; a token used before it cannot be replayed
// after it. Tokens issued after the restart work.
func TestServer2RestartRefusesOlderTokens(t *testing.T) {
	t.Parallel()
	c := StartCluster(t, ClusterConfig{Server2Env: map[string]string{"SERVER2_REPLAY_STORE": "memory"}})
	u := NewUser(t, c)
	used, _ := u.HandOff(t, demoTask)

	c.Server2.Restart(t)
	c.Server2.WaitReady(t)

	p := postToken(t, c.Server2, used.Token)
	if p.Status != http.StatusUnauthorized || p.Reason() != "issued_before_restart" {
		t.Errorf("replay after the restart: %s, want 401 issued_before_restart", p.describe())
	}

	c.Server2.WaitStartSecondOver(t)
	if p := postToken(t, c.Server2, c.Mint(t, mintRequest{})); p.Status != http.StatusSeeOther {
		t.Errorf("a token issued after the restart: %s, want 303", p.describe())
	}
}
