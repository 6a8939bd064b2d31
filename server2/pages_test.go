package main

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/handoffbroker/handoff/broker/brokertest"
	"github.com/handoffbroker/handoff/shared/sharedtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/html"
)

// discoveredApp is a testApp that found its issuer through the handoff
// configuration, display members included.
func discoveredApp(t *testing.T) *testApp {
	t.Helper()
	ta := newTestApp(t, func(c *Config, _ *Options) { c.JWKSURL = "" })
	require.NoError(t, ta.app.rp.Refresh(t.Context()))
	return ta
}

// TestPages_linkBackToPortal: every page SERVER2 shows a browser names the
// portal that sent the user and links back to it: the issuer's
// display_name and homepage_uri once discovered, else a plain name and the
// issuer's URL.
func TestPages_linkBackToPortal(t *testing.T) {
	pages := []struct {
		name       string
		giveGet    func(t *testing.T, ta *testApp) response
		wantStatus int
	}{
		{name: "index", giveGet: func(_ *testing.T, ta *testApp) response { return ta.newBrowser().Get("/") }, wantStatus: http.StatusOK},
		{name: "task", giveGet: func(t *testing.T, ta *testApp) response { return signedIn(t, ta).Get("/tasks/transfer-123") }, wantStatus: http.StatusOK},
		{name: "done", giveGet: func(t *testing.T, ta *testApp) response {
			b := signedIn(t, ta)
			return b.PostForm("/tasks/transfer-123/complete", url.Values{"_csrf": {csrfField(t, b.Get("/tasks/transfer-123"))}}, nil)
		}, wantStatus: http.StatusOK},
		{name: "error_replayed", giveGet: func(t *testing.T, ta *testApp) response {
			tok := ta.issuer.Mint(t, demoRequest())
			b := ta.newBrowser()
			require.Equal(t, http.StatusSeeOther, b.handoff(tok).StatusCode)
			return b.handoff(tok)
		}, wantStatus: http.StatusConflict},
		{name: "error_no_session", giveGet: func(_ *testing.T, ta *testApp) response { return ta.newBrowser().Get("/tasks/transfer-124") },
			wantStatus: http.StatusUnauthorized},
		{name: "not_found", giveGet: func(_ *testing.T, ta *testApp) response { return ta.newBrowser().Get("/no-such-page") },
			wantStatus: http.StatusNotFound},
	}
	apps := []struct {
		name     string
		giveApp  func(t *testing.T) *testApp
		wantName string
	}{
		{name: "discovered", giveApp: discoveredApp, wantName: brokertest.DisplayName},
		{name: "configured_urls_fall_back", giveApp: func(t *testing.T) *testApp { return newTestApp(t, nil) }, wantName: fallbackPortalName},
	}
	for _, app := range apps {
		for _, page := range pages {
			t.Run(app.name+"/"+page.name, func(t *testing.T) {
				ta := app.giveApp(t)

				got := page.giveGet(t, ta)

				require.Equal(t, page.wantStatus, got.StatusCode, got.Body)
				link := elementByID(t, got, "portal-link")
				require.NotNil(t, link, got.Body)
				href, _ := sharedtest.Attr(link, "href")
				assert.Equal(t, ta.issuer.URL+"/", href)
				assert.Equal(t, "Back to "+app.wantName, sharedtest.Text(link))
			})
		}
	}
}

// TestTaskPage_anotherTaskExplains: a session is scoped to its task's
// path, so another task's page finds none; the page says why and where to
// start that task, naming the task only when its id is plain text.
func TestTaskPage_anotherTaskExplains(t *testing.T) {
	tests := []struct {
		name      string
		givePath  string
		wantTitle string
	}{
		{name: "fail/other_transfer", givePath: "/tasks/transfer-124", wantTitle: "This browser has no session for transfer 124."},
		{name: "fail/words_in_the_url_not_echoed", givePath: "/tasks/" + url.PathEscape("Your account is locked, call 555-0100"),
			wantTitle: "This browser has no session for this task."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ta := discoveredApp(t)
			b := signedIn(t, ta)

			got := b.Get(tt.givePath)

			require.Equal(t, http.StatusUnauthorized, got.StatusCode, got.Body)
			assert.Equal(t, CodeNoSession, pageReason(t, got))
			assert.Equal(t, tt.wantTitle, sharedtest.Text(firstElement(t, got, "h1")))
			assert.Contains(t, got.Body, "A session here is for the one task "+brokertest.DisplayName+" sent you to do")
			assert.NotContains(t, got.Body, "call 555")
			retry := elementByID(t, got, "retry")
			require.NotNil(t, retry)
			href, _ := sharedtest.Attr(retry, "href")
			assert.Equal(t, ta.issuer.URL+"/", href)
			assert.Equal(t, "Start again on "+brokertest.DisplayName, sharedtest.Text(retry))
		})
	}
}

func TestDonePage_wording(t *testing.T) {
	ta := discoveredApp(t)
	b := signedIn(t, ta)

	got := b.PostForm("/tasks/transfer-123/complete", url.Values{"_csrf": {csrfField(t, b.Get("/tasks/transfer-123"))}}, nil)

	require.Equal(t, http.StatusOK, got.StatusCode, got.Body)
	assert.Equal(t, "Transfer 123 was approved.", sharedtest.Text(elementByID(t, got, "task-done-title")))
	assert.Equal(t, "250.00 EUR to ACME Corp", sharedtest.Text(elementByID(t, got, "task-summary")))
	require.NotNil(t, elementByID(t, got, "result-form"), "the outcome goes back to the portal")
	assert.Contains(t, got.Body, "Taking you back to "+brokertest.DisplayName)
}

// TestPages_oneWordForThePass: pages call what the browser carries a
// one-time pass, as SERVER1's pages do, never a token or a link.
func TestPages_oneWordForThePass(t *testing.T) {
	ta := discoveredApp(t)
	tok := ta.issuer.Mint(t, demoRequest())
	b := ta.newBrowser()
	require.Equal(t, http.StatusSeeOther, b.handoff(tok).StatusCode)

	for name, got := range map[string]response{
		"replayed":     b.handoff(tok),
		"malformed":    b.handoff("not-a-token"),
		"token_in_url": b.Get("/handoff"),
		"index":        b.Get("/"),
	} {
		if name != "index" {
			retry := elementByID(t, got, "retry")
			require.NotNil(t, retry, "%s: a refused handoff leads back to the portal", name)
			href, _ := sharedtest.Attr(retry, "href")
			assert.Equal(t, ta.issuer.URL+"/", href, name)
		}
		words := strings.ToLower(prose(t, got))
		assert.Contains(t, words, "one-time pass", name)
		for _, other := range []string{"token", "handoff", "link"} {
			assert.NotContains(t, words, other, name)
		}
	}
}

// prose is the text of the page's headings and paragraphs, where it
// speaks to the user (not its reason code).
func prose(t testing.TB, r response) string {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(r.Body))
	require.NoError(t, err)
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && (n.Data == "h1" || n.Data == "p") {
			b.WriteString(sharedtest.Text(n) + "\n")
			return
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	return b.String()
}

func elementByID(t testing.TB, r response, id string) *html.Node {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(r.Body))
	require.NoError(t, err)
	return sharedtest.Find(doc, func(n *html.Node) bool { v, _ := sharedtest.Attr(n, "id"); return v == id })
}

func firstElement(t testing.TB, r response, tag string) *html.Node {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(r.Body))
	require.NoError(t, err)
	return sharedtest.Find(doc, func(n *html.Node) bool { return n.Data == tag })
}
