package e2e

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestHandoffHappyPath: a signed-in user hands a transfer off to SERVER2,
// lands on its task page as the same user, and approves the transfer.
func TestHandoffHappyPath(t *testing.T) {
	t.Parallel()
	c := StartCluster(t, ClusterConfig{})

	t.Run("http", func(t *testing.T) {
		minted := counter(t, c.Server1, metricMinted, "audience", c.Audience)
		accepted := counter(t, c.Server2, metricVerifications, "result", "accepted")

		u := NewUser(t, c)
		home := u.SignIn(t, demoUser, demoPassword)
		h := u.StartHandoff(t, home, demoTask)
		checkAutoSubmitPage(t, c, h)

		resp := u.Submit(t, h)
		if resp.Status != http.StatusSeeOther {
			t.Fatalf("handoff: %s", resp.describe())
		}
		if got, want := resp.Location(t).String(), c.Server2.URL+"/tasks/"+demoTask; got != want {
			t.Errorf("handoff redirects to %s, want %s", got, want)
		}
		task := u.Follow(t, resp)
		checkTaskPage(t, task, demoUser, demoTask, demoParams)

		done := u.SubmitForm(t, task, "complete", nil)
		if done.Status == http.StatusSeeOther {
			done = u.Follow(t, done)
		}
		if done.Status != http.StatusOK || done.ByID("task-done") == nil {
			t.Fatalf("completing the task: %s", done.describe())
		}
		again := u.SubmitForm(t, task, "complete", nil)
		if again.Status != http.StatusConflict || again.Reason() != "already_completed" {
			t.Errorf("completing twice: %s, want 409 already_completed", again.describe())
		}

		if got := counter(t, c.Server1, metricMinted, "audience", c.Audience) - minted; got != 1 {
			t.Errorf("SERVER1 minted %v tokens for %s, want 1", got, c.Audience)
		}
		if got := counter(t, c.Server2, metricVerifications, "result", "accepted") - accepted; got != 1 {
			t.Errorf("SERVER2 accepted %v tokens, want 1", got)
		}
	})

	// The http case completed demoTask: a task is done once, whichever
	// session completes it, so the browser approves the other transfer.
	t.Run("browser", func(t *testing.T) {
		b := NewBrowser(t)
		b.SignIn(t, c, demoUser, demoPassword)
		b.HandOff(t, otherTask)
		if got, want := b.Location(t), c.Server2.URL+"/tasks/"+otherTask; got != want {
			t.Errorf("the browser shows %s, want %s", got, want)
		}
		if got := b.Text(t, "subject"); got != demoUser {
			t.Errorf("SERVER2 shows subject %q, want %q", got, demoUser)
		}
		taskID := browserRun(t, b, "read data-task-id", chromedpAttr("task-page", "data-task-id"))
		if taskID != otherTask {
			t.Errorf("task page data-task-id = %q, want %q", taskID, otherTask)
		}
		if params := b.Text(t, "task-params"); !strings.Contains(params, otherParams["amount"]) || !strings.Contains(params, otherParams["payee"]) {
			t.Errorf("the task page does not show the transfer's amount and payee: %q", params)
		}
		b.Do(t, "approve the transfer and come back to SERVER1", clickAndWait("complete", "status-"+otherTask))
	})
}

// checkAutoSubmitPage checks SERVER1's auto-submit page: it posts to
// SERVER2's configured handoff URL and carries headers that keep the token
// out of caches, referrers and other origins' forms.
func checkAutoSubmitPage(t testing.TB, c *Cluster, h Handoff) {
	t.Helper()
	if want := c.Server2.URL + "/handoff"; h.Action != want {
		t.Errorf("the #handoff form posts to %q, want %q", h.Action, want)
	}
	hdr := h.Page.Header
	if got := hdr.Get("Cache-Control"); !strings.Contains(got, "no-store") {
		t.Errorf("auto-submit page Cache-Control = %q, want no-store", got)
	}
	if got := hdr.Get("Referrer-Policy"); got != "strict-origin" {
		t.Errorf("auto-submit page Referrer-Policy = %q, want strict-origin", got)
	}
	csp := hdr.Get("Content-Security-Policy")
	for _, want := range []string{"form-action " + c.Server2.URL, "script-src 'nonce-", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("auto-submit page CSP %q lacks %q", csp, want)
		}
	}
}

// checkTaskPage checks SERVER2's task page shows the handed-off task for
// the right user.
func checkTaskPage(t testing.TB, p *Page, subject, taskID string, params map[string]string) {
	t.Helper()
	section := p.ByID("task-page")
	if p.Status != http.StatusOK || section == nil {
		t.Fatalf("task page: %s", p.describe())
	}
	if got := attr(section, "data-task-id"); got != taskID {
		t.Errorf("task page data-task-id = %q, want %q", got, taskID)
	}
	if got := p.Text("subject"); got != subject {
		t.Errorf("task page subject = %q, want %q", got, subject)
	}
	shown := p.Text("task-params")
	for _, v := range params {
		if !strings.Contains(shown, v) {
			t.Errorf("task page parameters %q lack %q", shown, v)
		}
	}
}

// TestDoubleSubmit: two concurrent POSTs of one token (a double click, or a
// thief racing the user): exactly one is accepted, the other is refused as
// replayed. Several rounds, to give a racy replay check the chance to fail.
func TestDoubleSubmit(t *testing.T) {
	t.Parallel()
	c := StartCluster(t, ClusterConfig{})
	u := NewUser(t, c)
	home := u.SignIn(t, demoUser, demoPassword)

	const rounds = 10
	for range rounds {
		h := u.StartHandoff(t, home, demoTask)
		counts := racePosts(t, h.Token, 2, c.Server2)
		if counts[http.StatusSeeOther] != 1 || counts[http.StatusConflict] != 1 {
			t.Fatalf("two concurrent POSTs of one token answered %v, want one 303 and one 409", counts)
		}
	}
	if got := counter(t, c.Server2, metricVerifications, "result", "accepted"); got != rounds {
		t.Errorf("SERVER2 accepted %v tokens in %d rounds, want %d", got, rounds, rounds)
	}
}

// racePosts POSTs token to /handoff n times at once, spread round-robin
// over servers, and counts the answers by status. A transport error fails
// t; so does a 409 whose reason is not "replayed".
func racePosts(t *testing.T, token string, n int, servers ...*Server) map[int]int {
	t.Helper()
	type result struct {
		status int
		reason string
		err    error
	}
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		results = make([]result, n)
	)
	for i := range results {
		s := servers[i%len(servers)]
		wg.Go(func() {
			<-start
			st, reason, err := tryPostToken(s, token)
			results[i] = result{st, reason, err}
		})
	}
	close(start)
	wg.Wait()

	counts := map[int]int{}
	for _, r := range results {
		if r.err != nil {
			t.Fatalf("POST /handoff: %v", r.err)
		}
		counts[r.status]++
		if r.status == http.StatusConflict && r.reason != "replayed" {
			t.Errorf("a refused POST has reason %q, want replayed", r.reason)
		}
	}
	return counts
}

// TestRejectedTokens: tokens that are not valid for SERVER2 are refused
// with their reason and status, and nothing is accepted.
func TestRejectedTokens(t *testing.T) {
	t.Parallel()
	// A small leeway, so that an expired token is refused about 2s after it
	// was minted.
	c := StartCluster(t, ClusterConfig{Server2Env: map[string]string{"SERVER2_LEEWAY": "1s"}})

	tests := []struct {
		name       string
		giveToken  func(t *testing.T) string
		wantStatus int
		wantReason string
	}{
		{
			name:       "ok/fresh_token",
			giveToken:  func(t *testing.T) string { return c.Mint(t, mintRequest{}) },
			wantStatus: http.StatusSeeOther,
		},
		{
			name:       "fail/wrong_audience",
			giveToken:  func(t *testing.T) string { return c.Mint(t, mintRequest{Audience: "other"}) },
			wantStatus: http.StatusUnauthorized,
			wantReason: "wrong_audience",
		},
		{
			name: "fail/expired",
			giveToken: func(t *testing.T) string {
				token := c.Mint(t, mintRequest{TTL: time.Second})
				waitExpired(t, c, token)
				return token
			},
			wantStatus: http.StatusUnauthorized,
			wantReason: "expired",
		},
		{
			name:       "fail/bad_signature/signature_byte",
			giveToken:  func(t *testing.T) string { return tamperSignature(t, c.Mint(t, mintRequest{})) },
			wantStatus: http.StatusUnauthorized,
			wantReason: "bad_signature",
		},
		{
			name: "fail/bad_signature/payload_byte",
			// The attack: raise the amount of a transfer the user
			// approved, keeping the issuer's signature.
			giveToken:  func(t *testing.T) string { return tamperPayload(t, c.Mint(t, mintRequest{})) },
			wantStatus: http.StatusUnauthorized,
			wantReason: "bad_signature",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token := tt.giveToken(t)
			before := c.Server2.Metrics(t)

			p := postToken(t, c.Server2, token)

			if p.Status != tt.wantStatus || p.Reason() != tt.wantReason {
				t.Errorf("got %s, want %d %q", p.describe(), tt.wantStatus, tt.wantReason)
			}
			after := c.Server2.Metrics(t)
			if tt.wantReason == "" {
				return
			}
			if got := after.Value(metricVerifications, "result", "accepted") - before.Value(metricVerifications, "result", "accepted"); got != 0 {
				t.Errorf("SERVER2 counted %v accepted tokens, want 0", got)
			}
			if got := after.Value(metricVerifications, "result", "rejected", "reason", tt.wantReason) - before.Value(metricVerifications, "result", "rejected", "reason", tt.wantReason); got != 1 {
				t.Errorf("SERVER2 counted %v rejections for %s, want 1", got, tt.wantReason)
			}
		})
	}
}

// waitExpired polls `server2 verify` (which never consumes a token) until
// it stops accepting token. It must accept it at first, so that the change
// can only be the token's expiry.
func waitExpired(t testing.TB, c *Cluster, token string) {
	t.Helper()
	verify := func() int {
		out, code := c.Server2.ExecInput(t, token, "verify", "-")
		if strings.Contains(out, token) {
			t.Errorf("server2 verify printed the token")
		}
		return code
	}
	if code := verify(); code != 0 {
		t.Fatalf("server2 verify refused a fresh token (exit %d)", code)
	}
	waitFor(t, 15*time.Second, "the 1s token to expire", func() bool { return verify() == 1 })
}

// tamperSignature flips one bit of the token's signature.
func tamperSignature(t testing.TB, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) < 16 {
		t.Fatalf("e2e: the token's signature segment is not base64url")
	}
	sig[10] ^= 0x01
	parts[2] = base64.RawURLEncoding.EncodeToString(sig)
	return strings.Join(parts, ".")
}

// tamperPayload changes one byte of the token's payload: the amount 250.00
// becomes 950.00. The payload stays well-formed JSON, so only the signature
// can tell.
func tamperPayload(t testing.TB, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("e2e: the token's payload segment is not base64url")
	}
	i := bytes.Index(payload, []byte(`"250.00"`))
	if i < 0 {
		t.Fatalf("e2e: the token's payload does not hold the amount 250.00")
	}
	payload[i+1] = '9'
	parts[1] = base64.RawURLEncoding.EncodeToString(payload)
	return strings.Join(parts, ".")
}

// TestRefusedRequests: requests that must be refused before any token
// exists (SERVER1) or without looking at one (SERVER2), and SERVER1 mints
// nothing for them.
func TestRefusedRequests(t *testing.T) {
	t.Parallel()
	c := StartCluster(t, ClusterConfig{})
	u := NewUser(t, c)
	home := u.SignIn(t, demoUser, demoPassword)

	tests := []struct {
		name string
		// give sends the request and returns the answer.
		give       func(t *testing.T) *Page
		wantStatus int
		wantReason string
	}{
		{
			// A token in a link ends up in history, logs and Referer
			// headers; SERVER2 refuses to look at it.
			name: "fail/token_in_url",
			give: func(t *testing.T) *Page {
				return u.Get(t, c.Server2.URL+"/handoff?token="+url.QueryEscape(c.Mint(t, mintRequest{})))
			},
			wantStatus: http.StatusBadRequest,
			wantReason: "token_in_url",
		},
		{
			// Cross-site request forgery: another site's form makes the
			// signed-in user's browser ask for a token.
			name:       "fail/csrf_missing",
			give:       func(t *testing.T) *Page { return u.SubmitHandoffForm(t, home, demoTask, url.Values{"_csrf": nil}) },
			wantStatus: http.StatusForbidden,
			wantReason: "csrf_invalid",
		},
		{
			name: "fail/csrf_wrong",
			give: func(t *testing.T) *Page {
				return u.SubmitHandoffForm(t, home, demoTask, url.Values{"_csrf": {"not-the-token"}})
			},
			wantStatus: http.StatusForbidden,
			wantReason: "csrf_invalid",
		},
		{
			name: "fail/unknown_task",
			give: func(t *testing.T) *Page {
				return u.SubmitHandoffForm(t, home, demoTask, url.Values{"task_id": {"transfer-999"}})
			},
			wantStatus: http.StatusBadRequest,
			wantReason: "unknown_task",
		},
		{
			// Insecure direct object reference: alice asks for bob's
			// transfer.
			name: "fail/other_users_task",
			give: func(t *testing.T) *Page {
				return u.SubmitHandoffForm(t, home, demoTask, url.Values{"task_id": {bobsTask}})
			},
			wantStatus: http.StatusBadRequest,
			wantReason: "unknown_task",
		},
		{
			name: "fail/unknown_audience",
			give: func(t *testing.T) *Page {
				return u.SubmitHandoffForm(t, home, demoTask, url.Values{"audience": {"http://attacker.example"}})
			},
			wantStatus: http.StatusBadRequest,
			wantReason: "unknown_audience",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			minted := counter(t, c.Server1, metricMinted)
			verified := counter(t, c.Server2, metricVerifications)

			p := tt.give(t)

			if p.Status != tt.wantStatus || p.Reason() != tt.wantReason {
				t.Errorf("got %s, want %d %s", p.describe(), tt.wantStatus, tt.wantReason)
			}
			if p.ByID("handoff") != nil {
				t.Errorf("the refusal page holds a #handoff form")
			}
			if got := counter(t, c.Server1, metricMinted) - minted; got != 0 {
				t.Errorf("SERVER1 minted %v tokens, want 0", got)
			}
			if got := counter(t, c.Server2, metricVerifications) - verified; got != 0 {
				t.Errorf("SERVER2 verified %v tokens, want 0", got)
			}
		})
	}
}
