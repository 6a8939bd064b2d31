package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/handoffbroker/handoff/broker/keys"
	"github.com/handoffbroker/handoff/broker/token"
	"github.com/handoffbroker/handoff/shared"
	"github.com/handoffbroker/handoff/shared/sharedtest"
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

// testServer is SERVER1 under httptest, with its log captured.
type testServer struct {
	app  *app
	srv  *httptest.Server
	logs *sharedtest.Buffer
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
	return newTestServerWith(t, cfg, options{})
}

// newTestServerWith is newTestServer with opts; its Logger is replaced by
// the captured log.
func newTestServerWith(t testing.TB, cfg Config, opts options) *testServer {
	t.Helper()
	logs := &sharedtest.Buffer{}
	opts.Logger = shared.NewLogger(logs, "server1", slog.LevelDebug, shared.LogJSON)
	a, err := newApp(cfg, opts)
	require.NoError(t, err)
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return &testServer{app: a, srv: srv, logs: logs}
}

// browser is a sharedtest.Browser on the test server.
type browser struct {
	*sharedtest.Browser
	ts *testServer
}

func (ts *testServer) browser(t testing.TB) *browser {
	t.Helper()
	return &browser{Browser: sharedtest.NewBrowser(t, ts.srv.URL), ts: ts}
}

// response is a read response.
type response = sharedtest.Response

// csrfFromLogin loads the sign-in page and returns its CSRF token.
func (b *browser) csrfFromLogin() string {
	b.T.Helper()
	res := b.Get("/login")
	require.Equal(b.T, http.StatusOK, res.StatusCode)
	return inputValue(b.T, parseHTML(b.T, res.Body), "login", csrfField)
}

// signIn signs in and returns the CSRF token of the task list page.
func (b *browser) signIn(username, password string) string {
	b.T.Helper()
	csrf := b.csrfFromLogin()
	res := b.PostForm("/login", url.Values{csrfField: {csrf}, "username": {username}, "password": {password}}, nil)
	require.Equal(b.T, http.StatusSeeOther, res.StatusCode, res.Body)
	require.Equal(b.T, "/", res.Header.Get("Location"))
	res = b.Get("/")
	require.Equal(b.T, http.StatusOK, res.StatusCode)
	return inputValue(b.T, parseHTML(b.T, res.Body), "logout-form", csrfField)
}

func parseHTML(t testing.TB, body string) *html.Node {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(body))
	require.NoError(t, err)
	return doc
}

func byID(t testing.TB, doc *html.Node, id string) *html.Node {
	t.Helper()
	n := sharedtest.Find(doc, func(n *html.Node) bool {
		v, ok := sharedtest.Attr(n, "id")
		return n.Type == html.ElementNode && ok && v == id
	})
	require.NotNil(t, n, "no element #%s", id)
	return n
}

// inputValue returns the value of the named input inside the element with
// the given id.
func inputValue(t testing.TB, doc *html.Node, id, name string) string {
	t.Helper()
	in := sharedtest.Find(byID(t, doc, id), func(n *html.Node) bool {
		v, _ := sharedtest.Attr(n, "name")
		return n.Type == html.ElementNode && n.Data == "input" && v == name
	})
	require.NotNil(t, in, "no input %q in #%s", name, id)
	v, _ := sharedtest.Attr(in, "value")
	return v
}

// errorCode returns the reason code of an error response: the problem+json
// "code", or the error page's #reason.
func errorCode(t testing.TB, res response) string {
	t.Helper()
	if strings.HasPrefix(res.Header.Get("Content-Type"), "application/problem+json") {
		var p shared.Problem
		require.NoError(t, json.Unmarshal([]byte(res.Body), &p))
		return p.Code
	}
	return sharedtest.Text(byID(t, parseHTML(t, res.Body), "reason"))
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
