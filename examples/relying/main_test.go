package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/shared/sharedtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRelying builds this example and SERVER1, runs both as real processes
// on loopback, mints through `server1 mint`, and uses the example as a
// browser and an API client would.
func TestRelying(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs two processes")
	}
	dir := t.TempDir()
	build(t, filepath.Join(dir, "server1"), "github.com/handoffbroker/handoff/server1")
	build(t, filepath.Join(dir, "relying"), ".")
	issuer := "http://127.0.0.1:" + freePort(t)
	rpAddr := "127.0.0.1:" + freePort(t)
	audience := "http://" + rpAddr
	env := []string{
		"SERVER1_ADDR=" + strings.TrimPrefix(issuer, "http://"),
		"SERVER1_ISSUER=" + issuer,
		"SERVER1_KEYS_DIR=" + filepath.Join(dir, "keys"),
		"SERVER1_AUDIENCE=" + audience,
		"SERVER1_HANDOFF_URL=" + audience + "/handoff",
	}
	s1 := start(t, env, filepath.Join(dir, "server1"))
	waitReady(t, issuer+"/readyz", s1)
	rp := start(t, nil, filepath.Join(dir, "relying"), "-issuer", issuer, "-audience", audience, "-addr", rpAddr)
	waitReady(t, audience+"/readyz", rp)
	// The embedded memory store refuses tokens issued before it started
	// (whole seconds): mint from the next second on.
	next := time.Now().Truncate(time.Second).Add(time.Second)
	require.Eventually(t, func() bool { return !time.Now().Before(next) }, 3*time.Second, 10*time.Millisecond)
	mintBound := func(taskID, nonce string) string {
		t.Helper()
		out := run(t, env, filepath.Join(dir, "server1"), "mint", "--sub", "alice", "--aud", audience, "--task-id", taskID, "--task-action", "approve", "--nonce", nonce)
		tok := strings.TrimSpace(out)
		require.Equal(t, 2, strings.Count(tok, "."), "server1 mint printed no token")
		t.Cleanup(func() {
			for _, p := range []*process{s1, rp} {
				assert.NotContains(t, p.out.String(), tok, "%s logged a token", p.name)
			}
		})
		return tok
	}
	mint := func(taskID string) string { return mintBound(taskID, "") }
	// start begins a bound handoff in b as the issuer's "Continue" link
	// does, and returns the nonce to mint with and the binding cookie
	// (Secure, which cookiejar keeps off plain http) to post with.
	start := func(b *sharedtest.Browser, taskID string) (string, http.Header) {
		t.Helper()
		res := b.Get("/handoff/start?task_id=" + taskID)
		require.Equal(t, http.StatusSeeOther, res.StatusCode, res.Body)
		loc, err := url.Parse(res.Header.Get("Location"))
		require.NoError(t, err)
		require.Equal(t, issuer+"/handoffs/bound", loc.Scheme+"://"+loc.Host+loc.Path)
		cookies := res.Cookies()
		require.Len(t, cookies, 1)
		return loc.Query().Get("nonce"), http.Header{"Cookie": {cookies[0].Name + "=" + cookies[0].Value}}
	}

	t.Run("browser_handoff", func(t *testing.T) {
		b := newBrowser(t, audience)
		nonce, cookie := start(b, "transfer-7")
		tok := mintBound("transfer-7", nonce)

		unbound := b.PostForm("/handoff", url.Values{"token": {mint("transfer-7")}}, cookie)
		first := b.PostForm("/handoff", url.Values{"token": {tok}}, cookie)
		task := b.Get("/task")
		again := b.PostForm("/handoff", url.Values{"token": {tok}}, cookie)
		inURL := b.Get("/handoff?token=" + url.QueryEscape(tok))

		assert.Equal(t, http.StatusForbidden, unbound.StatusCode)
		assert.Contains(t, unbound.Body, `<code id="reason">unbound_handoff</code>`)
		require.Equal(t, http.StatusSeeOther, first.StatusCode, first.Body)
		assert.Equal(t, "/task", first.Header.Get("Location"))
		assert.Equal(t, http.StatusOK, task.StatusCode)
		assert.Equal(t, "alice may approve transfer-7\n", task.Body)
		assert.Equal(t, http.StatusConflict, again.StatusCode)
		assert.Contains(t, again.Body, `<code id="reason">replayed</code>`)
		assert.Equal(t, http.StatusBadRequest, inURL.StatusCode)
		assert.Contains(t, inURL.Body, `<code id="reason">token_in_url</code>`)
	})

	t.Run("bearer_api", func(t *testing.T) {
		tok := mint("transfer-8")
		other := mint("transfer-9")

		missing := callAPI(t, audience, "/api/tasks/transfer-8/approve", "")
		wrong := callAPI(t, audience, "/api/tasks/transfer-8/approve", other)
		ok := callAPI(t, audience, "/api/tasks/transfer-8/approve", tok)
		replayed := callAPI(t, audience, "/api/tasks/transfer-8/approve", tok)

		assert.Equal(t, http.StatusUnauthorized, missing.StatusCode)
		assert.Equal(t, "Bearer", missing.Header.Get("WWW-Authenticate"))
		assert.Equal(t, http.StatusForbidden, wrong.StatusCode)
		assert.Equal(t, `Bearer error="insufficient_scope", error_description="task_mismatch"`, wrong.Header.Get("WWW-Authenticate"))
		require.Equal(t, http.StatusOK, ok.StatusCode, ok.Body)
		var got map[string]string
		require.NoError(t, json.Unmarshal([]byte(ok.Body), &got))
		assert.Equal(t, map[string]string{"status": "done", "task_id": "transfer-8", "subject": "alice"}, got)
		assert.Equal(t, http.StatusConflict, replayed.StatusCode)
		assert.Equal(t, "application/problem+json", replayed.Header.Get("Content-Type"))
		assert.Contains(t, replayed.Body, `"code":"replayed"`)
	})

	// Last: it revokes alice at the issuer, as "sign out everywhere" does.
	t.Run("revoked_subject_ends_session", func(t *testing.T) {
		b := newBrowser(t, audience)
		nonce, cookie := start(b, "transfer-10")
		opened := b.PostForm("/handoff", url.Values{"token": {mintBound("transfer-10", nonce)}}, cookie)
		require.Equal(t, http.StatusSeeOther, opened.StatusCode, opened.Body)
		require.Equal(t, http.StatusOK, b.Get("/task").StatusCode)

		signOutEverywhere(t, issuer, "alice", "alice-demo-pw")

		var last sharedtest.Response
		require.Eventually(t, func() bool {
			last = b.Get("/task")
			return last.StatusCode != http.StatusOK
		}, 30*time.Second, 100*time.Millisecond, "the session outlived the subject's revocation")
		assert.Equal(t, http.StatusUnauthorized, last.StatusCode, last.Body)
		assert.Equal(t, http.StatusUnauthorized, b.Get("/task").StatusCode, "the session stays ended")
	})
}

// csrfField finds the CSRF token in one of SERVER1's forms.
var csrfField = regexp.MustCompile(`name="_csrf" value="([^"]+)"`)

// signOutEverywhere signs in to SERVER1 through its forms and posts "sign
// out everywhere", which revokes the user's tokens issued until now.
func signOutEverywhere(t testing.TB, issuer, user, password string) {
	t.Helper()
	s1 := newBrowser(t, issuer)
	csrf := func(page sharedtest.Response) string {
		m := csrfField.FindStringSubmatch(page.Body)
		require.NotNil(t, m, "no CSRF token on the page: %s", page.Body)
		return m[1]
	}
	login := s1.PostForm("/login", url.Values{"_csrf": {csrf(s1.Get("/login"))}, "username": {user}, "password": {password}}, nil)
	require.Equal(t, http.StatusSeeOther, login.StatusCode, login.Body)
	out := s1.PostForm("/logout-everywhere", url.Values{"_csrf": {csrf(s1.Get("/"))}}, nil)
	require.Equal(t, http.StatusSeeOther, out.StatusCode, out.Body)
}

func build(t testing.TB, out, pkg string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-o", out, pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
}

func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	_, port, err := net.SplitHostPort(ln.Addr().String())
	require.NoError(t, err)
	return port
}

// process is a started program and everything it printed.
type process struct {
	name string
	out  *sharedtest.Buffer
	done chan struct{}
}

func start(t testing.TB, env []string, bin string, args ...string) *process {
	t.Helper()
	p := &process{name: filepath.Base(bin), out: &sharedtest.Buffer{}, done: make(chan struct{})}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = p.out, p.out
	require.NoError(t, cmd.Start())
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func run(t testing.TB, env []string, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "%s %s: %s", filepath.Base(bin), args[0], stderr.String())
	return string(out)
}

func waitReady(t testing.TB, readyURL string, p *process) {
	t.Helper()
	require.Eventually(t, func() bool {
		select {
		case <-p.done:
			return false
		default:
		}
		resp, err := http.Get(readyURL)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 20*time.Millisecond, "%s never became ready:\n%s", p.name, p.out.String())
}

// newBrowser is a browser of the service at baseURL that asks for HTML.
func newBrowser(t testing.TB, baseURL string) *sharedtest.Browser {
	b := sharedtest.NewBrowser(t, baseURL)
	b.Header = http.Header{"Accept": {"text/html"}}
	return b
}

// callAPI posts to the service at baseURL's path, with tok as the Bearer
// credential unless it is "".
func callAPI(t testing.TB, baseURL, path, tok string) sharedtest.Response {
	t.Helper()
	var h http.Header
	if tok != "" {
		h = http.Header{"Authorization": {"Bearer " + tok}}
	}
	return sharedtest.NewBrowser(t, baseURL).PostForm(path, nil, h)
}
