package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/shared/sharedtest"
	"golang.org/x/net/html"
)

// Revocation timing (docs/REVOCATION.md, "Bounds"). SERVER2 polls the
// revocation list every revocationInterval (its default) with ±10% jitter,
// so a revocation reaches it within 1.1 × the interval plus the fetch.
// revocationBound adds a second for the fetch on loopback, the revoking
// command's start-up and the 100 ms granularity of the wait.
const (
	revocationInterval = 5 * time.Second
	revocationBound    = revocationInterval*11/10 + time.Second
)

// Metric names SERVER2 exports for its revocation list.
const (
	metricRevocationEntries = "handoff_revocation_list_entries"
	metricRevocationFetches = "handoff_revocation_fetches_total"
)

// waitRevocationEntries waits until SERVER2 holds a revocation list with
// at least want entries, and returns how long that took from since. It
// fails the test only when it takes more than three times bound, so a slow
// run reports the time it measured.
func waitRevocationEntries(t testing.TB, c *Cluster, want float64, since time.Time) time.Duration {
	t.Helper()
	waitFor(t, 3*revocationBound, fmt.Sprintf("SERVER2 to hold a revocation list of %v entries", want), func() bool {
		return counter(t, c.Server2, metricRevocationEntries) >= want
	})
	return time.Since(since)
}

// checkRevocationTime fails the test when a revocation took longer than
// the documented bound to reach SERVER2.
func checkRevocationTime(t testing.TB, what string, took time.Duration) {
	t.Helper()
	logRevocationTime(t, what, took)
	if took > revocationBound {
		t.Errorf("%s took %v to reach SERVER2, want at most %v", what, took.Round(time.Millisecond), revocationBound)
	}
}

// logRevocationTime logs how long a revocation took to reach SERVER2, for
// tests that leave the failure to waitRevocationEntries's bounded wait.
func logRevocationTime(t testing.TB, what string, took time.Duration) {
	t.Helper()
	t.Logf("%s reached SERVER2 in %v (bound %v)", what, took.Round(time.Millisecond), revocationBound)
}

// tryHandoff presses "Continue on Payments" for taskID on home, takes the
// token from SERVER1's auto-submit page and posts it to SERVER2, which
// must answer 303. It returns the token, and an error instead of failing
// the test, for use from goroutines.
func (u *User) tryHandoff(home *Page, taskID string) (string, error) {
	link := home.ByID("continue-" + taskID)
	if link == nil || link.Data != "a" {
		return "", fmt.Errorf("no continue link for %s on the home page", taskID)
	}
	start, err := u.client.Get(attr(link, "href"))
	if err != nil {
		return "", fmt.Errorf("SERVER2 start: %w", err)
	}
	start.Body.Close()
	var binding *http.Cookie
	for _, ck := range start.Cookies() {
		if isBindingCookie(ck.Name) {
			binding = &http.Cookie{Name: ck.Name, Value: ck.Value}
		}
	}
	if start.StatusCode != http.StatusSeeOther || binding == nil {
		return "", fmt.Errorf("SERVER2 start answered %d with no binding cookie", start.StatusCode)
	}
	resp, err := u.client.Get(start.Header.Get("Location"))
	if err != nil {
		return "", fmt.Errorf("SERVER1: %w", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return "", fmt.Errorf("SERVER1: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("SERVER1 answered %d", resp.StatusCode)
	}
	doc, err := html.Parse(bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("SERVER1's page: %w", err)
	}
	handoff := sharedtest.Find(doc, func(n *html.Node) bool { return attr(n, "id") == "handoff" })
	token := formValues(handoff).Get("token")
	if handoff == nil || token == "" {
		return "", errors.New("SERVER1's page has no token")
	}
	u.c.NoteSecret(token)
	bindings.Store(token, binding)
	status, reason, err := tryPostToken(u.c.Server2, token)
	// The post went without the user's jar: delete the spent secret there,
	// as the browser that posted it does.
	u.client.Jar.SetCookies(start.Request.URL, []*http.Cookie{{Name: binding.Name, Path: "/", MaxAge: -1}})
	if err != nil {
		return token, fmt.Errorf("SERVER2: %w", err)
	}
	if status != http.StatusSeeOther {
		return token, fmt.Errorf("SERVER2 answered %d %s", status, reason)
	}
	return token, nil
}

// rotateKey runs `server1 keys rotate` and returns the new kid and when it
// starts signing, as the command reports them.
func rotateKey(t testing.TB, c *Cluster, publishFor time.Duration) (kid string, activates time.Time) {
	t.Helper()
	out := c.Server1.MustExec(t, "keys", "rotate", "--publish-for", publishFor.String())
	// "rotating to key KID (ALG): published now, signs from RFC3339"
	f := strings.Fields(out)
	if len(f) < 4 || f[0] != "rotating" {
		t.Fatalf("e2e: unexpected keys rotate output %q", out)
	}
	at, err := time.Parse(time.RFC3339, f[len(f)-1])
	if err != nil {
		t.Fatalf("e2e: keys rotate output %q: %v", out, err)
	}
	return f[3], at
}

// TestKeyRotationUnderLoad: handoffs through SERVER1's pages run at 20 per
// second for 30 seconds while `server1 keys rotate` is run twice. Every
// handoff succeeds, all three keys sign in turn, and SERVER2 fetches the
// JWKS on the schedule its max-age sets, not once per new key.
func TestKeyRotationUnderLoad(t *testing.T) {
	t.Parallel()
	const (
		rate       = 20
		duration   = 30 * time.Second
		maxAge     = 2 * time.Second
		publishFor = 3 * time.Second
	)
	c := StartCluster(t, ClusterConfig{
		// The stream is one user's: lift SERVER1's per-user handoff limits.
		Server1Env: map[string]string{
			"SERVER1_JWKS_MAX_AGE":        maxAge.String(),
			"SERVER1_HANDOFF_BURST":       "100",
			"SERVER1_HANDOFFS_PER_MINUTE": "6000",
		},
		// SERVER2 refreshes at the JWKS max-age, clamped to at least its
		// jwks-min-refresh (1m by default).
		Server2Env: map[string]string{"SERVER2_JWKS_MIN_REFRESH": "1s"},
	})
	u := NewUser(t, c)
	home := u.Home(t)
	firstKid := keyIDs(publishedKeys(t, c.Server1))[0]
	served := counter(t, c.Server1, metricJWKSServed)
	start := time.Now()

	type outcome struct {
		seq   int
		token string
		err   error
	}
	var (
		mu       sync.Mutex
		outcomes []outcome
		wg       sync.WaitGroup
	)
	go func() {
		tick := time.NewTicker(time.Second / rate)
		defer tick.Stop()
		for i := range int(duration.Seconds()) * rate {
			wg.Go(func() {
				token, err := u.tryHandoff(home, demoTask)
				mu.Lock()
				outcomes = append(outcomes, outcome{i, token, err})
				mu.Unlock()
			})
			<-tick.C
		}
	}()

	var rotated []string
	for _, after := range []time.Duration{3 * time.Second, 12 * time.Second} {
		waitFor(t, after, "the time of the next rotation", func() bool { return time.Since(start) >= after-pollInterval })
		kid, activates := rotateKey(t, c, publishFor)
		t.Logf("rotation at %v: key %s signs from %v", time.Since(start).Round(time.Millisecond), kid, activates.Sub(start).Round(time.Millisecond))
		rotated = append(rotated, kid)
		waitFor(t, publishFor+2*time.Second, "the new key to activate", func() bool { return time.Now().After(activates) })
	}
	waitFor(t, duration+30*time.Second, "the handoff stream to end", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(outcomes) == int(duration.Seconds())*rate
	})
	wg.Wait()
	elapsed := time.Since(start)
	servedDuring := counter(t, c.Server1, metricJWKSServed) - served

	pubs := publishedKeys(t, c.Server1)
	perKid := map[string]int{}
	lastKid := ""
	lastSeq := -1
	var failures []string
	for _, o := range outcomes {
		if o.err != nil {
			failures = append(failures, fmt.Sprintf("#%d: %v", o.seq, o.err))
			continue
		}
		kid := signingKeyID(t, c, pubs, o.token)
		perKid[kid]++
		if o.seq > lastSeq {
			lastSeq, lastKid = o.seq, kid
		}
	}
	t.Logf("%d handoffs in %v: %d failed; per signing key: first %d, second %d, third %d",
		len(outcomes), elapsed.Round(time.Millisecond), len(failures), perKid[firstKid], perKid[rotated[0]], perKid[rotated[1]])
	if len(failures) > 0 {
		t.Errorf("%d of %d handoffs failed during the rotations, want none; first: %v", len(failures), len(outcomes), failures[:min(5, len(failures))])
	}
	for _, kid := range []string{firstKid, rotated[0], rotated[1]} {
		if perKid[kid] == 0 {
			t.Errorf("key %s signed no handoff; per key: %v", kid, perKid)
		}
	}
	if lastKid != rotated[1] {
		t.Errorf("the last handoff was signed by %s, want the newest key %s", lastKid, rotated[1])
	}

	// SERVER2 refreshes every max-age ±10% jitter (plus the fetch), so
	// over the run it fetches between elapsed/(1.1·max-age) and
	// elapsed/(0.9·max-age) times, ±1 for where the run starts in a cycle.
	// Each new key may cost at most one more fetch, triggered by its
	// unknown kid, should SERVER2 not hold it yet when it starts signing;
	// with publish-for above the max-age it always does.
	low := math.Floor(elapsed.Seconds()/(1.1*maxAge.Seconds())) - 1
	high := math.Ceil(elapsed.Seconds()/(0.9*maxAge.Seconds())) + 1 + float64(len(rotated))
	m2 := c.Server2.Metrics(t)
	t.Logf("SERVER1 served its JWKS %v times in %v (expected about %.0f, allowed %v to %v); SERVER2 counts %v ok, %v errors",
		servedDuring, elapsed.Round(time.Millisecond), elapsed.Seconds()/maxAge.Seconds(), low, high,
		m2.Value(metricJWKSFetches, "result", "ok"), m2.Value(metricJWKSFetches, "result", "error"))
	if servedDuring < low || servedDuring > high {
		t.Errorf("SERVER1 served its JWKS %v times in %v, want between %v and %v", servedDuring, elapsed.Round(time.Millisecond), low, high)
	}
}

// TestRevokedKeyIsRefused: after `server1 keys revoke KID` of the signing
// key, a token that key signed before (not used yet) is refused by SERVER2
// within the revocation bound, long before its scheduled JWKS refresh
// (5 minutes); the replacement key signs the next handoff.
func TestRevokedKeyIsRefused(t *testing.T) {
	t.Parallel()
	c := StartCluster(t, ClusterConfig{})
	u := NewUser(t, c)
	u.HandOff(t, demoTask)
	pending := u.StartHandoff(t, u.Home(t), otherTask)
	kid := signingKeyID(t, c, publishedKeys(t, c.Server1), pending.Token)
	entries := counter(t, c.Server2, metricRevocationEntries)

	start := time.Now()
	out := c.Server1.MustExec(t, "keys", "revoke", kid)
	took := waitRevocationEntries(t, c, entries+1, start)

	if !strings.Contains(out, "replacement key") {
		t.Errorf("keys revoke of the current key made no replacement: %q", out)
	}
	// The list that names the kid is signed by the replacement key, whose
	// unknown kid makes SERVER2 refetch the JWKS at the same poll: the
	// revoked key is then gone from its cache too (unknown_key), unless
	// the refetch was held back by the cool-down (revoked).
	if p := u.Submit(t, pending); p.Status != http.StatusUnauthorized || (p.Reason() != "revoked" && p.Reason() != "unknown_key") {
		t.Errorf("a token signed by the revoked key: %s, want 401 revoked or unknown_key", p.describe())
	} else {
		t.Logf("a token signed by the revoked key: 401 %s", p.Reason())
	}
	checkRevocationTime(t, "the key revocation", took)
	for _, id := range keyIDs(publishedKeys(t, c.Server1)) {
		if id == kid {
			t.Errorf("SERVER1 still publishes the revoked key %s", kid)
		}
	}
	u.HandOff(t, demoTask)
}

// TestSignOutEverywhere: alice signs out everywhere through SERVER1's form
// (with its CSRF token). Within the revocation bound SERVER2 refuses her
// outstanding token as revoked and ends the session it opened for her
// (session_revoked); bob's token and session are unaffected.
func TestSignOutEverywhere(t *testing.T) {
	t.Parallel()
	c := StartCluster(t, ClusterConfig{})
	alice, bob := NewUser(t, c), NewUser(t, c)
	alice.HandOff(t, demoTask)
	aliceHome := alice.Home(t)
	alicePending := alice.StartHandoff(t, aliceHome, otherTask)
	bobHome := bob.SignIn(t, "bob", "bob-demo-pw")
	bob.HandOff(t, bobsTask)
	bobPending := bob.StartHandoff(t, bobHome, bobsTask)
	entries := counter(t, c.Server2, metricRevocationEntries)

	start := time.Now()
	out := alice.SubmitForm(t, aliceHome, "logout-everywhere", nil)
	if out.Status != http.StatusSeeOther || out.Location(t).Path != "/login" {
		t.Fatalf("sign out everywhere: %s, want 303 to /login", out.describe())
	}
	took := waitRevocationEntries(t, c, entries+1, start)

	if p := alice.TaskPage(t, demoTask); p.Status != http.StatusUnauthorized || p.Reason() != "session_revoked" {
		t.Errorf("alice's SERVER2 session after signing out everywhere: %s, want 401 session_revoked", p.describe())
	}
	if p := alice.TaskPage(t, demoTask); p.Status != http.StatusUnauthorized || p.Reason() != "no_session" {
		t.Errorf("alice's SERVER2 session once ended: %s, want 401 no_session", p.describe())
	}
	if p := alice.Submit(t, alicePending); p.Status != http.StatusUnauthorized || p.Reason() != "revoked" {
		t.Errorf("alice's outstanding token: %s, want 401 revoked", p.describe())
	}
	if p := alice.Get(t, c.Server1.URL+"/"); p.Status != http.StatusSeeOther {
		t.Errorf("alice's SERVER1 session after signing out everywhere: %s, want 303 to /login", p.describe())
	}
	checkRevocationTime(t, "sign out everywhere", took)

	if p := bob.TaskPage(t, bobsTask); p.Status != http.StatusOK {
		t.Errorf("bob's SERVER2 session: %s, want 200", p.describe())
	}
	resp := bob.Submit(t, bobPending)
	if resp.Status != http.StatusSeeOther {
		t.Fatalf("bob's outstanding token: %s, want 303", resp.describe())
	}
	checkTaskPage(t, bob.Follow(t, resp), "bob", bobsTask, map[string]string{"amount": "1200.00", "currency": "EUR", "payee": "Initech"})
}

// apiHandoff asks SERVER1's API for a token for taskID with the user's
// session and the CSRF token of home, and returns the token and its jti.
func (u *User) apiHandoff(t testing.TB, home *Page, taskID string) (token, jti string) {
	t.Helper()
	body := fmt.Sprintf(`{"audience":%q,"task_id":%q}`, u.c.Audience, taskID)
	p := u.apiPost(t, home, "/api/v1/handoffs", body)
	if p.Status != http.StatusCreated {
		t.Fatalf("e2e: SERVER1 API handoff: %s", p.describe())
	}
	var got struct {
		Token string `json:"token"`
		JTI   string `json:"jti"`
	}
	if err := json.Unmarshal(p.Body, &got); err != nil || got.Token == "" || got.JTI == "" {
		t.Fatalf("e2e: SERVER1 API handoff answer: %v", err)
	}
	u.c.NoteSecret(got.Token)
	return got.Token, got.JTI
}

// pendingHandoff starts a bound handoff of taskID from home without
// posting it, and returns its token and jti (read from the payload, not
// verified): a pending handoff that postToken can complete later as
// another tab of the same browser.
func (u *User) pendingHandoff(t testing.TB, home *Page, taskID string) (token, jti string) {
	t.Helper()
	h := u.StartHandoff(t, home, taskID)
	return h.Token, unverifiedJTI(t, h.Token)
}

// apiPost posts body to SERVER1's path with the session cookie and the
// CSRF token of home in the X-CSRF-Token header.
func (u *User) apiPost(t testing.TB, home *Page, path, body string) *Page {
	t.Helper()
	csrf := formValues(enclosingForm(home.ByID("logout"))).Get("_csrf")
	req, err := http.NewRequest(http.MethodPost, u.c.Server1.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CSRF-Token", csrf)
	return u.Do(t, req)
}

// TestRevokedTokenAndListType: tokens revoked by jti (through SERVER1's
// API by their owner, and with `server1 revoke-token`) are refused as
// revoked within the bound; SERVER1's revocation list itself, posted as a
// handoff token, is refused as bad_type.
func TestRevokedTokenAndListType(t *testing.T) {
	t.Parallel()
	c := StartCluster(t, ClusterConfig{})
	u := NewUser(t, c)
	home := u.Home(t)
	byAPI, byAPIJTI := u.pendingHandoff(t, home, demoTask)
	byCLI, byCLIJTI := u.pendingHandoff(t, home, demoTask)
	kept, _ := u.pendingHandoff(t, home, otherTask)
	entries := counter(t, c.Server2, metricRevocationEntries)

	start := time.Now()
	if p := u.apiPost(t, home, "/api/v1/handoffs/"+url.PathEscape(byAPIJTI)+"/revoke", ""); p.Status != http.StatusOK {
		t.Fatalf("revoking a handoff through SERVER1's API: %s", p.describe())
	}
	c.Server1.MustExec(t, "revoke-token", "--jti", byCLIJTI)
	took := waitRevocationEntries(t, c, entries+2, start)

	for name, token := range map[string]string{"revoked through the API": byAPI, "revoked with revoke-token": byCLI} {
		if p := postToken(t, c.Server2, token); p.Status != http.StatusUnauthorized || p.Reason() != "revoked" {
			t.Errorf("a token %s: %s, want 401 revoked", name, p.describe())
		}
	}
	checkRevocationTime(t, "the token revocations", took)
	if p := postToken(t, c.Server2, kept); p.Status != http.StatusSeeOther {
		t.Errorf("a token not revoked: %s, want 303", p.describe())
	}

	code, list := c.Server1.get(t, "/revocations")
	if code != http.StatusOK || strings.Count(string(list), ".") != 2 {
		t.Fatalf("SERVER1 /revocations: status %d, %d bytes that are not a compact JWS", code, len(list))
	}
	if p := postToken(t, c.Server2, string(list)); p.Status != http.StatusBadRequest || p.Reason() != "bad_type" {
		t.Errorf("the revocation list posted as a handoff token: %s, want 400 bad_type", p.describe())
	}
	if got := counter(t, c.Server2, metricRevocationFetches, "result", "error"); got != 0 {
		t.Errorf("SERVER2 counts %v failed revocation list polls, want 0", got)
	}
}
