package e2e

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// The bound handoff (issue 12): SERVER1's "Continue" leads to SERVER2's
// /handoff/start, which sets a one-time s2bind-* cookie and sends the
// browser to SERVER1's /handoffs/bound with the cookie's hash as nonce;
// the token SERVER1 mints there opens a SERVER2 session only in the browser
// holding the cookie. Three sites take part: SERVER1 on localhost, SERVER2
// on 127.0.0.1, and an attacker's page on 127.0.0.2.

const reasonUnbound, reasonWrongOrigin = "unbound_handoff", "wrong_origin"

// TestBoundHandoffHappyPath: one click on SERVER1 leads to SERVER2's task
// page through /handoff/start, over http (the demo hosts) and over https
// (a certificate made by the suite, the __Host- cookie), each in a fresh
// Chromium profile. The token carries the hash of the cookie the browser
// sent with it, the cookie is gone afterwards, and Back returns to
// SERVER1's list.
func TestBoundHandoffHappyPath(t *testing.T) {
	t.Parallel()
	chromium(t)
	for _, tt := range []struct {
		name       string
		tls        bool
		wantCookie string
	}{
		{name: "ok/http", wantCookie: "s2bind-"},
		{name: "ok/https", tls: true, wantCookie: "__Host-s2bind-"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := StartCluster(t, ClusterConfig{TLS: tt.tls})
			var b *Browser
			if tt.tls {
				b = NewBrowser(t, trustSuiteCert())
			} else {
				b = NewBrowser(t)
			}
			b.SignIn(t, c, demoUser, demoPassword)
			b.HandOff(t, demoTask)
			if got := b.Text(t, "subject"); got != demoUser {
				t.Errorf("the task page shows subject %q, want %q", got, demoUser)
			}

			starts := b.requestsTo("GET", c.Server2.URL+"/handoff/start")
			if len(starts) != 1 || starts[0].Status != http.StatusSeeOther {
				t.Errorf("the browser went through SERVER2's /handoff/start %d times (statuses %v), want once with 303", len(starts), statuses(starts))
			}
			posts := b.HandoffPosts(c)
			if len(posts) != 1 || posts[0].Status != http.StatusSeeOther {
				t.Fatalf("the browser POSTed to /handoff %d times (statuses %v), want once with 303", len(posts), statuses(posts))
			}
			token := tokenOf(t, posts[0])
			c.NoteSecret(token)
			if origin := posts[0].Headers["origin"]; origin != c.Issuer {
				t.Errorf("the POST to /handoff carries Origin %q, want SERVER1's %q", origin, c.Issuer)
			}

			name, value := b.sentBindingCookie(t, tt.wantCookie)
			if name == "" {
				t.Fatalf("the POST to /handoff carried no %s* cookie", tt.wantCookie)
			}
			if tt.wantCookie == "s2bind-" && strings.HasPrefix(name, "__Host-") {
				t.Errorf("over http the binding cookie is %s, want the s2bind- name", name)
			}
			if got, want := nonceOf(t, token), hashOf(t, value); got != want {
				t.Errorf("the token's nonce is not the hash of the binding cookie %s the browser sent", name)
			}
			if left := b.bindingCookies(t, c.Server2.URL); len(left) != 0 {
				t.Errorf("after the handoff the browser still holds binding cookies %v, want them deleted (single use)", left)
			}

			b.Back(t)
			if loc := b.Location(t); !strings.HasPrefix(loc, c.Server1.URL) {
				t.Errorf("Back after the handoff shows %s, want SERVER1's list", loc)
			}
		})
	}
}

// TestBoundHandoffLoginCSRF: bob mints a token for his own task in his
// own browser (the auto-submit is held and dropped, so it is never used);
// a page on a third site auto-posts it to SERVER2 in alice's browser,
// where alice already has a SERVER2 session. SERVER2 refuses it, alice's
// session is still alice's, and bob's token still works in bob's browser:
// the refusal consumed nothing.
func TestBoundHandoffLoginCSRF(t *testing.T) {
	t.Parallel()
	chromium(t)
	c := StartCluster(t, ClusterConfig{})

	bob := NewBrowser(t)
	bob.Name = "bob"
	bob.SignIn(t, c, "bob", "bob-demo-pw")
	bob.HoldHandoffPosts(t, c)
	bob.Do(t, "click continue for bob's task", chromedp.Click(chromedp.ID("continue-"+bobsTask)))
	held := bob.NextHeld(t)
	bobsToken := heldToken(t, held)
	c.NoteSecret(bobsToken)

	alice := NewBrowser(t)
	alice.Name = "alice"
	alice.SignIn(t, c, demoUser, demoPassword)
	alice.HandOff(t, demoTask)
	s2Session := alice.cookieValue(t, c.Server2.URL+"/tasks/"+demoTask, "s2_session")
	if s2Session == "" {
		t.Fatalf("after her handoff alice holds no s2_session for /tasks/%s", demoTask)
	}

	for _, tt := range []struct {
		name string
		page string
	}{
		{name: "fail/attacker_origin", page: autoPostPage(c.Server2.URL+"/handoff", bobsToken, false)},
		// A page that forbids referrers makes Chromium send Origin: null.
		{name: "fail/null_origin", page: autoPostPage(c.Server2.URL+"/handoff", bobsToken, true)},
	} {
		evil := startAttacker(t, tt.page)
		alice.Do(t, tt.name+": open the attacker's page", chromedp.Navigate(evil.URL), chromedp.WaitVisible(chromedp.CSS("#reason, #task-page")))
		posts := alice.HandoffPosts(c)
		last := posts[len(posts)-1]
		if last.Status != http.StatusForbidden {
			t.Errorf("%s: bob's token posted from the attacker's page answered %d, want 403", tt.name, last.Status)
		}
		if reason := strings.TrimSpace(alice.Text(t, "reason")); reason != reasonWrongOrigin && reason != reasonUnbound {
			t.Errorf("%s: the refusal shows reason %q, want %s or %s", tt.name, reason, reasonWrongOrigin, reasonUnbound)
		}
		alice.checkWayBack(t, c)
		if got := alice.cookieValue(t, c.Server2.URL+"/tasks/"+demoTask, "s2_session"); got != s2Session {
			t.Errorf("%s: the refused handoff changed alice's SERVER2 session cookie", tt.name)
		}
		alice.Do(t, tt.name+": open alice's task page again",
			chromedp.Navigate(c.Server2.URL+"/tasks/"+demoTask),
			chromedp.WaitVisible(chromedp.ID("task-page")),
		)
		if got := alice.Text(t, "subject"); got != demoUser {
			t.Errorf("%s: after the attack alice's SERVER2 page shows subject %q, want %q", tt.name, got, demoUser)
		}
	}
	if code, reason := c.Server2.postToken(t, bobsToken, ""); code != http.StatusForbidden || reason != reasonUnbound {
		t.Errorf("bob's token posted without his binding cookie answered %d %q, want 403 %s", code, reason, reasonUnbound)
	}

	bob.Release(t, held)
	bob.Do(t, "wait for bob's task page", chromedp.WaitVisible(chromedp.ID("task-page")))
	if got := bob.Text(t, "subject"); got != "bob" {
		t.Errorf("bob's own browser shows subject %q, want bob", got)
	}
	if got := counter(t, c.Server2, metricVerifications, "result", "rejected", "reason", reasonUnbound); got < 1 {
		t.Errorf("%s{reason=%q} is %v, want at least 1", metricVerifications, reasonUnbound, got)
	}
}

// TestBoundHandoffForcedMint: a page on a third site navigates alice's
// browser, signed in at SERVER1, to SERVER1's /handoffs/bound with a nonce
// whose secret the attacker holds. SERVER1 mints alice's own task and the
// page posts it to SERVER2, which refuses it (alice's browser holds no
// matching cookie), and the token goes nowhere but SERVER2's /handoff.
func TestBoundHandoffForcedMint(t *testing.T) {
	t.Parallel()
	chromium(t)
	c := StartCluster(t, ClusterConfig{})
	alice := NewBrowser(t)
	alice.SignIn(t, c, demoUser, demoPassword)

	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		t.Fatal(err)
	}
	nonce := hashOf(t, base64.RawURLEncoding.EncodeToString(secret))
	mint := c.Server1.URL + "/handoffs/bound?" + url.Values{"audience": {c.Audience}, "task_id": {demoTask}, "nonce": {nonce}}.Encode()
	evil := startAttacker(t, fmt.Sprintf(`<!doctype html><title>prize</title><script>location.href = %s</script>`, jsString(mint)))

	alice.Do(t, "open the attacker's page", chromedp.Navigate(evil.URL), chromedp.WaitVisible(chromedp.CSS("#reason, #task-page")))
	posts := alice.HandoffPosts(c)
	if len(posts) != 1 {
		t.Fatalf("the forced mint led to %d POSTs to SERVER2's /handoff, want 1", len(posts))
	}
	token := tokenOf(t, posts[0])
	c.NoteSecret(token)
	if nonceOf(t, token) != nonce {
		t.Errorf("SERVER1 minted a token without the attacker's nonce; the test did not force what it meant to")
	}
	if posts[0].Status != http.StatusForbidden {
		t.Errorf("the forced token answered %d at SERVER2, want 403", posts[0].Status)
	}
	if reason := strings.TrimSpace(alice.Text(t, "reason")); reason != reasonUnbound {
		t.Errorf("the refusal shows reason %q, want %s", reason, reasonUnbound)
	}
	alice.checkWayBack(t, c)

	sig := token[strings.LastIndexByte(token, '.')+1:]
	for _, r := range alice.Requests() {
		if r.ID == posts[0].ID && r.Method == "POST" {
			continue
		}
		if strings.Contains(r.URL, sig) || strings.Contains(r.PostData, sig) || strings.Contains(fmt.Sprint(r.Headers), sig) {
			t.Errorf("the forced token left alice's browser in a %s to %s", r.Method, urlHost(r.URL))
		}
	}
	for _, h := range alice.WireHeaders() {
		if strings.Contains(fmt.Sprint(h), sig) {
			t.Errorf("the forced token is in a header alice's browser sent")
		}
	}
	if evil.saw(sig) {
		t.Errorf("the attacker's server received the forced token")
	}
	if code, reason := c.Server2.postToken(t, token, ""); code != http.StatusForbidden || reason != reasonUnbound {
		t.Errorf("the forced token posted without a binding cookie answered %d %q, want 403 %s", code, reason, reasonUnbound)
	}
}

// TestBoundHandoffStolenToken: a token stolen on its way (the auto-submit
// held before it reaches SERVER2) is refused when a plain HTTP client
// posts it without the binding cookie, and still works in the browser
// that started the handoff.
func TestBoundHandoffStolenToken(t *testing.T) {
	t.Parallel()
	chromium(t)
	c := StartCluster(t, ClusterConfig{})
	b := NewBrowser(t)
	b.SignIn(t, c, demoUser, demoPassword)
	b.HoldHandoffPosts(t, c)
	b.Do(t, "click continue", chromedp.Click(chromedp.ID("continue-"+demoTask)))
	held := b.NextHeld(t)
	token := heldToken(t, held)
	c.NoteSecret(token)

	for _, tt := range []struct {
		name   string
		origin string
	}{
		{name: "fail/no_origin"},
		{name: "fail/issuer_origin", origin: c.Issuer},
	} {
		if code, reason := c.Server2.postToken(t, token, tt.origin); code != http.StatusForbidden || reason != reasonUnbound {
			t.Errorf("%s: the stolen token answered %d %q, want 403 %s", tt.name, code, reason, reasonUnbound)
		}
	}
	b.Release(t, held)
	b.Do(t, "wait for the task page", chromedp.WaitVisible(chromedp.ID("task-page")))
}

// TestBoundHandoffParallelTabs: two handoffs started in two tabs of one
// browser, both auto-submits held until both have started, then released:
// both open the task page.
func TestBoundHandoffParallelTabs(t *testing.T) {
	t.Parallel()
	chromium(t)
	c := StartCluster(t, ClusterConfig{})
	b := NewBrowser(t)
	b.SignIn(t, c, demoUser, demoPassword)
	tab := b.NewTab(t)
	tab.Do(t, "open SERVER1's list in the second tab",
		chromedp.Navigate(c.Server1.URL+"/"), chromedp.WaitVisible(chromedp.ID("continue-"+otherTask)))

	b.HoldHandoffPosts(t, c)
	tab.HoldHandoffPosts(t, c)
	b.Do(t, "click continue in the first tab", chromedp.Click(chromedp.ID("continue-"+demoTask)))
	tab.Do(t, "click continue in the second tab", chromedp.Click(chromedp.ID("continue-"+otherTask)))
	first, second := b.NextHeld(t), tab.NextHeld(t)
	c.NoteSecret(heldToken(t, first))
	c.NoteSecret(heldToken(t, second))
	if n := len(b.bindingCookies(t, c.Server2.URL)); n != 2 {
		t.Errorf("with two handoffs started the browser holds %d binding cookies, want 2", n)
	}

	b.Release(t, first)
	tab.Release(t, second)
	// WaitReady, not WaitVisible: a background tab does not render.
	b.Do(t, "first tab: the answer", chromedp.WaitReady(chromedp.CSS("#task-page, #reason")))
	tab.Do(t, "second tab: the answer", chromedp.WaitReady(chromedp.CSS("#task-page, #reason")))
	for _, tt := range []struct {
		name string
		tab  *Browser
		task string
	}{{"first tab", b, demoTask}, {"second tab", tab, otherTask}} {
		posts := tt.tab.HandoffPosts(c)
		if len(posts) != 1 || posts[0].Status != http.StatusSeeOther {
			t.Errorf("%s: the POST to /handoff answered %v, want one 303 (binding accepted)", tt.name, statuses(posts))
		}
		if loc := tt.tab.Location(t); !strings.HasSuffix(loc, "/tasks/"+tt.task) {
			t.Errorf("%s shows %s, want the page of %s", tt.name, loc, tt.task)
		}
		reason := browserRun(t, tt.tab, "read the reason", chromedp.Evaluate[string](`(document.getElementById("reason") || {}).textContent || ""`))
		if reason != "" {
			t.Errorf("%s: the task page of %s shows reason %q, want the task", tt.name, tt.task, strings.TrimSpace(reason))
		}
	}
}

// TestBoundHandoffCookieGone: the binding cookie expires (a 2s
// --binding-ttl) or the user clears cookies between the start and the
// post: SERVER2 shows the unbound_handoff page with a link back to
// SERVER1 to start again.
func TestBoundHandoffCookieGone(t *testing.T) {
	t.Parallel()
	chromium(t)
	for _, tt := range []struct {
		name  string
		env   map[string]string
		clear bool
	}{
		{name: "fail/expired", env: map[string]string{"SERVER2_BINDING_TTL": "2s"}},
		{name: "fail/cookies_cleared", clear: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := StartCluster(t, ClusterConfig{Server2Env: tt.env})
			b := NewBrowser(t)
			b.SignIn(t, c, demoUser, demoPassword)
			b.HoldHandoffPosts(t, c)
			b.Do(t, "click continue", chromedp.Click(chromedp.ID("continue-"+demoTask)))
			held := b.NextHeld(t)
			c.NoteSecret(heldToken(t, held))
			if n := len(b.bindingCookies(t, c.Server2.URL)); n != 1 {
				t.Fatalf("after the start the browser holds %d binding cookies, want 1", n)
			}
			if tt.clear {
				b.Do(t, "clear cookies", chromedp.Func(func(ctx context.Context, tab *chromedp.Target) error {
					_, err := cdp.Call(ctx, tab, network.ClearBrowserCookies, cdp.Empty{})
					return err
				}))
			} else {
				waitFor(t, 15*time.Second, "the binding cookie to expire", func() bool { return len(b.bindingCookies(t, c.Server2.URL)) == 0 })
			}
			b.Release(t, held)
			b.Do(t, "wait for the refusal", chromedp.WaitVisible(chromedp.ID("reason")))
			if reason := strings.TrimSpace(b.Text(t, "reason")); reason != reasonUnbound {
				t.Errorf("the page shows reason %q, want %s", reason, reasonUnbound)
			}
			posts := b.HandoffPosts(c)
			if s := posts[len(posts)-1].Status; s != http.StatusForbidden {
				t.Errorf("the post answered %d, want 403", s)
			}
			b.checkWayBack(t, c)
		})
	}
}

// requestsTo returns the requests with the method to the URL, query
// ignored.
func (b *Browser) requestsTo(method, u string) []browserRequest {
	var out []browserRequest
	for _, r := range b.Requests() {
		base, _, _ := strings.Cut(r.URL, "?")
		if r.Method == method && base == u {
			out = append(out, r)
		}
	}
	return out
}

func statuses(rs []browserRequest) []int64 {
	out := make([]int64, len(rs))
	for i, r := range rs {
		out[i] = r.Status
	}
	return out
}

// sentBindingCookie finds a cookie whose name starts with prefix in the
// raw headers the browser sent, and returns its name and value.
func (b *Browser) sentBindingCookie(t testing.TB, prefix string) (name, value string) {
	t.Helper()
	for _, h := range b.WireHeaders() {
		for _, part := range strings.Split(h["cookie"], ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
			if strings.HasPrefix(k, prefix) {
				return k, v
			}
		}
	}
	return "", ""
}

// cookies returns the browser's cookies for u.
func (b *Browser) cookies(t testing.TB, u string) []*network.Cookie {
	t.Helper()
	return browserRun(t, b, "read cookies", func(ctx context.Context, tab *chromedp.Target) ([]*network.Cookie, error) {
		r, err := cdp.Call(ctx, tab, network.GetCookies, network.GetCookiesParams{URLs: []string{u}})
		if err != nil {
			return nil, err
		}
		return r.Cookies, nil
	})
}

// bindingCookies names the s2bind cookies the browser holds for u.
func (b *Browser) bindingCookies(t testing.TB, u string) []string {
	t.Helper()
	var out []string
	for _, ck := range b.cookies(t, u) {
		if strings.HasPrefix(ck.Name, "s2bind-") || strings.HasPrefix(ck.Name, "__Host-s2bind-") {
			out = append(out, ck.Name)
		}
	}
	return out
}

// cookieValue is the value of the browser's cookie name for u, "" if none.
func (b *Browser) cookieValue(t testing.TB, u, name string) string {
	t.Helper()
	for _, ck := range b.cookies(t, u) {
		if ck.Name == name {
			return ck.Value
		}
	}
	return ""
}

// checkWayBack fails the test unless the page shown links to SERVER1, where
// the user starts again.
func (b *Browser) checkWayBack(t testing.TB, c *Cluster) {
	t.Helper()
	links := browserRun(t, b, "read the links", chromedp.Evaluate[[]string](`[...document.querySelectorAll("a[href]")].map(a => a.href)`))
	for _, l := range links {
		if strings.HasPrefix(l, c.Issuer+"/") || l == c.Issuer {
			return
		}
	}
	t.Errorf("the refusal page at %s links to %v, want a way back to SERVER1 (%s)", b.Location(t), links, c.Issuer)
}

// NewTab opens another tab in the same browser (same profile and cookies)
// that records its requests the same way.
func (b *Browser) NewTab(t testing.TB) *Browser {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	t.Cleanup(cancel)
	tab := &Browser{Name: "tab2", ctx: ctx}
	if err := chromedp.Listen(ctx, tab.record); err != nil {
		t.Fatalf("e2e: opening a tab: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			tab.saveArtifacts(t)
		}
	})
	return tab
}

// HoldHandoffPosts makes the tab pause its POSTs to SERVER2's /handoff
// before they are sent; NextHeld returns them, Release sends one on.
// Cookies are attached when a held request is released, so what happens
// to them meanwhile counts.
func (b *Browser) HoldHandoffPosts(t testing.TB, c *Cluster) {
	t.Helper()
	b.mu.Lock()
	b.held = make(chan *fetch.EventRequestPaused, 16)
	held := b.held
	b.mu.Unlock()
	target := c.Server2.URL + "/handoff"
	if err := chromedp.Listen(b.ctx, func(ev any) {
		if ev, ok := ev.(*fetch.EventRequestPaused); ok {
			select {
			case held <- ev:
			default:
			}
		}
	}); err != nil {
		t.Fatalf("e2e: listening for held requests: %v", err)
	}
	b.Do(t, "hold the handoff POSTs", chromedp.Func(func(ctx context.Context, tab *chromedp.Target) error {
		_, err := cdp.Call(ctx, tab, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{{URLPattern: target, RequestStage: fetch.RequestStageRequest}}})
		return err
	}))
}

// NextHeld waits for the next held POST to /handoff.
func (b *Browser) NextHeld(t testing.TB) *fetch.EventRequestPaused {
	t.Helper()
	b.mu.Lock()
	held := b.held
	b.mu.Unlock()
	timer := time.NewTimer(browserStepTimeout)
	defer timer.Stop()
	for {
		select {
		case ev := <-held:
			if ev.Request.Method == "POST" {
				return ev
			}
			b.Release(t, ev)
		case <-timer.C:
			t.Fatalf("e2e: no POST to SERVER2's /handoff held within %v (page %s)", browserStepTimeout, b.Location(t))
			return nil
		}
	}
}

// Release sends a held request on.
func (b *Browser) Release(t testing.TB, ev *fetch.EventRequestPaused) {
	t.Helper()
	b.Do(t, "release the held request", chromedp.Func(func(ctx context.Context, tab *chromedp.Target) error {
		_, err := cdp.Call(ctx, tab, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
		return err
	}))
}

// heldToken is the token field of a held POST.
func heldToken(t testing.TB, ev *fetch.EventRequestPaused) string {
	t.Helper()
	var body string
	for _, e := range ev.Request.PostDataEntries {
		body += string(e.Bytes)
	}
	return tokenOf(t, browserRequest{URL: ev.Request.URL, PostData: body})
}

// nonceOf reads the nonce claim of a token without verifying it (the test
// only compares it; SERVER2 verifies).
func nonceOf(t testing.TB, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("e2e: not a compact JWS")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("e2e: token payload: %v", err)
	}
	var claims struct {
		Nonce string `json:"nonce"`
	}
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatalf("e2e: token payload: %v", err)
	}
	return claims.Nonce
}

// hashOf is the nonce of a binding cookie value: base64url(SHA-256(secret)),
// where the value is base64url(secret).
func hashOf(t testing.TB, cookieValue string) string {
	t.Helper()
	secret, err := base64.RawURLEncoding.DecodeString(cookieValue)
	if err != nil {
		t.Fatalf("e2e: binding cookie value is not base64url: %v", err)
	}
	sum := sha256.Sum256(secret)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// postToken posts token to the server's /handoff as a plain HTTP client
// (no cookies), with the Origin header if origin is set, and returns the
// status and the reason shown.
func (s *Server) postToken(t testing.TB, token, origin string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", s.URL+"/handoff", strings.NewReader(url.Values{"token": {token}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := plainClient.Do(req)
	if err != nil {
		t.Fatalf("e2e: POST %s/handoff: %v", s.Label, err)
	}
	p := readPage(t, resp)
	return resp.StatusCode, p.Reason()
}

// attacker is a web server on 127.0.0.2, a third site next to SERVER1
// (localhost) and SERVER2 (127.0.0.1). It serves one page and records
// every request it receives.
type attacker struct {
	URL string

	mu   sync.Mutex
	seen []string
}

func startAttacker(t testing.TB, page string) *attacker {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatalf("e2e: the attacker's server needs 127.0.0.2: %v", err)
	}
	a := &attacker{URL: "http://" + ln.Addr().String() + "/"}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		a.mu.Lock()
		a.seen = append(a.seen, r.Method+" "+r.URL.String()+" "+fmt.Sprint(r.Header)+" "+r.Form.Encode())
		a.mu.Unlock()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(page))
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return a
}

// saw reports whether any request the attacker's server received contains s.
func (a *attacker) saw(s string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range a.seen {
		if strings.Contains(r, s) {
			return true
		}
	}
	return false
}

// autoPostPage is a page that posts token to action as soon as it loads;
// noReferrer adds a no-referrer policy to it.
func autoPostPage(action, token string, noReferrer bool) string {
	meta := ""
	if noReferrer {
		meta = `<meta name="referrer" content="no-referrer">`
	}
	return fmt.Sprintf(`<!doctype html><title>prize</title>%s
<form id="f" method="post" action="%s"><input type="hidden" name="token" value="%s"></form>
<script>document.getElementById("f").submit()</script>`, meta, html.EscapeString(action), html.EscapeString(token))
}
