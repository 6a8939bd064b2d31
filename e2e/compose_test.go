package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/shared/sharedtest"
)

// Bounds on the compose commands. Building both images from nothing (module
// download included) on two busy cores takes minutes.
const (
	composeBuildTimeout = 15 * time.Minute
	composeCmdTimeout   = 3 * time.Minute
	composeReadyTimeout = 3 * time.Minute
)

// composeProject is the compose project name of the test's stack, so that
// it never touches a demo a developer runs with the default name.
const composeProject = "handoff-e2e"

// Settings of the compose stack's replay subtest: SERVER2's leeway in the
// stack (the demo's default is 30s; a short one keeps the wait for exp +
// leeway short), the lifetime of the tokens minted in the container (long
// enough to outlast minting a round's tokens with `docker compose exec`),
// and how many tokens each round hammers over how many rounds.
const (
	composeLeeway       = time.Second
	composeExpiryTTL    = 10 * time.Second
	composeExpiryTokens = 12
	composeExpiryRounds = 3
)

// composeFloodBound is how many handoffs bob may start in a row before the
// compose subtest wants SERVER1's 429: the default burst (10) and what
// refills at the default 30 a minute in the 20 s such a flood would need to
// get past it. Without the per-user limit bob would get 40 (the live tokens
// SERVER1 records per user) before a 429.
const composeFloodBound = 20

// composeBaseImages are the images the Dockerfile and the compose file start
// from. CI makes them offline (.ci/docker-base-images.sh).
var composeBaseImages = []string{"golang:1.26-bookworm", "redis:7-bookworm"}

// requireDocker skips the test, or fails it when E2E_REQUIRE_DOCKER=1 (CI),
// if the Docker engine, a compose tool or the base images are missing. It
// returns the compose command: `docker compose` (v2) when the CLI has the
// plugin, else `docker-compose` (v1).
func requireDocker(t testing.TB) []string {
	t.Helper()
	missing := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...)
		if os.Getenv("E2E_REQUIRE_DOCKER") == "1" {
			t.Fatal(msg + "; E2E_REQUIRE_DOCKER=1 makes this a failure")
		}
		t.Skip(msg + "; set E2E_REQUIRE_DOCKER=1 to fail instead")
	}
	if _, err := exec.LookPath("docker"); err != nil {
		missing("no docker command")
	}
	if out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		missing("the Docker engine does not answer: %v: %s", err, bytes.TrimSpace(out))
	}
	var compose []string
	switch {
	case exec.Command("docker", "compose", "version").Run() == nil:
		compose = []string{"docker", "compose"}
	case exec.Command("docker-compose", "version").Run() == nil:
		compose = []string{"docker-compose"}
	default:
		missing("neither `docker compose` nor `docker-compose` works")
	}
	for _, img := range composeBaseImages {
		if exec.Command("docker", "image", "inspect", img).Run() != nil {
			missing("base image %s is not in the local image store (CI makes it with .ci/docker-base-images.sh)", img)
		}
	}
	return compose
}

// composeStack is the repository's docker-compose.yml run as one project
// with its own published ports.
type composeStack struct {
	command []string
	dir     string
	env     []string
	out     *sharedtest.Buffer
}

// run runs a compose subcommand and returns its stdout. Its stderr goes to
// the stack's log; a failure fails the test with the log's tail.
func (s *composeStack) run(t testing.TB, timeout time.Duration, args ...string) string {
	t.Helper()
	stdout, err := s.tryRun(timeout, args...)
	if err != nil {
		t.Fatalf("e2e: %s: %v\n%s", s.describe(args), err, tail(s.out.String(), 40))
	}
	return stdout
}

func (s *composeStack) tryRun(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	full := append(slices.Clone(s.command[1:]), "-p", composeProject, "-f", filepath.Join(s.dir, "docker-compose.yml"))
	full = append(full, args...)
	cmd := exec.CommandContext(ctx, s.command[0], full...)
	cmd.Dir = s.dir
	cmd.Env = s.env
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = s.out
	// Compose runs `docker build` and friends as children: on a timeout
	// they are killed with it, or they would go on building into the
	// cleanup's `down` and hold the output pipes open.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	fmt.Fprintf(s.out, "=== e2e: %s at %s\n", s.describe(args), time.Now().Format(time.RFC3339Nano))
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("still running after %v: %w", timeout, ctx.Err())
	}
	return stdout.String(), err
}

// describe names a compose command by its first two arguments: the later
// arguments of an exec are not for the log.
func (s *composeStack) describe(args []string) string {
	return strings.Join(s.command, " ") + " " + strings.Join(args[:min(len(args), 2)], " ")
}

// mint runs `server1 mint` inside the server1 container, with its keys,
// for the demo task and audience, and returns the token. It goes through
// `docker exec` on the container compose started rather than
// `docker-compose exec`: compose v1 takes about a second to start each
// time, and the expiry subtest mints a dozen 10-second tokens in a row,
// which at a second each would expire before they are used.
func (s *composeStack) mint(t testing.TB, c *Cluster, ttl time.Duration) string {
	t.Helper()
	args := []string{"exec", "-i", s.container(t, "server1"), "/app", "mint",
		"--sub", demoUser, "--aud", c.Audience, "--task-id", demoTask, "--task-action", demoAction,
		"--ttl", ttl.String(), "--nonce", e2eBindingNonce}
	for _, k := range slices.Sorted(maps.Keys(demoParams)) {
		args = append(args, "--param", k+"="+demoParams[k])
	}
	ctx, cancel := context.WithTimeout(context.Background(), composeCmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stderr = s.out
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("e2e: docker exec server1 mint: %v\n%s", err, tail(s.out.String(), 40))
	}
	token := strings.TrimSpace(string(out))
	if strings.Count(token, ".") != 2 || strings.ContainsAny(token, " \n") {
		t.Fatalf("e2e: server1 mint in the container printed %d bytes that are not a compact JWS", len(token))
	}
	c.NoteSecret(token)
	// Bound to the suite's secret, like Cluster.Mint's tokens: postToken
	// presents its cookie, as SERVER2's start endpoint would have set it.
	bindings.Store(token, e2eBindingCookie)
	return token
}

// container returns the id of the running container of a compose
// service, as docker itself lists it (a stop and start keeps the id).
func (s *composeStack) container(t testing.TB, service string) string {
	t.Helper()
	out, err := exec.Command("docker", "ps", "-q",
		"--filter", "label=com.docker.compose.project="+composeProject,
		"--filter", "label=com.docker.compose.service="+service).Output()
	id := strings.TrimSpace(string(out))
	if err != nil || id == "" || strings.Contains(id, "\n") {
		t.Fatalf("e2e: no single running container of %s: %q (%v)", service, id, err)
	}
	return id
}

// imageSize returns the size in bytes of the image that service's container
// runs.
func (s *composeStack) imageSize(t testing.TB, service string) int64 {
	t.Helper()
	id := strings.TrimSpace(s.run(t, composeCmdTimeout, "ps", "-q", service))
	out, err := exec.Command("docker", "inspect", "-f", "{{.Image}}", id).Output()
	if err != nil {
		t.Fatalf("e2e: docker inspect %s container: %v", service, err)
	}
	out, err = exec.Command("docker", "image", "inspect", "-f", "{{.Size}}", strings.TrimSpace(string(out))).Output()
	if err != nil {
		t.Fatalf("e2e: docker image inspect for %s: %v", service, err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		t.Fatalf("e2e: image size of %s: %v", service, err)
	}
	return n
}

// startCompose brings the stack up on fresh loopback ports, waits until
// every service answers /readyz through its published port, and returns
// the stack with a Cluster whose Server1 is server1 and Server2 is
// server2a, plus server2b. When the test ends it saves the stack's logs
// (on failure), fails the test if a container logged a token the test
// handled, and removes the containers, network and volumes.
func startCompose(t *testing.T) (*composeStack, *Cluster, *Server) {
	t.Helper()
	command := requireDocker(t)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	p1, p2a, p2b := freePort(t), freePort(t), freePort(t)
	for p2a == p1 {
		p2a = freePort(t)
	}
	for p2b == p1 || p2b == p2a {
		p2b = freePort(t)
	}
	s := &composeStack{
		command: command,
		dir:     root,
		env: append(processEnv(),
			"HANDOFF_SERVER1_PORT="+itoa(p1),
			"HANDOFF_SERVER2A_PORT="+itoa(p2a),
			"HANDOFF_SERVER2B_PORT="+itoa(p2b),
			"HANDOFF_SERVER2_LEEWAY="+composeLeeway.String(),
		),
		out: &sharedtest.Buffer{},
	}
	c := &Cluster{
		Issuer:   fmt.Sprintf("http://localhost:%d", p1),
		Audience: fmt.Sprintf("http://127.0.0.1:%d", p2a),
	}
	c.Server1 = &Server{Name: "SERVER1", Label: "server1", URL: c.Issuer}
	c.Server2 = &Server{Name: "SERVER2", Label: "server2a", URL: c.Audience}
	server2b := &Server{Name: "SERVER2", Label: "server2b", URL: fmt.Sprintf("http://127.0.0.1:%d", p2b)}

	// A run killed before its cleanup leaves the project behind.
	s.run(t, composeCmdTimeout, "down", "-v", "--remove-orphans")
	t.Cleanup(func() { s.cleanup(t, c) })

	start := time.Now()
	s.run(t, composeBuildTimeout, "up", "--build", "-d")
	for _, srv := range []*Server{c.Server1, c.Server2, server2b} {
		waitFor(t, composeReadyTimeout, srv.Label+" /readyz through its published port", func() bool {
			resp, err := plainClient.Get(srv.URL + "/readyz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
	}
	t.Logf("e2e: compose stack built and ready in %v", time.Since(start).Round(time.Second))
	for _, svc := range []string{"server1", "server2a", "redis"} {
		t.Logf("e2e: image of %s: %.1f MB", svc, float64(s.imageSize(t, svc))/1e6)
	}
	return s, c, server2b
}

func (s *composeStack) cleanup(t testing.TB, c *Cluster) {
	logs, err := s.tryRun(composeCmdTimeout, "logs", "--no-color")
	if err != nil {
		t.Logf("e2e: compose logs: %v", err)
	}
	c.mu.Lock()
	secrets := slices.Clone(c.secrets)
	c.mu.Unlock()
	for _, secret := range secrets {
		if strings.Contains(logs, secret) || strings.Contains(s.out.String(), secret) {
			// Never print the token itself: test logs are kept too.
			t.Errorf("e2e: a container of the compose stack wrote a handoff token (or its signature) to its log")
			break
		}
	}
	if t.Failed() {
		if dir := artifactDir(t); dir != "" {
			path := filepath.Join(dir, "compose.log")
			if err := os.WriteFile(path, []byte(s.out.String()+"\n=== e2e: compose logs\n"+logs), 0o644); err != nil {
				t.Logf("e2e: saving the compose logs: %v", err)
			} else {
				t.Logf("e2e: compose logs saved to %s", path)
			}
		}
	}
	if _, err := s.tryRun(composeCmdTimeout, "down", "-v", "--remove-orphans"); err != nil {
		t.Errorf("e2e: compose down: %v\n%s", err, tail(s.out.String(), 20))
	}
	label := "label=com.docker.compose.project=" + composeProject
	for _, list := range [][]string{{"container", "ls", "-a"}, {"volume", "ls"}, {"network", "ls"}} {
		kind := list[0]
		out, err := exec.Command("docker", append(list, "-q", "--filter", label)...).Output()
		if err != nil {
			t.Errorf("e2e: docker %s ls: %v", kind, err)
			continue
		}
		if left := strings.Fields(string(out)); len(left) > 0 {
			t.Errorf("e2e: compose down left %d %s(s) of project %s", len(left), kind, composeProject)
		}
	}
}

// jwksKeyIDs returns the kids of SERVER1's JWKS.
func jwksKeyIDs(t testing.TB, s *Server) []string {
	t.Helper()
	code, body := s.get(t, "/.well-known/jwks.json")
	if code != http.StatusOK {
		t.Fatalf("e2e: %s JWKS: status %d", s.Label, code)
	}
	var set struct {
		Keys []struct {
			KID string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatalf("e2e: %s JWKS: %v", s.Label, err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.KID)
	}
	slices.Sort(kids)
	return kids
}

// unreachable reports whether a GET of s's /readyz gets no HTTP answer.
func unreachable(s *Server) bool {
	resp, err := plainClient.Get(s.URL + "/readyz")
	if err != nil {
		return true
	}
	resp.Body.Close()
	return false
}

// TestComposeDemo runs the repository's docker-compose.yml (SERVER1, two
// SERVER2 replicas, Redis), builds the images from the Dockerfile, and
// drives it through the published ports as a browser would: the replicas
// share one replay store and agree that a completed task is done, SERVER2
// outlives SERVER1 with cached keys, SERVER2 fails closed without Redis and
// recovers with it, SERVER1's keys survive its restart, a used token
// hammered at both replicas across exp + leeway is never accepted twice,
// one user flooding handoffs is held to SERVER1's per-user limit without
// stopping another's, and "sign out everywhere" on SERVER1 ends the SERVER2
// session and refuses a pending token at both replicas.
//
// The stack runs SERVER2 with a leeway of composeLeeway, not the demo's
// 30s; no subtest but the replay one depends on the leeway.
func TestComposeDemo(t *testing.T) {
	started := time.Now()
	stack, c, server2b := startCompose(t)
	u := NewUser(t, c)

	t.Run("replica_b_refuses_a_token_used_at_replica_a", func(t *testing.T) {
		h, _ := u.HandOff(t, demoTask)
		if want := c.Server2.URL + "/handoff"; h.Action != want {
			t.Errorf("SERVER1 hands off to %q, want server2a's %q", h.Action, want)
		}
		p := postToken(t, server2b, h.Token)
		if p.Status != http.StatusConflict || p.Reason() != "replayed" {
			t.Errorf("the same token at server2b: %s, want 409 replayed", p.describe())
		}
		if n := counter(t, server2b, metricVerifications, "reason", "replayed"); n != 1 {
			t.Errorf("server2b counted %v replayed verifications, want 1", n)
		}
	})

	// bob's task, so the later cases can still hand alice's tasks off.
	t.Run("completion_at_replica_a_is_refused_at_replica_b", func(t *testing.T) {
		atA, atB := NewUser(t, c), NewUser(t, c)
		pageA := sessionAt(t, atA, atA.SignIn(t, "bob", "bob-demo-pw"), c.Server2, bobsTask)
		pageB := sessionAt(t, atB, atB.SignIn(t, "bob", "bob-demo-pw"), server2b, bobsTask)

		done := atA.SubmitForm(t, pageA, "complete", nil)
		wantCompleted(t, done, "completion at server2a")
		wantAlreadyCompleted(t, atB.SubmitForm(t, pageB, "complete", nil), false, "completion at server2b")
		wantTaskPageDone(t, atB, server2b, bobsTask, "the task page at server2b")

		// The done page carries server2a's signed result back to SERVER1,
		// which fetches server2a's keys inside the compose network.
		back := atA.SubmitForm(t, done, "result-form", nil)
		if back.Status != http.StatusSeeOther {
			t.Fatalf("the result at SERVER1: %s, want 303", back.describe())
		}
		if list := atA.Follow(t, back); list.ByID("status-"+bobsTask) == nil || list.ByID("continue-"+bobsTask) != nil {
			t.Errorf("SERVER1 does not show %s approved without Continue: %s", bobsTask, list.describe())
		}
	})

	t.Run("redis_down_fails_closed_and_recovers", func(t *testing.T) {
		// Tokens minted in the container live 5 minutes, so the
		// assertions after the Redis restart do not race their expiry.
		used := stack.mint(t, c, 5*time.Minute)
		if p := postToken(t, c.Server2, used); p.Status != http.StatusSeeOther {
			t.Fatalf("handoff before the Redis stop: %s, want 303", p.describe())
		}
		unused := stack.mint(t, c, 5*time.Minute)

		stack.run(t, composeCmdTimeout, "stop", "redis")
		for _, s := range []*Server{c.Server2, server2b} {
			for _, token := range []string{unused, used} {
				p := postToken(t, s, token)
				if p.Status != http.StatusServiceUnavailable || p.Reason() != "unavailable" {
					t.Errorf("%s with Redis stopped: %s, want 503 unavailable", s.Label, p.describe())
				}
			}
			waitFor(t, readyTimeout, s.Label+" /readyz to answer 503 with Redis stopped", func() bool {
				return s.Readyz(t) == http.StatusServiceUnavailable
			})
		}

		stack.run(t, composeCmdTimeout, "start", "redis")
		fresh := u.StartHandoff(t, u.Home(t), demoTask)
		var p *Page
		waitFor(t, composeReadyTimeout, "server2a to answer a fresh token with other than 503 once Redis is back", func() bool {
			p = postToken(t, c.Server2, fresh.Token)
			return p.Status != http.StatusServiceUnavailable
		})
		if p.Status != http.StatusSeeOther {
			t.Errorf("fresh token once Redis is back: %s, want 303", p.describe())
		}
		server2b.WaitReady(t)
		if p := postToken(t, server2b, unused); p.Status != http.StatusSeeOther {
			t.Errorf("a token refused during the outage, once Redis is back: %s, want 303", p.describe())
		}
		if p := postToken(t, server2b, used); p.Status != http.StatusConflict || p.Reason() != "replayed" {
			t.Errorf("a token used before the Redis restart: %s, want 409 replayed (Redis must keep used ids)", p.describe())
		}
	})

	t.Run("server1_down_after_keys_cached", func(t *testing.T) {
		kids := jwksKeyIDs(t, c.Server1)
		home := u.Home(t)
		first := u.StartHandoff(t, home, demoTask)
		second := u.StartHandoff(t, home, otherTask)

		stack.run(t, composeCmdTimeout, "stop", "server1")
		if !unreachable(c.Server1) {
			t.Fatalf("server1 still answers after compose stop")
		}
		for _, tt := range []struct {
			give   *Server
			token  string
			wantTo string
		}{
			{give: c.Server2, token: first.Token, wantTo: "/tasks/" + demoTask},
			{give: server2b, token: second.Token, wantTo: "/tasks/" + otherTask},
		} {
			p := postToken(t, tt.give, tt.token)
			if p.Status != http.StatusSeeOther || p.Location(t).Path != tt.wantTo {
				t.Errorf("%s with SERVER1 stopped: %s, want 303 to %s", tt.give.Label, p.describe(), tt.wantTo)
			}
			if code := tt.give.Readyz(t); code != http.StatusOK {
				t.Errorf("%s /readyz = %d with SERVER1 stopped, want 200", tt.give.Label, code)
			}
		}

		stack.run(t, composeCmdTimeout, "start", "server1")
		c.Server1.WaitReady(t)
		if got := jwksKeyIDs(t, c.Server1); !slices.Equal(got, kids) {
			t.Errorf("SERVER1's key ids after its restart = %q, want %q (the keys volume must keep them)", got, kids)
		}
		// SERVER1's sessions are in memory: sign in again.
		NewUser(t, c).HandOff(t, demoTask)
	})

	// Replay records are kept until exp + token.MaxLeeway + token.ReplayMargin;
	// with no margin, Redis (by its own clock) dropped a record while a
	// replica that had read its clock just before exp + leeway still
	// judged the token unexpired, and accepted it a second time.
	t.Run("replay_across_expiry_at_both_replicas", func(t *testing.T) {
		mint := func(t testing.TB) string { return stack.mint(t, c, composeExpiryTTL) }
		groups := []storeGroup{{replicas: []*Server{c.Server2, server2b}, leeway: composeLeeway, tokens: composeExpiryTokens}}
		hammerAcrossExpiry(t, mint, groups, composeExpiryRounds)
	})

	// After server1_down_after_keys_cached restarted SERVER1, so bob's
	// budget is whole and the burst is spent here, not by the earlier
	// subtests' handoffs.
	t.Run("one_user_flooding_does_not_stop_another", func(t *testing.T) {
		bob := NewUser(t, c)
		home := bob.SignIn(t, "bob", "bob-demo-pw")
		replicas := []*Server{c.Server2, server2b}
		started := 0
		var refused *Page
		for refused == nil {
			p, start := bob.PressContinue(t, home, bobsTask)
			switch {
			case p.Status == http.StatusTooManyRequests && p.Reason() == "too_many_handoffs":
				refused = p
			case p.Status == http.StatusOK && p.ByID("handoff") != nil:
				token := formValues(p.ByID("handoff")).Get("token")
				c.NoteSecret(token)
				if start != nil {
					noteBinding(token, start)
				}
				s := replicas[started%len(replicas)]
				if resp := postToken(t, s, token); resp.Status != http.StatusSeeOther {
					t.Fatalf("bob's handoff %d at %s: %s, want 303", started+1, s.Label, resp.describe())
				}
				started++
			default:
				t.Fatalf("bob's handoff %d: %s, want 200 with #handoff or 429 too_many_handoffs", started+1, p.describe())
			}
			if started > composeFloodBound {
				t.Fatalf("bob started %d handoffs in a row and SERVER1 never answered 429 too_many_handoffs", started)
			}
		}
		t.Logf("bob started %d handoffs before SERVER1 answered 429", started)
		if started == 0 {
			t.Errorf("SERVER1 refused bob's first handoff after its restart")
		}
		if got, err := strconv.Atoi(refused.Header.Get("Retry-After")); err != nil || got < 1 || got > 2 {
			t.Errorf("Retry-After %q, want 1 or 2 (one handoff every 2 s once the burst is spent)", refused.Header.Get("Retry-After"))
		}
		if refused.ByID("handoff") != nil {
			t.Errorf("the refusal carries a handoff form")
		}

		alice := NewUser(t, c)
		h, page := alice.HandOff(t, demoTask)
		if h.Action != c.Server2.URL+"/handoff" {
			t.Errorf("alice's handoff goes to %q, want server2a's /handoff", h.Action)
		}
		checkTaskPage(t, page, demoUser, demoTask, demoParams)
	})

	// Before the compose file configured a revocation URL, both replicas
	// ran with revocation off while /readyz said "revocations":"ok": they
	// never held a list, so this subtest timed out waiting for one, and
	// sign-out changed nothing there.
	t.Run("sign_out_everywhere_reaches_both_replicas", func(t *testing.T) {
		replicas := []*Server{c.Server2, server2b}
		for _, s := range replicas {
			code, body := s.get(t, "/readyz")
			if code != http.StatusOK || !strings.Contains(string(body), `"revocations":"ok"`) {
				t.Fatalf("%s /readyz = %d %s, want 200 with \"revocations\":\"ok\"", s.Label, code, body)
			}
		}
		alice := NewUser(t, c)
		alice.HandOff(t, demoTask)
		home := alice.Home(t)
		pending := alice.StartHandoff(t, home, otherTask)
		entries := make(map[*Server]float64)
		for _, s := range replicas {
			entries[s] = counter(t, s, metricRevocationEntries)
		}

		out := alice.SubmitForm(t, home, "logout-everywhere", nil)
		if out.Status != http.StatusSeeOther || out.Location(t).Path != "/login" {
			t.Fatalf("sign out everywhere: %s, want 303 to /login", out.describe())
		}
		for _, s := range replicas {
			waitFor(t, 3*revocationBound, s.Label+" to hold the revocation list naming alice", func() bool {
				return counter(t, s, metricRevocationEntries) >= entries[s]+1
			})
		}

		if p := alice.TaskPage(t, demoTask); p.Status != http.StatusUnauthorized || p.Reason() != "session_revoked" {
			t.Errorf("alice's server2a session after signing out everywhere: %s, want 401 session_revoked", p.describe())
		}
		if p := postToken(t, server2b, pending.Token); p.Status != http.StatusUnauthorized || p.Reason() != "revoked" {
			t.Errorf("alice's pending token at server2b: %s, want 401 revoked", p.describe())
		}
		if p := alice.Submit(t, pending); p.Status != http.StatusUnauthorized || p.Reason() != "revoked" {
			t.Errorf("alice's pending token at server2a: %s, want 401 revoked", p.describe())
		}
	})

	t.Logf("e2e: compose test took %v", time.Since(started).Round(time.Second))
}
