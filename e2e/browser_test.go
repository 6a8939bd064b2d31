package e2e

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// browserStepTimeout bounds each group of browser actions.
const browserStepTimeout = 30 * time.Second

// chromium finds the browser: $E2E_CHROMIUM, else chromium on the PATH.
// Without one the test is skipped, unless E2E_REQUIRE_BROWSER=1 (CI), which
// makes a missing browser a failure.
func chromium(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("E2E_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const msg = "e2e: no Chromium found (install chromium or set E2E_CHROMIUM to its path)"
	if os.Getenv("E2E_REQUIRE_BROWSER") == "1" {
		t.Fatal(msg + "; E2E_REQUIRE_BROWSER=1 makes this a failure")
	}
	t.Skip(msg + "; set E2E_REQUIRE_BROWSER=1 to fail instead of skipping")
	return ""
}

// browserRequest is one request the browser sent, as the DevTools protocol
// reported it. A redirect is a new request with the same ID.
type browserRequest struct {
	ID          network.RequestID
	Method      string
	URL         string
	DocumentURL string
	// Headers are the request headers from requestWillBeSent; the raw
	// headers sent on the wire (requestWillBeSentExtraInfo) are in
	// Browser.wireHeaders.
	Headers  map[string]string
	PostData string
	// Status is the response status, 0 until it arrives.
	Status int64
}

// Browser is a real headless Chromium with a fresh profile, one tab, and a
// record of every request the tab sent. When the test fails it saves a
// screenshot and the page's HTML under e2e/artifacts/<test name>/.
type Browser struct {
	// Name, when a test drives several browsers or tabs, prefixes their
	// artifact files ("bob-screenshot.png"). Default "": no prefix.
	Name string

	ctx context.Context

	mu          sync.Mutex
	requests    []*browserRequest
	wireHeaders []map[string]string
	// held receives the requests HoldHandoffPosts pauses.
	held chan *fetch.EventRequestPaused
}

// NewBrowser starts Chromium; opts add to or override its flags.
func NewBrowser(t testing.TB, opts ...chromedp.ExecAllocatorOption) *Browser {
	t.Helper()
	exe := chromium(t)
	opts = append([]chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
		chromedp.WindowSize(1280, 900),
	}, opts...)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	b := &Browser{ctx: ctx}
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first call starts the browser and binds it to ctx, which has no
	// deadline; every later step gets its own.
	if err := chromedp.Listen(ctx, b.record); err != nil {
		t.Fatalf("e2e: starting Chromium (%s): %v", exe, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			b.saveArtifacts(t)
		}
	})
	return b
}

// trustSuiteCert is the Chromium flag that trusts suiteCert, for clusters
// with TLS.
func trustSuiteCert() chromedp.ExecAllocatorOption {
	return chromedp.Flag("ignore-certificate-errors-spki-list", suiteCert.SPKIHash)
}

func (b *Browser) record(ev any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		if ev.RedirectResponse != nil {
			if r := b.last(ev.RequestID); r != nil {
				r.Status = ev.RedirectResponse.Status
			}
		}
		r := &browserRequest{ID: ev.RequestID, Method: ev.Request.Method, URL: ev.Request.URL, DocumentURL: ev.DocumentURL, Headers: stringHeaders(ev.Request.Headers)}
		for _, e := range ev.Request.PostDataEntries {
			r.PostData += string(e.Bytes)
		}
		b.requests = append(b.requests, r)
	case *network.EventRequestWillBeSentExtraInfo:
		b.wireHeaders = append(b.wireHeaders, stringHeaders(ev.Headers))
	case *network.EventResponseReceived:
		if r := b.last(ev.RequestID); r != nil {
			r.Status = ev.Response.Status
		}
	}
}

func (b *Browser) last(id network.RequestID) *browserRequest {
	for i := len(b.requests) - 1; i >= 0; i-- {
		if b.requests[i].ID == id {
			return b.requests[i]
		}
	}
	return nil
}

func stringHeaders(h network.Headers) map[string]string {
	out := make(map[string]string, len(h))
	for k, v := range h {
		out[strings.ToLower(k)] = fmt.Sprint(v)
	}
	return out
}

// Requests returns a copy of the requests seen so far.
func (b *Browser) Requests() []browserRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]browserRequest, len(b.requests))
	for i, r := range b.requests {
		out[i] = *r
	}
	return out
}

// WireHeaders returns the raw request headers seen so far.
func (b *Browser) WireHeaders() []map[string]string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]map[string]string(nil), b.wireHeaders...)
}

// Do runs actions in the tab, failing the test with what on error.
func (b *Browser) Do(t testing.TB, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("e2e: browser: %s: %v (page %s)", what, err, b.Location(t))
	}
}

// Text returns the text of the element with the given id, waiting for it.
func (b *Browser) Text(t testing.TB, id string) string {
	t.Helper()
	return browserRun(t, b, "read #"+id, chromedp.Text(chromedp.ID(id)))
}

// Location returns the URL of the page shown.
func (b *Browser) Location(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		return "(unknown: " + err.Error() + ")"
	}
	return loc
}

// History returns the tab's navigation history.
func (b *Browser) History(t testing.TB) []*page.NavigationEntry {
	t.Helper()
	return browserRun(t, b, "read the history", chromedp.NavigationEntries()).Entries
}

func browserRun[T any](t testing.TB, b *Browser, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("e2e: browser: %s: %v (page %s)", what, err, b.Location(t))
	}
	return v
}

// Back presses the Back button and waits until the previous history entry
// shows. It waits for the history and the document, not for a load event:
// a page restored from the back/forward cache fires none.
func (b *Browser) Back(t testing.TB) {
	t.Helper()
	hist := browserRun(t, b, "read the history", chromedp.NavigationEntries())
	if hist.CurrentIndex <= 0 {
		t.Fatalf("e2e: browser: nothing to go back to")
	}
	want := hist.CurrentIndex - 1
	b.Do(t, "go back", chromedp.Func(func(ctx context.Context, tab *chromedp.Target) error {
		_, err := cdp.Call(ctx, tab, page.NavigateToHistoryEntry, page.NavigateToHistoryEntryParams{EntryID: hist.Entries[want].ID})
		return err
	}))
	waitFor(t, browserStepTimeout, "the previous page to show", func() bool {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		defer cancel()
		h, err := chromedp.Run(ctx, chromedp.NavigationEntries())
		if err != nil || h.CurrentIndex != want {
			return false
		}
		state, err := chromedp.Run(ctx, chromedp.Evaluate[string]("document.readyState"))
		return err == nil && state == "complete"
	})
}

// SignIn types the credentials into SERVER1's login form and presses the
// button, as a person does, and waits for the list of transfers.
func (b *Browser) SignIn(t testing.TB, c *Cluster, username, password string) {
	t.Helper()
	b.Do(t, "sign in at SERVER1",
		chromedp.Navigate(c.Server1.URL+"/login"),
		chromedp.WaitVisible(chromedp.ID("login")),
		chromedp.SendKeys(chromedp.CSS(`#login input[name="username"]`), username),
		chromedp.SendKeys(chromedp.CSS(`#login input[name="password"]`), password),
		chromedp.Click(chromedp.ID("login-submit")),
		chromedp.WaitVisible(chromedp.CSS("#task-list [id^=\"continue-\"]")),
	)
}

// HandOff presses "Continue on Payments" for taskID and waits until
// SERVER2's task page shows (through SERVER1's auto-submitting page and
// SERVER2's redirect).
func (b *Browser) HandOff(t testing.TB, taskID string) {
	t.Helper()
	b.Do(t, "continue "+taskID+" on SERVER2",
		chromedp.Click(chromedp.ID("continue-"+taskID)),
		chromedp.WaitVisible(chromedp.ID("task-page")),
	)
}

// HandoffPosts returns the browser's POSTs to SERVER2's /handoff.
func (b *Browser) HandoffPosts(c *Cluster) []browserRequest {
	var out []browserRequest
	for _, r := range b.Requests() {
		if r.Method == "POST" && r.URL == c.Server2.URL+"/handoff" {
			out = append(out, r)
		}
	}
	return out
}

// tokenOf returns the token field of a form-encoded POST body.
func tokenOf(t testing.TB, r browserRequest) string {
	t.Helper()
	v, err := url.ParseQuery(r.PostData)
	if err != nil || v.Get("token") == "" {
		t.Fatalf("e2e: the browser's POST to %s carried no token field (%d bytes of body)", r.URL, len(r.PostData))
	}
	return v.Get("token")
}

func (b *Browser) saveArtifacts(t testing.TB) {
	dir := artifactDir(t)
	if dir == "" {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	if png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot()); err != nil {
		t.Logf("e2e: no screenshot: %v", err)
	} else if err := os.WriteFile(filepath.Join(dir, b.artifactName("screenshot.png")), png, 0o644); err != nil {
		t.Logf("e2e: saving screenshot: %v", err)
	}
	if html, err := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html"))); err != nil {
		t.Logf("e2e: no page HTML: %v", err)
	} else if err := os.WriteFile(filepath.Join(dir, b.artifactName("page.html")), []byte(html), 0o644); err != nil {
		t.Logf("e2e: saving page HTML: %v", err)
	}
	var reqs strings.Builder
	for _, r := range b.Requests() {
		// URLs only: bodies hold tokens.
		fmt.Fprintf(&reqs, "%s %s -> %d\n", r.Method, r.URL, r.Status)
	}
	_ = os.WriteFile(filepath.Join(dir, b.artifactName("requests.txt")), []byte(reqs.String()), 0o644)
	t.Logf("e2e: browser screenshot, page HTML and request list saved in %s (page %s)", dir, b.Location(t))
}

func (b *Browser) artifactName(file string) string {
	if b.Name == "" {
		return file
	}
	return b.Name + "-" + file
}
