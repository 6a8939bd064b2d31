package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/shared/sharedtest"
	"github.com/redis/go-redis/v9"
)

// redisProcess is a redis-server of the test's own on a loopback port, so
// that the test can kill and restart it without disturbing anyone else's
// Redis. It keeps nothing on disk: a restart forgets every entry.
type redisProcess struct {
	port int
	dir  string // its working directory, outside the source tree
	out  *sharedtest.Buffer

	mu  sync.Mutex
	cmd *exec.Cmd
}

// startRedis runs redis-server on a free loopback port and waits until it
// answers PING. It is stopped when the test ends. Without redis-server the
// test is skipped, unless E2E_REQUIRE_REDIS=1 (CI) makes that a failure.
func startRedis(t testing.TB) *redisProcess {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		msg := "e2e: redis-server is not on PATH"
		if os.Getenv("E2E_REQUIRE_REDIS") == "1" {
			t.Fatal(msg + "; E2E_REQUIRE_REDIS=1 makes this a failure")
		}
		t.Skip(msg + "; set E2E_REQUIRE_REDIS=1 to fail instead of skipping")
	}
	r := &redisProcess{port: freePort(t), dir: t.TempDir(), out: &sharedtest.Buffer{}}
	t.Cleanup(func() {
		r.Kill(t)
		if t.Failed() {
			if dir := artifactDir(t); dir != "" {
				_ = os.WriteFile(dir+"/redis.log", []byte(r.out.String()), 0o644)
			}
		}
	})
	r.Start(t)
	return r
}

// URL is the replay store setting that points SERVER2 at this Redis.
func (r *redisProcess) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }

// Start runs redis-server on the process's port and waits until it answers.
func (r *redisProcess) Start(t testing.TB) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		t.Fatal("e2e: redis-server is already running")
	}
	cmd := exec.Command("redis-server",
		"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--protected-mode", "yes", "--dir", r.dir)
	cmd.Stdout, cmd.Stderr = r.out, r.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("e2e: starting redis-server: %v", err)
	}
	r.cmd = cmd
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", r.port), MaxRetries: -1})
	defer c.Close()
	waitFor(t, startTimeout, "redis-server to answer PING", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return c.Ping(ctx).Err() == nil
	})
}

// Kill stops redis-server with SIGKILL, as a crash would, and waits for it
// to exit.
func (r *redisProcess) Kill(t testing.TB) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
	r.cmd = nil
}

// startRedisReplicas starts a Redis of the test's own, SERVER1, and two
// SERVER2 replicas with the same audience and trusted issuer whose replay
// store is that Redis; each server is ready when it returns.
func startRedisReplicas(t testing.TB) (c *Cluster, a, b *Server, r *redisProcess) {
	t.Helper()
	r = startRedis(t)
	c = NewCluster(t, ClusterConfig{Server2Env: map[string]string{"SERVER2_REPLAY_STORE": r.URL()}})
	a, b = c.Server2, c.AddServer2(t, nil)
	c.Server1.Start(t)
	c.Server1.WaitReady(t)
	for _, s := range []*Server{a, b} {
		s.Start(t)
	}
	for _, s := range []*Server{a, b} {
		s.WaitReady(t)
	}
	return c, a, b, r
}

// TestRedisConcurrentSubmissions: 200 concurrent POSTs of one token, spread
// over two replicas sharing a Redis replay store (a token copied by a thief
// and raced against its owner on every replica at once): exactly one is
// accepted, every other is refused as replayed.
func TestRedisConcurrentSubmissions(t *testing.T) {
	t.Parallel()
	c, a, b, _ := startRedisReplicas(t)
	token := c.Mint(t, mintRequest{})

	const n = 200
	counts := racePosts(t, token, n, a, b)
	if counts[http.StatusSeeOther] != 1 || counts[http.StatusConflict] != n-1 {
		t.Fatalf("%d concurrent POSTs of one token over two replicas answered %v, want one 303 and %d 409", n, counts, n-1)
	}
	accepted := counter(t, a, metricVerifications, "result", "accepted") + counter(t, b, metricVerifications, "result", "accepted")
	if accepted != 1 {
		t.Errorf("the replicas together count %v accepted verifications, want 1", accepted)
	}
}

// TestRedisReplayAcrossReplicas: a token used at one replica is refused at
// the other, whichever of the handoff form and the Bearer API is used first
// and second.
func TestRedisReplayAcrossReplicas(t *testing.T) {
	t.Parallel()
	c, a, b, _ := startRedisReplicas(t)

	// Each case has a task of its own: a task is completed once, and the
	// API cases complete theirs.
	handoff := func(t testing.TB, s *Server, token, _ string) *Page { return postToken(t, s, token) }
	api := func(t testing.TB, s *Server, token, taskID string) *Page {
		return callTaskAPI(t, s, token, taskID, demoAction, demoParams)
	}
	tests := []struct {
		name       string
		giveTask   string
		giveFirst  func(testing.TB, *Server, string, string) *Page
		giveSecond func(testing.TB, *Server, string, string) *Page
		wantFirst  int
	}{
		{name: "fail/handoff_at_a_then_api_at_b", giveTask: "transfer-801", giveFirst: handoff, giveSecond: api, wantFirst: http.StatusSeeOther},
		{name: "fail/api_at_a_then_api_at_b", giveTask: "transfer-802", giveFirst: api, giveSecond: api, wantFirst: http.StatusOK},
		{name: "fail/api_at_a_then_handoff_at_b", giveTask: "transfer-803", giveFirst: api, giveSecond: handoff, wantFirst: http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token := c.Mint(t, mintRequest{TaskID: tt.giveTask, Params: demoParams})

			first := tt.giveFirst(t, a, token, tt.giveTask)
			second := tt.giveSecond(t, b, token, tt.giveTask)

			if first.Status != tt.wantFirst {
				t.Fatalf("first use at %s: %s, want %d", a.Label, first.describe(), tt.wantFirst)
			}
			if second.Status != http.StatusConflict || second.Reason() != "replayed" {
				t.Errorf("second use at %s: %s, want 409 replayed", b.Label, second.describe())
			}
		})
	}
}

// TestRedisOutage: while the shared Redis is down, both replicas refuse
// every token as unavailable (they cannot tell a fresh token from a
// replayed one, and accepting it unchecked would open the replay) and
// report not ready. Once Redis is back on the same port, handoffs work
// again without restarting SERVER2.
func TestRedisOutage(t *testing.T) {
	t.Parallel()
	c, a, b, r := startRedisReplicas(t)
	replicas := []*Server{a, b}
	if p := postToken(t, a, c.Mint(t, mintRequest{})); p.Status != http.StatusSeeOther {
		t.Fatalf("handoff before the outage: %s, want 303", p.describe())
	}
	acceptedBefore := counter(t, a, metricVerifications, "result", "accepted") + counter(t, b, metricVerifications, "result", "accepted")

	r.Kill(t)

	for _, s := range replicas {
		if code := s.Readyz(t); code != http.StatusServiceUnavailable {
			t.Errorf("%s /readyz = %d with Redis down, want 503", s.Label, code)
		}
	}
	for range 3 {
		token := c.Mint(t, mintRequest{})
		for _, s := range replicas {
			for _, p := range []*Page{postToken(t, s, token), callTaskAPI(t, s, token, demoTask, demoAction, demoParams)} {
				if p.Status != http.StatusServiceUnavailable || p.Reason() != "unavailable" {
					t.Errorf("a fresh token at %s with Redis down: %s, want 503 unavailable", s.Label, p.describe())
				}
			}
		}
	}
	acceptedDuring := counter(t, a, metricVerifications, "result", "accepted") + counter(t, b, metricVerifications, "result", "accepted")
	if acceptedDuring != acceptedBefore {
		t.Errorf("the replicas accepted %v tokens while Redis was down, want 0", acceptedDuring-acceptedBefore)
	}

	r.Start(t)

	for _, s := range replicas {
		waitFor(t, readyTimeout, s.Label+" to accept a fresh token after Redis restarted", func() bool {
			return postToken(t, s, c.Mint(t, mintRequest{})).Status == http.StatusSeeOther
		})
		if code := s.Readyz(t); code != http.StatusOK {
			t.Errorf("%s /readyz = %d after Redis restarted, want 200", s.Label, code)
		}
	}
	token := c.Mint(t, mintRequest{})
	if p := postToken(t, a, token); p.Status != http.StatusSeeOther {
		t.Fatalf("handoff at %s after the restart: %s, want 303", a.Label, p.describe())
	}
	if p := postToken(t, b, token); p.Status != http.StatusConflict || p.Reason() != "replayed" {
		t.Errorf("replay at %s after the restart: %s, want 409 replayed", b.Label, p.describe())
	}
}
