package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/handoffbroker/handoff/broker/keys"
	"github.com/handoffbroker/handoff/broker/token"
	"github.com/handoffbroker/handoff/shared"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/net/html"
)

const (
	payments    = "http://127.0.0.1:8082"
	paymentsURL = "http://127.0.0.1:8082/handoff"
	testAPIKey  = "test-api-key-0123456789abcdef"
	testIssuer  = "http://localhost:8081"
)

// demoParams are the parameters of alice's transfer 123.
var demoParams = map[string]string{"amount": "250.00", "currency": "EUR", "payee": "ACME Corp"}

// syncBuffer collects log output written from server goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines decodes the JSON log lines with the given msg.
func (b *syncBuffer) lines(t testing.TB, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m), "log line %q", l)
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// testServer is SERVER1 under httptest, with its log captured.
type testServer struct {
	app  *app
	srv  *httptest.Server
	logs *syncBuffer
}

// testConfig is the demo configuration with a fresh keys directory, cheap
// bcrypt and an API key.
func testConfig(t testing.TB) Config {
	t.Helper()
	cfg := defaultConfig()
	cfg.KeysDir = filepath.Join(t.TempDir(), "keys")
	cfg.RevocationDir = filepath.Join(t.TempDir(), "revocations")
	cfg.APIKey = testAPIKey
	cfg.bcryptCost = bcrypt.MinCost
	return cfg
}

func newTestServer(t testing.TB, cfg Config) *testServer {
	t.Helper()
	logs := &syncBuffer{}
	a, err := newApp(cfg, shared.NewLogger(logs, "server1", slog.LevelDebug))
	require.NoError(t, err)
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return &testServer{app: a, srv: srv, logs: logs}
}

// browser is an HTTP client with a cookie jar that does not follow
// redirects, so tests see each 303.
type browser struct {
	t      testing.TB
	ts     *testServer
	client *http.Client
}

func (ts *testServer) browser(t testing.TB) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &browser{t: t, ts: ts, client: &http.Client{
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// response is a read response.
type response struct {
	*http.Response
	body string
}

func (b *browser) do(req *http.Request) response {
	b.t.Helper()
	res, err := b.client.Do(req)
	require.NoError(b.t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(b.t, err)
	return response{Response: res, body: string(body)}
}

func (b *browser) get(path string) response {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.ts.srv.URL+path, nil)
	require.NoError(b.t, err)
	return b.do(req)
}

func (b *browser) postForm(path string, form url.Values, header http.Header) response {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.ts.srv.URL+path, strings.NewReader(form.Encode()))
	require.NoError(b.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header[k] = v
	}
	return b.do(req)
}

func (b *browser) postJSON(path, body string, header http.Header) response {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.ts.srv.URL+path, strings.NewReader(body))
	require.NoError(b.t, err)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header[k] = v
	}
	return b.do(req)
}

// cookie returns the jar's cookie of that name for the server, or "".
func (b *browser) cookie(name string) string {
	u, _ := url.Parse(b.ts.srv.URL)
	for _, c := range b.client.Jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// csrfFromLogin loads the sign-in page and returns its CSRF token.
func (b *browser) csrfFromLogin() string {
	b.t.Helper()
	res := b.get("/login")
	require.Equal(b.t, http.StatusOK, res.StatusCode)
	return inputValue(b.t, parseHTML(b.t, res.body), "login", csrfField)
}

// signIn signs in and returns the CSRF token of the task list page.
func (b *browser) signIn(username, password string) string {
	b.t.Helper()
	csrf := b.csrfFromLogin()
	res := b.postForm("/login", url.Values{csrfField: {csrf}, "username": {username}, "password": {password}}, nil)
	require.Equal(b.t, http.StatusSeeOther, res.StatusCode, res.body)
	require.Equal(b.t, "/", res.Header.Get("Location"))
	res = b.get("/")
	require.Equal(b.t, http.StatusOK, res.StatusCode)
	return inputValue(b.t, parseHTML(b.t, res.body), "logout-form", csrfField)
}

func parseHTML(t testing.TB, body string) *html.Node {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(body))
	require.NoError(t, err)
	return doc
}

// findNode returns the first node, depth first, that match accepts.
func findNode(n *html.Node, match func(*html.Node) bool) *html.Node {
	if match(n) {
		return n
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if f := findNode(c, match); f != nil {
			return f
		}
	}
	return nil
}

func attr(n *html.Node, name string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == name {
			return a.Val, true
		}
	}
	return "", false
}

func byID(t testing.TB, doc *html.Node, id string) *html.Node {
	t.Helper()
	n := findNode(doc, func(n *html.Node) bool {
		v, ok := attr(n, "id")
		return n.Type == html.ElementNode && ok && v == id
	})
	require.NotNil(t, n, "no element #%s", id)
	return n
}

// inputValue returns the value of the named input inside the element with
// the given id.
func inputValue(t testing.TB, doc *html.Node, id, name string) string {
	t.Helper()
	in := findNode(byID(t, doc, id), func(n *html.Node) bool {
		v, _ := attr(n, "name")
		return n.Type == html.ElementNode && n.Data == "input" && v == name
	})
	require.NotNil(t, in, "no input %q in #%s", name, id)
	v, _ := attr(in, "value")
	return v
}

func text(n *html.Node) string {
	var sb strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			sb.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return sb.String()
}

// errorCode returns the reason code of an error response: the problem+json
// "code", or the error page's #reason.
func errorCode(t testing.TB, res response) string {
	t.Helper()
	if strings.HasPrefix(res.Header.Get("Content-Type"), "application/problem+json") {
		var p shared.Problem
		require.NoError(t, json.Unmarshal([]byte(res.body), &p))
		return p.Code
	}
	return text(byID(t, parseHTML(t, res.body), "reason"))
}

// mintedTotal sums handoff_tokens_minted_total over every audience.
func mintedTotal(t testing.TB, a *app) float64 {
	t.Helper()
	families, err := a.metrics.Registry.Gather()
	require.NoError(t, err)
	var sum float64
	for _, f := range families {
		if f.GetName() != "handoff_tokens_minted_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// verifier checks tokens against a key source the way SERVER2 would.
func verifier(t testing.TB, keys token.KeySource, audience string) *token.Verifier {
	t.Helper()
	replay, err := token.NewMemoryReplayStore(token.MemoryReplayConfig{})
	require.NoError(t, err)
	t.Cleanup(func() { replay.Close() })
	v, err := token.NewVerifier(token.VerifierConfig{
		Issuers: []token.TrustedIssuer{{Issuer: testIssuer, Keys: keys}}, Audience: audience, Replay: durableReplay{replay},
	})
	require.NoError(t, err)
	return v
}

// durableReplay hides the memory store's start time, as a store that
// survives restarts (Redis) would: tokens minted in the second before the
// store was made are then accepted.
type durableReplay struct{ token.ReplayStore }

// expectTransfer is the Expect for one of the demo transfers.
func expectTransfer(id string, params map[string]string) token.Expect {
	return token.Expect{Task: &token.Task{ID: id, Action: "approve", ParamsDigest: token.DigestParams(params)}}
}

// openKeyring opens a keys directory as another process would.
func openKeyring(t testing.TB, dir string) *keys.Keyring {
	t.Helper()
	kr, err := keys.Open(keys.KeyringConfig{Dir: dir})
	require.NoError(t, err)
	return kr
}

// runCLI runs the server1 command line and returns exit status and output.
func runCLI(t testing.TB, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func writeFile(t testing.TB, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}
