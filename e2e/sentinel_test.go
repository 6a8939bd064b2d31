package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/replaystore/redisstore/redistest"
)

// TestRedisSentinelFailover runs SERVER2 with its replay store on a real
// Sentinel-monitored master with one replica (the master_name= URL form)
// and kills the master. Before the kill each handoff costs one script on
// Redis, nothing else. While no master takes writes, SERVER2 fails closed:
// /readyz is not ready and every token is refused with 503, a used one
// included, so nothing is accepted. Once Sentinel has promoted the
// replica, the same SERVER2 process, never restarted, accepts new
// handoffs, and tokens used before the failover (which the test made sure
// had reached the replica) are still refused as replayed. No token is
// ever accepted twice.
func TestRedisSentinelFailover(t *testing.T) {
	t.Parallel()
	set := redistest.StartSentinelSet(t, 1)
	c := NewCluster(t, ClusterConfig{Server2Env: map[string]string{"SERVER2_REPLAY_STORE": set.URL()}})
	s := c.Server2
	c.Server1.Start(t)
	c.Server1.WaitReady(t)
	s.Start(t)
	s.WaitReady(t)

	accepted := 0
	post := func(token string) *Page {
		t.Helper()
		p := postToken(t, s, token)
		if p.Status == http.StatusSeeOther {
			accepted++
		}
		return p
	}
	if p := post(c.Mint(t, mintRequest{})); p.Status != http.StatusSeeOther {
		t.Fatalf("first handoff: %s, want 303", p.describe())
	}

	// One round trip per handoff: the script that reads the revocation
	// mark and consumes; no EXISTS or SET of SERVER2's own beside it.
	const counted = 5
	before := redistest.CommandCalls(t, set.Master.Addr())
	var used []string
	for range counted {
		token := c.Mint(t, mintRequest{})
		if p := post(token); p.Status != http.StatusSeeOther {
			t.Fatalf("handoff before the failover: %s, want 303", p.describe())
		}
		used = append(used, token)
	}
	after := redistest.CommandCalls(t, set.Master.Addr())
	delta := func(cmd string) int64 { return after[cmd] - before[cmd] }
	if scripts := delta("evalsha") + delta("eval"); scripts != counted || delta("set") != counted || delta("exists") != counted {
		t.Errorf("%d handoffs ran %d scripts, %d SET and %d EXISTS on Redis, want %d of each (one script per handoff, its SET and EXISTS inside it)",
			counted, scripts, delta("set"), delta("exists"), counted)
	}

	set.WaitReplicaCaughtUp(t)
	set.Master.Kill()
	killed := time.Now()

	if code := s.Readyz(t); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d with the master down, want 503", code)
	}
	refused := 0
	waitFor(t, 30*time.Second, "SERVER2 to accept a fresh token after the failover", func() bool {
		for _, token := range used {
			if p := post(token); p.Status != http.StatusServiceUnavailable && p.Status != http.StatusConflict {
				t.Fatalf("a token used before the failover, during it: %s, want 503 or 409", p.describe())
			}
		}
		p := post(c.Mint(t, mintRequest{}))
		switch {
		case p.Status == http.StatusSeeOther:
			return true
		case p.Status != http.StatusServiceUnavailable || p.Reason() != "unavailable":
			t.Fatalf("a fresh token during the failover: %s, want 503 unavailable or 303", p.describe())
		}
		refused++
		return false
	})
	if refused == 0 {
		t.Error("SERVER2 never refused a token while the master was down")
	}
	t.Logf("SERVER2 refused handoffs for %v after the master was killed (%d fresh tokens refused)", time.Since(killed).Round(10*time.Millisecond), refused)
	if got, want := set.MasterAddr(t), set.Replica.Addr(); got != want {
		t.Errorf("sentinel names master %s after the failover, want the replica %s", got, want)
	}

	waitFor(t, readyTimeout, "/readyz after the failover", func() bool { return s.Readyz(t) == http.StatusOK })
	for _, token := range used {
		if p := post(token); p.Status != http.StatusConflict || p.Reason() != "replayed" {
			t.Errorf("a token used before the failover, after it: %s, want 409 replayed", p.describe())
		}
	}
	token := c.Mint(t, mintRequest{})
	if p := post(token); p.Status != http.StatusSeeOther {
		t.Fatalf("a fresh handoff after the failover: %s, want 303", p.describe())
	}
	if p := post(token); p.Status != http.StatusConflict || p.Reason() != "replayed" {
		t.Errorf("its replay: %s, want 409 replayed", p.describe())
	}
	if got := counter(t, s, metricVerifications, "result", "accepted"); got != float64(accepted) {
		t.Errorf("SERVER2 counts %v accepted verifications, the test saw %d 303s", got, accepted)
	}
	// 1 + counted before the kill, one fresh token when writes came
	// back, and the last one: every other answer was a refusal.
	if want := 1 + counted + 2; accepted != want {
		t.Errorf("%d handoffs accepted, want %d: a token was accepted twice", accepted, want)
	}
}
