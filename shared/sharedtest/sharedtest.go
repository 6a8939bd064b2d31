// Package sharedtest holds the HTTP test helpers both servers' tests and
// the end-to-end suite share: a log buffer safe for concurrent writers, a
// browser-like client that keeps cookies and does not follow redirects, and
// small readers of HTML pages. It is for tests only; the broker's own test
// kit (issuers, clocks) is package broker/brokertest.
package sharedtest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/html"
)

// Buffer collects output written from server goroutines or processes. It
// is safe for concurrent use.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// JSONLines decodes the JSON log lines (shared.NewLogger's format) whose
// "msg" is msg, failing t on a line that is not JSON.
func (b *Buffer) JSONLines(t testing.TB, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// Browser is an HTTP client for one server with its own cookie jar that
// does not follow redirects, so tests see each 303. Its methods fail T on a
// transport error.
type Browser struct {
	T      testing.TB
	URL    string
	Client *http.Client
	// Header holds fields sent with every request (an Accept, say),
	// before the fields a method adds. Default none.
	Header http.Header
	// Check, when set, is called with every response and its body, to
	// assert what no response may carry.
	Check func(t testing.TB, r Response)
}

// NewBrowser returns a browser for the server at baseURL.
func NewBrowser(t testing.TB, baseURL string) *Browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &Browser{T: t, URL: baseURL, Client: &http.Client{
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Response is a finished exchange with its body read.
type Response struct {
	*http.Response
	Body string
}

// Do sends req and reads the whole response.
func (b *Browser) Do(req *http.Request) Response {
	b.T.Helper()
	resp, err := b.Client.Do(req)
	if err != nil {
		b.T.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.T.Fatal(err)
	}
	r := Response{Response: resp, Body: string(body)}
	if b.Check != nil {
		b.Check(b.T, r)
	}
	return r
}

// Get fetches path.
func (b *Browser) Get(path string) Response {
	b.T.Helper()
	return b.Do(b.request(http.MethodGet, path, "", nil, nil))
}

// PostForm posts form to path, with header's fields added.
func (b *Browser) PostForm(path string, form url.Values, header http.Header) Response {
	b.T.Helper()
	return b.Do(b.request(http.MethodPost, path, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()), header))
}

// PostJSON posts body as JSON to path, with header's fields added.
func (b *Browser) PostJSON(path, body string, header http.Header) Response {
	b.T.Helper()
	return b.Do(b.request(http.MethodPost, path, "application/json", strings.NewReader(body), header))
}

// Cookie returns the value of the jar's cookie name for the server, or "".
func (b *Browser) Cookie(name string) string {
	u, err := url.Parse(b.URL)
	if err != nil {
		return ""
	}
	for _, c := range b.Client.Jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

func (b *Browser) request(method, path, contentType string, body io.Reader, header http.Header) *http.Request {
	b.T.Helper()
	req, err := http.NewRequest(method, b.URL+path, body)
	if err != nil {
		b.T.Fatal(err)
	}
	for k, v := range b.Header {
		req.Header[k] = v
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	return req
}

// Find returns the first element below n, n included and depth first, that
// match accepts, or nil (also when n is nil).
func Find(n *html.Node, match func(*html.Node) bool) *html.Node {
	if n == nil {
		return nil
	}
	if n.Type == html.ElementNode && match(n) {
		return n
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if f := Find(c, match); f != nil {
			return f
		}
	}
	return nil
}

// Attr returns the value of n's attribute name, and whether it has one.
func Attr(n *html.Node, name string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == name {
			return a.Val, true
		}
	}
	return "", false
}

// Text returns the text inside n, tags dropped; "" for a nil n.
func Text(n *html.Node) string {
	if n == nil {
		return ""
	}
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
