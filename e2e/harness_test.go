package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/shared/sharedtest"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Bounds on waiting for the processes. Generous: `go test -race ./...` runs
// other packages on the same two cores.
const (
	startTimeout = 30 * time.Second
	readyTimeout = 30 * time.Second
	stopTimeout  = 15 * time.Second
	pollInterval = 100 * time.Millisecond
	httpTimeout  = 15 * time.Second
)

// The demo data built into SERVER1 (the contract between the servers and
// this suite).
const (
	demoUser     = "alice"
	demoPassword = "alice-demo-pw"
	demoTask     = "transfer-123"
	demoAction   = "approve"
	// otherTask is alice's second transfer.
	otherTask = "transfer-124"
	// bobsTask belongs to bob, not alice.
	bobsTask = "transfer-200"
)

// demoParams are the parameters of demoTask; otherParams those of otherTask.
var (
	demoParams  = map[string]string{"amount": "250.00", "currency": "EUR", "payee": "ACME Corp"}
	otherParams = map[string]string{"amount": "80.00", "currency": "EUR", "payee": "Globex Ltd"}
)

var build struct {
	once sync.Once
	dir  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// binaries builds server1 and server2 once per test run, into a temporary
// directory, and returns their paths. E2E_RACE=1 builds them with the race
// detector.
func binaries(t testing.TB) (server1, server2 string) {
	t.Helper()
	build.once.Do(func() { build.dir, build.err = buildServers() })
	if build.err != nil {
		t.Fatalf("e2e: building the servers: %v", build.err)
	}
	return filepath.Join(build.dir, "server1"), filepath.Join(build.dir, "server2")
}

func buildServers() (string, error) {
	root, err := filepath.Abs("..")
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return "", fmt.Errorf("module root not found above the e2e directory: %w", err)
	}
	dir, err := os.MkdirTemp("", "handoff-e2e-bin-")
	if err != nil {
		return "", err
	}
	args := []string{"build", "-o", dir + string(os.PathSeparator)}
	if os.Getenv("E2E_RACE") == "1" {
		args = append(args, "-race")
	}
	args = append(args, "./server1", "./server2")
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return dir, nil
}

// freePort returns a loopback TCP port that was free a moment ago. The
// servers' URLs are part of their configuration (issuer, audience), so the
// port is chosen before they start and kept across restarts.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("e2e: reserving a port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// processEnv is this process's environment without any SERVER1_ or
// SERVER2_ variable, so a developer's shell cannot change what a test runs.
func processEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "SERVER1_") || strings.HasPrefix(kv, "SERVER2_")
	})
}

// process is one run of a server.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // cmd.Wait's result, set before done closes
}

// Server is one server process, SERVER1 or a SERVER2 replica, that can be
// started, stopped and restarted on the same address with the same
// directories.
type Server struct {
	// Name is how the binary announces itself: "SERVER1" or "SERVER2".
	Name string
	// Label tells replicas apart in messages and artifact names.
	Label string
	// URL is the base URL clients use: http://host:port.
	URL string
	// Env is the server's configuration as environment variables. Change it
	// between Stop and Start to restart with other settings.
	Env map[string]string

	bin string
	out *sharedtest.Buffer

	mu          sync.Mutex
	proc        *process
	listeningAt time.Time
}

func (s *Server) environ() []string {
	env := processEnv()
	for _, k := range slices.Sorted(maps.Keys(s.Env)) {
		env = append(env, k+"="+s.Env[k])
	}
	return env
}

// Start runs `<binary> serve` and returns once the process has printed its
// "<NAME> listening on <URL>" line. It does not wait for readiness.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		t.Fatalf("e2e: %s is already running", s.Label)
	}
	fmt.Fprintf(s.out, "=== e2e: starting %s at %s\n", s.Label, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(s.bin, "serve")
	cmd.Env = s.environ()
	cmd.Stderr = s.out
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("e2e: %s: %v", s.Label, err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("e2e: starting %s: %v", s.Label, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	listening := make(chan string, 1)
	go func() {
		prefix := s.Name + " listening on "
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(s.out, line)
			if u, ok := strings.CutPrefix(line, prefix); ok {
				select {
				case listening <- strings.TrimSpace(u):
				default:
				}
			}
		}
		_, _ = io.Copy(s.out, stdout)
		p.err = cmd.Wait()
		close(p.done)
	}()

	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	select {
	case u := <-listening:
		if u != s.URL {
			s.kill(p)
			t.Fatalf("e2e: %s says it listens on %q, want %q", s.Label, u, s.URL)
		}
	case <-p.done:
		t.Fatalf("e2e: %s exited before listening: %v\n%s", s.Label, p.err, tail(s.out.String(), 30))
	case <-timer.C:
		s.kill(p)
		t.Fatalf("e2e: %s printed no %q line within %v\n%s", s.Label, s.Name+" listening on", startTimeout, tail(s.out.String(), 30))
	}
	s.proc = p
	s.listeningAt = time.Now()
}

// WaitStartSecondOver waits until the clock has left the second in which
// the server last started listening. SERVER2 with the in-memory replay
// store refuses tokens issued before that second is over
// (issued_before_restart: "iat" has whole seconds, so a token of that
// second may have been used just before the restart). Tests that mint a
// token right after starting SERVER2 wait for this first.
func (s *Server) WaitStartSecondOver(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	next := s.listeningAt.Truncate(time.Second).Add(time.Second)
	s.mu.Unlock()
	waitFor(t, 3*time.Second, s.Label+"'s start second to pass", func() bool { return !time.Now().Before(next) })
}

// Stop sends SIGTERM and waits for the process to exit. A server that does
// not exit cleanly, or in time, fails the test: graceful shutdown is part of
// the contract.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-p.done:
		if p.err != nil {
			t.Errorf("e2e: %s did not exit cleanly on SIGTERM: %v", s.Label, p.err)
		}
	case <-timer.C:
		s.kill(p)
		t.Errorf("e2e: %s still running %v after SIGTERM; killed", s.Label, stopTimeout)
	}
	fmt.Fprintf(s.out, "=== e2e: stopped %s at %s\n", s.Label, time.Now().Format(time.RFC3339Nano))
}

// Restart stops the server and starts it again with its current Env.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop(t)
	s.Start(t)
}

func (s *Server) kill(p *process) {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Running reports whether the process was started and has not exited.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return false
	}
	select {
	case <-s.proc.done:
		return false
	default:
		return true
	}
}

var plainClient = &http.Client{
	Timeout:       httpTimeout,
	Transport:     testTransport(),
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// get fetches path on the server with a client that keeps no cookies and
// follows no redirects, and returns the status and body.
func (s *Server) get(t testing.TB, path string) (int, []byte) {
	t.Helper()
	resp, err := plainClient.Get(s.URL + path)
	if err != nil {
		t.Fatalf("e2e: GET %s%s: %v", s.Label, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("e2e: GET %s%s: %v", s.Label, path, err)
	}
	return resp.StatusCode, body
}

// Readyz returns the status of GET /readyz.
func (s *Server) Readyz(t testing.TB) int {
	t.Helper()
	code, _ := s.get(t, "/readyz")
	return code
}

// WaitReady polls /readyz until it answers 200.
func (s *Server) WaitReady(t testing.TB) {
	t.Helper()
	waitFor(t, readyTimeout, s.Label+" /readyz to answer 200", func() bool {
		resp, err := plainClient.Get(s.URL + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// Metrics scrapes /metrics.
func (s *Server) Metrics(t testing.TB) Metrics {
	t.Helper()
	code, body := s.get(t, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("e2e: %s /metrics: status %d", s.Label, code)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("e2e: %s /metrics: %v", s.Label, err)
	}
	return families
}

// Exec runs the server's binary with args and the server's configuration,
// as an operator would beside the running process. It returns stdout and
// the exit code; stderr goes to the server's log.
func (s *Server) Exec(t testing.TB, args ...string) (stdout string, exitCode int) {
	t.Helper()
	return s.ExecInput(t, "", args...)
}

// ExecInput is Exec with stdin, for commands that read a token from it
// rather than from their arguments (which other users can see in ps).
func (s *Server) ExecInput(t testing.TB, stdin string, args ...string) (stdout string, exitCode int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.bin, args...)
	cmd.Env = s.environ()
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = s.out
	fmt.Fprintf(s.out, "=== e2e: %s %s\n", filepath.Base(s.bin), args[0])
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &exit) && ctx.Err() == nil:
		return out.String(), exit.ExitCode()
	default:
		t.Fatalf("e2e: %s %s: %v", filepath.Base(s.bin), args[0], err)
		return "", -1
	}
}

// MustExec is Exec for a command that must succeed.
func (s *Server) MustExec(t testing.TB, args ...string) string {
	t.Helper()
	out, code := s.Exec(t, args...)
	if code != 0 {
		t.Fatalf("e2e: %s %s exited %d\n%s", filepath.Base(s.bin), args[0], code, tail(s.out.String(), 15))
	}
	return out
}

// Metrics are the series of one /metrics scrape.
type Metrics map[string]*dto.MetricFamily

// Value sums the samples of the counter, gauge or untyped family name whose
// labels include every pair in labels ("result", "ok", ...). A family or
// series the server has not exported yet counts as 0.
func (m Metrics) Value(name string, labels ...string) float64 {
	f, ok := m[name]
	if !ok {
		return 0
	}
	var sum float64
	for _, s := range f.GetMetric() {
		if !hasLabels(s, labels) {
			continue
		}
		switch {
		case s.Counter != nil:
			sum += s.GetCounter().GetValue()
		case s.Gauge != nil:
			sum += s.GetGauge().GetValue()
		case s.Untyped != nil:
			sum += s.GetUntyped().GetValue()
		}
	}
	return sum
}

func hasLabels(s *dto.Metric, pairs []string) bool {
	for i := 0; i+1 < len(pairs); i += 2 {
		found := false
		for _, l := range s.GetLabel() {
			if l.GetName() == pairs[i] && l.GetValue() == pairs[i+1] {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// Metric names: SERVER1 registers the minted and JWKS-served series, SERVER2
// the verification and JWKS-fetch series.
const (
	metricMinted        = "handoff_tokens_minted_total"
	metricVerifications = "handoff_verifications_total"
	metricJWKSFetches   = "handoff_jwks_fetches_total"
	metricJWKSServed    = "handoff_jwks_served_total"
)

// waitFor polls cond until it returns true, failing the test after timeout.
// It is how the suite waits: on a condition it can observe, never a fixed
// sleep.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("e2e: timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(pollInterval)
	}
}

func tail(s string, lines int) string {
	all := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// artifactDir returns (and creates) e2e/artifacts/<test name>, where a
// failing test leaves what explains the failure.
func artifactDir(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("artifacts", unsafeName.ReplaceAllString(t.Name(), "_")))
	if err == nil {
		err = os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		t.Logf("e2e: no artifact directory: %v", err)
		return ""
	}
	return dir
}

// ClusterConfig adjusts the servers of a Cluster.
type ClusterConfig struct {
	// Server1Env and Server2Env add to or override the harness's settings
	// (addresses, URLs, key directory). Server2Env applies to every SERVER2
	// replica.
	Server1Env map[string]string
	Server2Env map[string]string
	// TLS makes both servers serve https with suiteCert, on the same
	// hosts (localhost and 127.0.0.1). Default false: plain http.
	TLS bool
}

// Cluster is one SERVER1 and one or more SERVER2 replicas configured to
// trust each other: SERVER1 on localhost and SERVER2 on 127.0.0.1, so that
// cookies and origins are cross-site as in a deployment. Its processes are
// stopped when the test ends; then the harness fails the test if any
// process logged a token the test saw, and on failure saves every process's
// log under e2e/artifacts/<test name>/.
type Cluster struct {
	// Server1 is the issuer. Server2 is the replica SERVER1 hands off to.
	Server1, Server2 *Server
	// Issuer is SERVER1's issuer URL; Audience is SERVER2's identifier,
	// shared by all its replicas.
	Issuer, Audience string

	cfg    ClusterConfig
	s2bin  string
	scheme string
	tlsEnv map[string]string

	mu      sync.Mutex
	servers []*Server
	secrets []string
}

// NewCluster configures a cluster on fresh ports and directories without
// starting it.
func NewCluster(t testing.TB, cfg ClusterConfig) *Cluster {
	t.Helper()
	s1bin, s2bin := binaries(t)
	dir := t.TempDir()
	scheme := "http"
	var tlsEnv map[string]string
	if cfg.TLS {
		scheme = "https"
		certFile, keyFile := suiteCert.WriteFiles(t, dir)
		tlsEnv = map[string]string{"TLS_CERT": certFile, "TLS_KEY": keyFile}
	}
	s1URL := fmt.Sprintf("%s://localhost:%d", scheme, freePort(t))
	s2Port := freePort(t)
	audience := fmt.Sprintf("%s://127.0.0.1:%d", scheme, s2Port)
	c := &Cluster{
		Issuer:   s1URL,
		Audience: audience,
		cfg:      cfg,
		s2bin:    s2bin,
		scheme:   scheme,
		tlsEnv:   tlsEnv,
	}
	env := map[string]string{
		"SERVER1_ADDR":        strings.TrimPrefix(s1URL, scheme+"://"),
		"SERVER1_ISSUER":      s1URL,
		"SERVER1_KEYS_DIR":    filepath.Join(dir, "server1-keys"),
		"SERVER1_AUDIENCE":    audience,
		"SERVER1_HANDOFF_URL": audience + "/handoff",
		// The bound flow: "Continue" links to SERVER2's start endpoint.
		"SERVER1_HANDOFF_START_URL": audience + "/handoff/start",
	}
	c.addTLS(env, "SERVER1")
	maps.Copy(env, cfg.Server1Env)
	c.Server1 = &Server{Name: "SERVER1", Label: "SERVER1", URL: s1URL, Env: env, bin: s1bin, out: &sharedtest.Buffer{}}
	c.servers = append(c.servers, c.Server1)
	c.Server2 = c.addServer2(s2Port, nil)
	t.Cleanup(func() { c.cleanup(t) })
	return c
}

// StartCluster configures a cluster and starts SERVER1 then SERVER2, each
// ready, and SERVER2 accepting tokens minted from now on.
func StartCluster(t testing.TB, cfg ClusterConfig) *Cluster {
	t.Helper()
	c := NewCluster(t, cfg)
	c.Server1.Start(t)
	c.Server1.WaitReady(t)
	c.Server2.Start(t)
	c.Server2.WaitReady(t)
	c.Server2.WaitStartSecondOver(t)
	return c
}

// AddServer2 configures another SERVER2 replica, on its own port, with the
// cluster's audience and issuer and env on top. It is not started.
func (c *Cluster) AddServer2(t testing.TB, env map[string]string) *Server {
	t.Helper()
	return c.addServer2(freePort(t), env)
}

func (c *Cluster) addServer2(port int, extra map[string]string) *Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	label := "SERVER2"
	if n := len(c.servers); n > 1 {
		label = fmt.Sprintf("SERVER2-%d", n)
	}
	env := map[string]string{
		"SERVER2_ADDR":           fmt.Sprintf("127.0.0.1:%d", port),
		"SERVER2_AUDIENCE":       c.Audience,
		"SERVER2_TRUSTED_ISSUER": c.Issuer,
	}
	c.addTLS(env, "SERVER2")
	maps.Copy(env, c.cfg.Server2Env)
	maps.Copy(env, extra)
	s := &Server{Name: "SERVER2", Label: label, URL: c.scheme + "://" + env["SERVER2_ADDR"], Env: env, bin: c.s2bin, out: &sharedtest.Buffer{}}
	c.servers = append(c.servers, s)
	return s
}

// addTLS adds the TLS settings of a TLS cluster to a server's env: its
// certificate and key, and SSL_CERT_FILE so that its fetches (SERVER2's
// of SERVER1's metadata, keys and revocations) trust the same certificate.
func (c *Cluster) addTLS(env map[string]string, prefix string) {
	for k, v := range c.tlsEnv {
		env[prefix+"_"+k] = v
	}
	if f := c.tlsEnv["TLS_CERT"]; f != "" {
		env["SSL_CERT_FILE"] = f
	}
}

// NoteSecret records a token the test handled, so that the harness can fail
// the test if any process wrote it to its log.
func (c *Cluster) NoteSecret(token string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.secrets = append(c.secrets, token)
	// A token can leak in pieces too; its signature segment alone is
	// specific enough to search for.
	if i := strings.LastIndexByte(token, '.'); i >= 0 && len(token)-i > 32 {
		c.secrets = append(c.secrets, token[i+1:])
	}
}

func (c *Cluster) cleanup(t testing.TB) {
	c.mu.Lock()
	servers := slices.Clone(c.servers)
	secrets := slices.Clone(c.secrets)
	c.mu.Unlock()
	for _, s := range servers {
		s.Stop(t)
	}
	for _, s := range servers {
		logs := s.out.String()
		for _, secret := range secrets {
			if strings.Contains(logs, secret) {
				// Never print the token itself: test logs are kept too.
				t.Errorf("e2e: %s wrote a handoff token (or its signature) to its log", s.Label)
				break
			}
		}
	}
	if !t.Failed() {
		return
	}
	dir := artifactDir(t)
	if dir == "" {
		return
	}
	for _, s := range servers {
		path := filepath.Join(dir, strings.ToLower(s.Label)+".log")
		if err := os.WriteFile(path, []byte(s.out.String()), 0o644); err != nil {
			t.Logf("e2e: saving %s log: %v", s.Label, err)
			continue
		}
		t.Logf("e2e: %s log saved to %s", s.Label, path)
	}
}

// mintRequest is what `server1 mint` is asked for; zero fields get the demo
// values (alice, the cluster's audience, transfer-123 approve with its
// parameters, the default lifetime).
type mintRequest struct {
	Subject  string
	Audience string
	TaskID   string
	Action   string
	Params   map[string]string
	TTL      time.Duration
	// Unbound mints without a "nonce": a token SERVER2's browser
	// endpoint refuses while binding is required.
	Unbound bool
}

// e2eBindingSecret is the binding secret of the browser Cluster.Mint's
// tokens are bound to; postToken presents it as SERVER2's start endpoint
// would have set it.
var (
	e2eBindingSecret = []byte("e2e-binding-secret-of-the-suite!")
	e2eBindingNonce  = bindingNonce(e2eBindingSecret)
	e2eBindingCookie = &http.Cookie{Name: "s2bind-00000000000e2e00", Value: base64.RawURLEncoding.EncodeToString(e2eBindingSecret)}
)

// bindingNonce is the "nonce" of a token bound to secret
// (docs/PROTOCOL.md): the unpadded base64url SHA-256 of it.
func bindingNonce(secret []byte) string {
	sum := sha256.Sum256(secret)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// bindings maps tokens the suite minted bound to e2eBindingSecret to its
// cookie.
var bindings sync.Map

// bindingOf returns the binding cookie of token, when the suite minted it.
func bindingOf(token string) (*http.Cookie, bool) {
	ck, ok := bindings.Load(token)
	if !ok {
		return nil, false
	}
	return ck.(*http.Cookie), true
}

// Mint runs `server1 mint` against SERVER1's key directory and returns the
// token, which it notes as a secret.
func (c *Cluster) Mint(t testing.TB, r mintRequest) string {
	t.Helper()
	if r.Subject == "" {
		r.Subject = demoUser
	}
	if r.Audience == "" {
		r.Audience = c.Audience
	}
	if r.TaskID == "" {
		r.TaskID, r.Params = demoTask, demoParams
	}
	if r.Action == "" {
		r.Action = demoAction
	}
	args := []string{"mint", "--sub", r.Subject, "--aud", r.Audience, "--task-id", r.TaskID, "--task-action", r.Action}
	for _, k := range slices.Sorted(maps.Keys(r.Params)) {
		args = append(args, "--param", k+"="+r.Params[k])
	}
	if r.TTL != 0 {
		args = append(args, "--ttl", r.TTL.String())
	}
	if !r.Unbound {
		args = append(args, "--nonce", e2eBindingNonce)
	}
	tok := strings.TrimSpace(c.Server1.MustExec(t, args...))
	if strings.Count(tok, ".") != 2 || strings.ContainsAny(tok, " \n") {
		t.Fatalf("e2e: server1 mint printed %d bytes that are not a compact JWS", len(tok))
	}
	c.NoteSecret(tok)
	if !r.Unbound {
		bindings.Store(tok, e2eBindingCookie)
	}
	return tok
}

// counter is a shorthand for one scrape's value of a series.
func counter(t testing.TB, s *Server, name string, labels ...string) float64 {
	t.Helper()
	return s.Metrics(t).Value(name, labels...)
}

// itoa is strconv.Itoa, for building paths.
func itoa(n int) string { return strconv.Itoa(n) }
