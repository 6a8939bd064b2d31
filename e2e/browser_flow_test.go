package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// chromedpAttr reads attribute name of the element with the given id.
func chromedpAttr(id, name string) chromedp.Action[string] {
	return func(ctx context.Context, t *chromedp.Target) (string, error) {
		r, err := chromedp.AttributeValue(chromedp.ID(id), name)(ctx, t)
		return r.Value, err
	}
}

// clickAndWait clicks the element with id click and waits for the element
// with id wait.
func clickAndWait(click, wait string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(chromedp.Click(chromedp.ID(click)), chromedp.WaitVisible(chromedp.ID(wait)))
}

// handOffOnce starts a cluster and a browser, signs the demo user in and
// hands the demo task off. It returns the cluster, the browser and the
// one POST the browser sent to SERVER2's /handoff, with its token.
func handOffOnce(t *testing.T) (*Cluster, *Browser, browserRequest, string) {
	t.Helper()
	c := StartCluster(t, ClusterConfig{})
	b := NewBrowser(t)
	b.SignIn(t, c, demoUser, demoPassword)
	b.HandOff(t, demoTask)
	posts := b.HandoffPosts(c)
	if len(posts) != 1 {
		t.Fatalf("the browser POSTed to SERVER2's /handoff %d times, want 1", len(posts))
	}
	token := tokenOf(t, posts[0])
	c.NoteSecret(token)
	return c, b, posts[0], token
}

// TestTokenNeverInURL: the token travels only in the body of the form POST
// to SERVER2. It is in no URL the browser requested or kept in its history,
// and in no request header, Referer included.
func TestTokenNeverInURL(t *testing.T) {
	t.Parallel()
	chromium(t) // skip, or fail, before starting the servers
	c, b, post, token := handOffOnce(t)
	// The signature alone identifies the token too.
	secrets := map[string]string{"token": token, "token signature": token[strings.LastIndexByte(token, '.')+1:]}

	for _, r := range b.Requests() {
		for what, s := range secrets {
			if strings.Contains(r.URL, s) || strings.Contains(r.DocumentURL, s) {
				t.Errorf("the %s is in the URL of a %s request to %s", what, r.Method, urlHost(r.URL))
			}
			for name, v := range r.Headers {
				if strings.Contains(v, s) {
					t.Errorf("the %s is in the %s header of a request to %s", what, name, urlHost(r.URL))
				}
			}
		}
		if strings.HasPrefix(r.URL, c.Server2.URL) {
			if ref := r.Headers["referer"]; ref != "" {
				t.Logf("request to SERVER2 %s carries Referer %s", r.URL, ref)
			}
		}
	}
	for _, h := range b.WireHeaders() {
		for what, s := range secrets {
			for name, v := range h {
				if strings.Contains(v, s) {
					t.Errorf("the %s is in a %s header the browser sent", what, name)
				}
			}
		}
	}
	for _, e := range b.History(t) {
		for what, s := range secrets {
			if strings.Contains(e.URL, s) || strings.Contains(e.UserTypedURL, s) {
				t.Errorf("the %s is in the browser history entry for %s", what, urlHost(e.URL))
			}
		}
	}
	// The auto-submit page's Referrer-Policy is strict-origin (with
	// no-referrer Chromium would send Origin: null, which SERVER2 refuses):
	// the POST's Referer, if any, is SERVER1's origin alone, no path.
	if ref := post.Headers["referer"]; ref != "" && ref != c.Server1.URL+"/" {
		t.Errorf("the POST to SERVER2 carries Referer %q, want at most SERVER1's origin %s/", ref, c.Server1.URL)
	}
}

func urlHost(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		u = u[i+3:]
	}
	if i := strings.IndexAny(u, "/?"); i >= 0 {
		u = u[:i]
	}
	return u
}

// TestBrowserBackAndResubmit: after a successful handoff the user presses
// Back and submits the handoff again. The used token is refused as
// replayed (409), and the first session on SERVER2 still works.
func TestBrowserBackAndResubmit(t *testing.T) {
	t.Parallel()
	chromium(t) // skip, or fail, before starting the servers
	c, b, post, token := handOffOnce(t)

	b.Back(t)
	t.Logf("Back shows %s", b.Location(t))
	// Whatever Back showed, any handoff the browser sent again with the
	// same token must have been refused.
	for _, r := range b.HandoffPosts(c)[1:] {
		if tokenOf(t, r) == token && r.Status != http.StatusConflict {
			t.Errorf("going back re-sent the used token and SERVER2 answered %d, want 409", r.Status)
		}
	}

	// Resubmit: the auto-submit form as it was, with the same token, sent
	// from the page Back led to (the browser's own form submission, with
	// its cookies and headers).
	// Back leads to SERVER1's list, whose Referrer-Policy is no-referrer:
	// Chromium sends that page's POST with "Origin: null", which SERVER2
	// refuses (wrong_origin, 403) before reading the token. A resubmission
	// from an allowed origin would find the binding secret already spent
	// (unbound_handoff, 403); from a client holding the secret, the token
	// is refused as replayed (409, TestDoubleSubmit and the other HTTP-driver tests).
	resubmit(t, b, post.URL, token)
	last := b.HandoffPosts(c)
	if r := last[len(last)-1]; r.Status != http.StatusForbidden {
		t.Errorf("resubmitting the used token answered %d, want 403", r.Status)
	}
	reason := browserRun(t, b, "read the reason", chromedp.Evaluate[string](`(document.getElementById("reason") || {}).textContent || ""`))
	if reason = strings.TrimSpace(reason); reason != "wrong_origin" {
		t.Errorf("resubmitting shows reason %q at %s, want wrong_origin", reason, b.Location(t))
	}

	b.Do(t, "open the task page again",
		chromedp.Navigate(c.Server2.URL+"/tasks/"+demoTask),
		chromedp.WaitVisible(chromedp.ID("task-page")),
	)
	if got := b.Text(t, "subject"); got != demoUser {
		t.Errorf("after the replay the task page shows subject %q, want %q", got, demoUser)
	}
}

// resubmit makes the page in the tab submit a form like SERVER1's
// auto-submit form, with the given token, and waits for SERVER2's answer
// page.
// Page CSP is bypassed for the injected form: it stands for the auto-submit
// page the user could have kept (a second tab, a restored session).
func resubmit(t testing.TB, b *Browser, action, token string) {
	t.Helper()
	b.Do(t, "resubmit the handoff",
		chromedp.Func(func(ctx context.Context, tab *chromedp.Target) error {
			_, err := cdp.Call(ctx, tab, page.SetBypassCSP, page.SetBypassCSPParams{Enabled: true})
			return err
		}),
		chromedp.Reload(),
		chromedp.Evaluate[chromedp.Void](`(function(action, token) {
			const f = document.createElement('form');
			f.method = 'post';
			f.action = action;
			const i = document.createElement('input');
			i.type = 'hidden';
			i.name = 'token';
			i.value = token;
			f.appendChild(i);
			document.body.appendChild(f);
			f.submit();
		})(`+jsString(action)+`, `+jsString(token)+`)`),
		// Either answer: an error page, or the task page of a wrongly
		// accepted replay.
		chromedp.WaitVisible(chromedp.CSS("#reason, #task-page")),
	)
}

// jsString quotes s as a JavaScript string literal. The inputs are URLs
// and base64url tokens, but quote properly anyway.
func jsString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x2028 || r == 0x2029:
			b.WriteString(`\u`)
			const hex = "0123456789abcdef"
			b.WriteByte(hex[r>>12&0xf])
			b.WriteByte(hex[r>>8&0xf])
			b.WriteByte(hex[r>>4&0xf])
			b.WriteByte(hex[r&0xf])
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
