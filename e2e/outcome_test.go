package e2e

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// resultPosts returns the browser's POSTs to SERVER1's /handoffs/result.
func (b *Browser) resultPosts(c *Cluster) []browserRequest {
	return b.requestsTo("POST", c.Server1.URL+"/handoffs/result")
}

// exists reports whether the page shown has an element with the id.
func (b *Browser) exists(t testing.TB, id string) bool {
	t.Helper()
	return browserRun(t, b, "look for #"+id, chromedp.Evaluate[bool]("document.getElementById("+jsString(id)+") !== null"))
}

// TestOutcomeRoundTrip: alice continues transfer 123 on SERVER2, approves
// it there, and her browser comes back to SERVER1, which shows the
// transfer approved and offers no Continue for it: SERVER2's signed result
// went back the way the handoff came, with no shared secret. The result
// token, replayed or forged over HTTP, then changes nothing.
func TestOutcomeRoundTrip(t *testing.T) {
	t.Parallel()
	chromium(t)
	c := StartCluster(t, ClusterConfig{})
	b := NewBrowser(t)
	roundTrip(t, c, b)

	result := resultOf(t, c, b)
	u := NewUser(t, c)
	home := u.SignIn(t, demoUser, demoPassword)
	t.Run("fail/replayed", func(t *testing.T) {
		got := u.PostForm(t, c.Server1.URL+"/handoffs/result", url.Values{"token": {result}, "task_id": {demoTask}, "resume": {"1"}})
		if got.Status != http.StatusConflict || got.Reason() != "replayed" {
			t.Errorf("a replayed result: %s, want 409 replayed", got.describe())
		}
	})
	t.Run("fail/forged_for_other_task", func(t *testing.T) {
		forged := retarget(t, result, demoTask, otherTask)
		got := u.PostForm(t, c.Server1.URL+"/handoffs/result", url.Values{"token": {forged}, "task_id": {otherTask}, "resume": {"1"}})
		if got.Status != http.StatusUnauthorized || got.Reason() != "bad_signature" {
			t.Errorf("a forged result: %s, want 401 bad_signature", got.describe())
		}
		after := u.Get(t, c.Server1.URL+"/")
		if after.ByID("status-"+otherTask) != nil || after.ByID("continue-"+otherTask) == nil {
			t.Errorf("after a forged result, %s is no longer pending", otherTask)
		}
	})
	t.Run("fail/handoff_token_as_result", func(t *testing.T) {
		h := u.StartHandoff(t, home, otherTask)
		c.NoteSecret(h.Token)
		got := u.PostForm(t, c.Server1.URL+"/handoffs/result", url.Values{"token": {h.Token}, "task_id": {otherTask}, "resume": {"1"}})
		if got.Status != http.StatusBadRequest || got.Reason() != "bad_type" {
			t.Errorf("a handoff token as result: %s, want 400 bad_type", got.describe())
		}
		if after := u.Get(t, c.Server1.URL+"/"); after.ByID("continue-"+otherTask) == nil {
			t.Errorf("after a handoff token posted as result, %s is no longer pending", otherTask)
		}
	})
}

// TestOutcomeRoundTripHTTPS is the round trip with both servers on https:
// SERVER1 fetches SERVER2's keys over TLS.
func TestOutcomeRoundTripHTTPS(t *testing.T) {
	t.Parallel()
	chromium(t)
	c := StartCluster(t, ClusterConfig{TLS: true})
	roundTrip(t, c, NewBrowser(t, trustSuiteCert()))
}

// roundTrip signs alice in, hands transfer 123 off, approves it on SERVER2
// and checks the list SERVER1 shows once the browser is back; it keeps a
// screenshot of that list.
func roundTrip(t *testing.T, c *Cluster, b *Browser) {
	t.Helper()
	b.SignIn(t, c, demoUser, demoPassword)
	b.HandOff(t, demoTask)

	b.Do(t, "approve on SERVER2 and come back", clickAndWait("complete", "status-"+demoTask))

	if loc := b.Location(t); !strings.HasPrefix(loc, c.Server1.URL+"/") {
		t.Errorf("after approving, the browser shows %s, want SERVER1's list", loc)
	}
	if got := b.Text(t, "status-"+demoTask); got != "Approved" {
		t.Errorf("SERVER1 shows %q for %s, want Approved", got, demoTask)
	}
	if b.exists(t, "continue-"+demoTask) {
		t.Errorf("SERVER1 still offers Continue for the approved %s", demoTask)
	}
	if !b.exists(t, "continue-"+otherTask) {
		t.Errorf("SERVER1 no longer offers Continue for %s, which nobody approved", otherTask)
	}
	b.saveArtifacts(t)

	posts := b.resultPosts(c)
	if len(posts) != 2 || posts[0].Status != http.StatusOK || posts[1].Status != http.StatusSeeOther {
		t.Fatalf("the browser POSTed to SERVER1's /handoffs/result %d times (statuses %v), want twice: 200 (cross-site, re-posted from SERVER1's origin) then 303", len(posts), statuses(posts))
	}
	if posts[0].Headers["origin"] == c.Issuer {
		t.Errorf("the first result POST came from SERVER1's own origin, want SERVER2's page")
	}
	result := resultOf(t, c, b)
	if tokenOf(t, posts[1]) != result {
		t.Fatal("the re-posted result is not the one SERVER2 sent")
	}
	for _, r := range b.Requests() {
		if strings.Contains(r.URL, signatureOf(result)) {
			t.Errorf("the result token is in the URL %s", r.URL)
		}
	}
}

// resultOf returns the result token the browser carried to SERVER1.
func resultOf(t testing.TB, c *Cluster, b *Browser) string {
	t.Helper()
	posts := b.resultPosts(c)
	if len(posts) == 0 {
		t.Fatal("the browser posted no result to SERVER1")
	}
	tok := tokenOf(t, posts[0])
	c.NoteSecret(tok)
	return tok
}

// TestOutcomeCancel: alice cancels on SERVER2 and comes back to SERVER1,
// which still lists the transfer as waiting, says it was cancelled, and
// hands it off again.
func TestOutcomeCancel(t *testing.T) {
	t.Parallel()
	chromium(t)
	c := StartCluster(t, ClusterConfig{})
	b := NewBrowser(t)
	b.SignIn(t, c, demoUser, demoPassword)
	b.HandOff(t, demoTask)

	b.Do(t, "cancel on SERVER2 and come back", clickAndWait("cancel", "note-"+demoTask))

	if loc := b.Location(t); !strings.HasPrefix(loc, c.Server1.URL+"/") {
		t.Errorf("after cancelling, the browser shows %s, want SERVER1's list", loc)
	}
	if b.exists(t, "status-"+demoTask) {
		t.Errorf("SERVER1 shows the cancelled %s as approved", demoTask)
	}
	if got := b.Text(t, "note-"+demoTask); !strings.Contains(got, "Cancelled") {
		t.Errorf("SERVER1's note for %s is %q, want it to say it was cancelled", demoTask, got)
	}
	b.saveArtifacts(t)
	for _, p := range b.resultPosts(c) {
		c.NoteSecret(tokenOf(t, p))
	}
	b.HandOff(t, demoTask)
}

// signatureOf is a token's last segment.
func signatureOf(tok string) string { return tok[strings.LastIndexByte(tok, '.')+1:] }

// retarget rewrites the task id in a token's payload, keeping its
// signature: a forgery SERVER1 must refuse.
func retarget(t testing.TB, tok, from, to string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	forged := strings.Replace(string(payload), `"`+from+`"`, `"`+to+`"`, 1)
	if forged == string(payload) {
		t.Fatalf("the result token has no task %s", from)
	}
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(forged)) + "." + parts[2]
}
