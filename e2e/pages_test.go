package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// testPortalName is the portal name the pages test gives SERVER1, so that
// SERVER2's pages can only show it by reading SERVER1's metadata.
const testPortalName = "Acme Customer Portal"

// TestPagesInBrowser opens every page a user meets on the way through, in
// Chromium: SERVER1's task list, SERVER2's task, done, another task's,
// error, 404 and index pages, and SERVER1's 429. Each SERVER2 page names
// the portal (from SERVER1's handoff configuration) and links back to it,
// and each uses the one word for what the browser carries. A PNG of each
// page is kept in $E2E_ARTIFACTS (default a new temporary directory; the
// path is logged).
func TestPagesInBrowser(t *testing.T) {
	t.Parallel()
	shots := screenshotDir(t)
	c := StartCluster(t, ClusterConfig{Server1Env: map[string]string{
		"SERVER1_PORTAL_NAME": testPortalName,
		// Two handoffs, then one a minute: the third click meets the 429.
		"SERVER1_HANDOFF_BURST": "2", "SERVER1_HANDOFFS_PER_MINUTE": "1",
	}})
	b := NewBrowser(t)
	home := c.Issuer + "/"
	back := func(page string) {
		t.Helper()
		if got := b.Text(t, "portal-link"); got != "Back to "+testPortalName {
			t.Errorf("%s: portal link reads %q, want %q", page, got, "Back to "+testPortalName)
		}
		if got := browserRun(t, b, page+": read the portal link", chromedpAttr("portal-link", "href")); got != home {
			t.Errorf("%s: portal link goes to %q, want %q", page, got, home)
		}
	}
	want := func(page, id, text string) {
		t.Helper()
		if got := strings.TrimSpace(b.Text(t, id)); got != text {
			t.Errorf("%s: #%s reads %q, want %q", page, id, got, text)
		}
	}
	shot := func(name string) {
		t.Helper()
		png := browserRun(t, b, "screenshot "+name, chromedp.CaptureScreenshot())
		if err := os.WriteFile(filepath.Join(shots, name+".png"), png, 0o644); err != nil {
			t.Errorf("saving the %s screenshot: %v", name, err)
		}
	}

	b.SignIn(t, c, demoUser, demoPassword)
	if got := browserRun(t, b, "read the task list", chromedp.Text(chromedp.CSS("#task-"+demoTask+" .task-summary"))); got != "250.00 EUR to ACME Corp" {
		t.Errorf("SERVER1's task list words the transfer %q", got)
	}
	shot("server1-tasks")

	b.HandOff(t, demoTask)
	want("task", "task-purpose", "You are here to approve transfer 123")
	want("task", "task-summary", "250.00 EUR to ACME Corp")
	back("task")
	shot("server2-task")

	// The done page carries the outcome back to SERVER1 by itself, so
	// what the user sees next is SERVER1's list with the transfer
	// approved; the done page's own wording is TestDonePage_wording's.
	b.Do(t, "approve the transfer", clickAndWait("complete", "status-"+demoTask))
	want("approved", "status-"+demoTask, "Approved")
	shot("server1-approved")

	b.Do(t, "open another task's page", chromedp.Navigate(c.Server2.URL+"/tasks/"+otherTask), chromedp.WaitVisible(chromedp.ID("reason")))
	want("another task", "reason", "no_session")
	want("another task", "retry", "Start again on "+testPortalName)
	if got := browserRun(t, b, "read the title", chromedp.Text(chromedp.CSS("main h1"))); got != "This browser has no session for transfer 124." {
		t.Errorf("another task's page says %q", got)
	}
	back("another task")
	shot("server2-another-task")

	b.Do(t, "open the handoff endpoint by address", chromedp.Navigate(c.Server2.URL+"/handoff"), chromedp.WaitVisible(chromedp.ID("reason")))
	want("error", "reason", "token_in_url")
	want("error", "retry", "Start again on "+testPortalName)
	if got := browserRun(t, b, "read the title", chromedp.Text(chromedp.CSS("main h1"))); !strings.Contains(got, "one-time pass") {
		t.Errorf("the error page says %q, not a one-time pass", got)
	}
	back("error")
	shot("server2-error")

	b.Do(t, "open a page that does not exist", chromedp.Navigate(c.Server2.URL+"/no-such-page"), chromedp.WaitVisible(chromedp.ID("reason")))
	want("404", "reason", "not_found")
	back("404")
	shot("server2-404")

	b.Do(t, "open SERVER2's home", chromedp.Navigate(c.Server2.URL+"/"), chromedp.WaitVisible(chromedp.ID("index")))
	want("index", "portal-start", testPortalName)
	back("index")
	shot("server2-index")

	b.Do(t, "back to the task list", chromedp.Navigate(home), chromedp.WaitVisible(chromedp.ID("task-list")))
	b.HandOff(t, otherTask)
	b.Do(t, "a third handoff at once", chromedp.Navigate(home), chromedp.WaitVisible(chromedp.ID("task-list")),
		clickAndWait("continue-"+otherTask, "reason"))
	want("429", "reason", "too_many_handoffs")
	if got := browserRun(t, b, "read the title", chromedp.Text(chromedp.CSS("main h1"))); got != "You started too many tasks in a short time." {
		t.Errorf("the 429 page says %q", got)
	}
	if got := browserRun(t, b, "read the way back", chromedpAttr("retry", "href")); got != "/" {
		t.Errorf("the 429 page leads to %q, want the task list", got)
	}
	shot("server1-429")
}

// screenshotDir is where TestPagesInBrowser keeps its screenshots:
// $E2E_ARTIFACTS, or a new temporary directory that outlives the test.
func screenshotDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("E2E_ARTIFACTS")
	var err error
	if dir == "" {
		dir, err = os.MkdirTemp("", "e2e-pages-")
	} else {
		dir = filepath.Join(dir, unsafeName.ReplaceAllString(t.Name(), "_"))
		err = os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		t.Fatalf("e2e: screenshot directory: %v", err)
	}
	t.Logf("e2e: page screenshots in %s", dir)
	return dir
}
