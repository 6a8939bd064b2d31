package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/net/html"

	"github.com/handoffbroker/handoff/broker/brokertest"
	"github.com/handoffbroker/handoff/shared"
	"github.com/handoffbroker/handoff/shared/sharedtest"
)

func TestSignIn(t *testing.T) {
	ts := newTestServer(t, testConfig(t))
	tests := []struct {
		name         string
		giveUser     string
		givePassword string
		wantStatus   int
		wantSignedIn bool
	}{
		{name: "ok/alice", giveUser: "alice", givePassword: "alice-demo-pw", wantStatus: http.StatusSeeOther, wantSignedIn: true},
		{name: "ok/bob", giveUser: "bob", givePassword: "bob-demo-pw", wantStatus: http.StatusSeeOther, wantSignedIn: true},
		{name: "fail/wrong_password", giveUser: "alice", givePassword: "bob-demo-pw", wantStatus: http.StatusUnauthorized},
		{name: "fail/empty_password", giveUser: "alice", givePassword: "", wantStatus: http.StatusUnauthorized},
		{name: "fail/unknown_user", giveUser: "mallory", givePassword: "alice-demo-pw", wantStatus: http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := ts.browser(t)
			csrf := b.csrfFromLogin()
			res := b.PostForm("/login", url.Values{csrfField: {csrf}, "username": {tt.giveUser}, "password": {tt.givePassword}}, nil)
			require.Equal(t, tt.wantStatus, res.StatusCode)
			if !tt.wantSignedIn {
				doc := parseHTML(t, res.Body)
				assert.Contains(t, sharedtest.Text(byID(t, doc, "login-error")), "Wrong username or password")
				assert.Empty(t, b.Cookie(sessionCookie))
				_, echoed := sharedtest.Attr(byID(t, doc, "password"), "value")
				assert.False(t, echoed, "the password is never echoed back")
				assert.Equal(t, http.StatusSeeOther, b.Get("/").StatusCode)
				return
			}
			assert.Equal(t, "/", res.Header.Get("Location"))
			var ck *http.Cookie
			for _, c := range res.Cookies() {
				if c.Name == sessionCookie {
					ck = c
				}
			}
			require.NotNil(t, ck, "session cookie set")
			assert.True(t, ck.HttpOnly)
			assert.Equal(t, http.SameSiteLaxMode, ck.SameSite)
			assert.Equal(t, "/", ck.Path)
			assert.False(t, ck.Secure, "http issuer")
			page := b.Get("/")
			require.Equal(t, http.StatusOK, page.StatusCode)
			assert.Equal(t, tt.giveUser, sharedtest.Text(byID(t, parseHTML(t, page.Body), "username")))
		})
	}
}

func TestSignInSecureCookieForHTTPSIssuer(t *testing.T) {
	cfg := testConfig(t)
	cfg.Issuer = "https://portal.example"
	ts := newTestServer(t, cfg)
	b := ts.browser(t)
	// The jar would not send Secure cookies over plain http, so the test
	// carries the CSRF cookie by hand.
	login := b.Get("/login")
	csrf := inputValue(t, parseHTML(t, login.Body), "login", csrfField)
	form := url.Values{csrfField: {csrf}, "username": {"alice"}, "password": {"alice-demo-pw"}}
	req, err := http.NewRequest(http.MethodPost, ts.srv.URL+"/login", strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: csrfCookie, Value: csrf})
	res := ts.browser(t).Do(req)
	require.Equal(t, http.StatusSeeOther, res.StatusCode)

	secure := map[string]bool{}
	for _, c := range append(login.Cookies(), res.Cookies()...) {
		secure[c.Name] = c.Secure
	}
	assert.Equal(t, map[string]bool{sessionCookie: true, csrfCookie: true}, secure)
}

func TestIndex(t *testing.T) {
	tests := []struct {
		name         string
		giveUser     string
		givePassword string
		giveUnbound  bool // the audience has no start URL
		wantStatus   int
		wantTasks    []string
		wantAbsent   []string
	}{
		{name: "ok/signed_out_redirects", wantStatus: http.StatusSeeOther},
		{name: "ok/alice", giveUser: "alice", givePassword: "alice-demo-pw", wantStatus: http.StatusOK,
			wantTasks: []string{"transfer-123", "transfer-124"}, wantAbsent: []string{"transfer-200"}},
		{name: "ok/bob", giveUser: "bob", givePassword: "bob-demo-pw", wantStatus: http.StatusOK,
			wantTasks: []string{"transfer-200"}, wantAbsent: []string{"transfer-123", "transfer-124"}},
		{name: "ok/alice_unbound_form", giveUser: "alice", givePassword: "alice-demo-pw", giveUnbound: true, wantStatus: http.StatusOK,
			wantTasks: []string{"transfer-123", "transfer-124"}, wantAbsent: []string{"transfer-200"}},
		{name: "ok/bob_unbound_form", giveUser: "bob", givePassword: "bob-demo-pw", giveUnbound: true, wantStatus: http.StatusOK,
			wantTasks: []string{"transfer-200"}, wantAbsent: []string{"transfer-123", "transfer-124"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			if tt.giveUnbound {
				cfg.HandoffStartURL = ""
			}
			ts := newTestServer(t, cfg)
			b := ts.browser(t)
			if tt.giveUser != "" {
				b.signIn(tt.giveUser, tt.givePassword)
			}
			res := b.Get("/")
			require.Equal(t, tt.wantStatus, res.StatusCode)
			if tt.wantStatus == http.StatusSeeOther {
				assert.Equal(t, "/login", res.Header.Get("Location"))
				return
			}
			doc := parseHTML(t, res.Body)
			if tt.giveUser == "alice" {
				summary := sharedtest.Find(byID(t, doc, "task-transfer-123"), func(n *html.Node) bool { v, _ := sharedtest.Attr(n, "class"); return v == "task-summary" })
				assert.Equal(t, "250.00 EUR to ACME Corp", sharedtest.Text(summary), "worded as SERVER2's task page words it")
			}
			for _, id := range tt.wantTasks {
				btn := byID(t, doc, "continue-"+id)
				assert.Equal(t, "Continue on Payments", sharedtest.Text(btn))
				if !tt.giveUnbound {
					assert.Equal(t, "a", btn.Data, "a plain link: one top-level navigation")
					href, _ := sharedtest.Attr(btn, "href")
					assert.Equal(t, "http://127.0.0.1:8082/handoff/start?task_id="+id, href)
					continue
				}
				form := btn.Parent
				assert.Equal(t, "form", form.Data)
				action, _ := sharedtest.Attr(form, "action")
				assert.Equal(t, "/handoffs", action)
				assert.Equal(t, id, inputValue(t, doc, "task-"+id, "task_id"))
				assert.Equal(t, payments, inputValue(t, doc, "task-"+id, "audience"))
				assert.Equal(t, b.Cookie(csrfCookie), inputValue(t, doc, "task-"+id, csrfField))
			}
			for _, id := range tt.wantAbsent {
				assert.NotContains(t, res.Body, id)
			}
		})
	}
}

func TestLogout(t *testing.T) {
	ts := newTestServer(t, testConfig(t))
	b := ts.browser(t)
	csrf := b.signIn("alice", "alice-demo-pw")
	stolen := b.Cookie(sessionCookie)
	require.NotEmpty(t, stolen)

	res := b.PostForm("/logout", url.Values{csrfField: {csrf}}, nil)
	require.Equal(t, http.StatusSeeOther, res.StatusCode)
	assert.Equal(t, "/login", res.Header.Get("Location"))
	assert.Empty(t, b.Cookie(sessionCookie), "cookie cleared")
	assert.Equal(t, http.StatusSeeOther, b.Get("/").StatusCode)

	// The old session id is dead on the server, not just forgotten by this
	// browser: a copied cookie no longer signs anyone in.
	replay := ts.browser(t)
	req, err := http.NewRequest(http.MethodGet, ts.srv.URL+"/", nil)
	require.NoError(t, err)
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: stolen})
	assert.Equal(t, http.StatusSeeOther, replay.Do(req).StatusCode)
}

func TestSignInIssuesFreshSession(t *testing.T) {
	ts := newTestServer(t, testConfig(t))
	b := ts.browser(t)
	csrf := b.signIn("alice", "alice-demo-pw")
	first := b.Cookie(sessionCookie)
	res := b.PostForm("/login", url.Values{csrfField: {csrf}, "username": {"alice"}, "password": {"alice-demo-pw"}}, nil)
	require.Equal(t, http.StatusSeeOther, res.StatusCode)
	second := b.Cookie(sessionCookie)
	require.NotEqual(t, first, second)

	req, err := http.NewRequest(http.MethodGet, ts.srv.URL+"/", nil)
	require.NoError(t, err)
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: first})
	assert.Equal(t, http.StatusSeeOther, ts.browser(t).Do(req).StatusCode, "the replaced session ends")
}

// TestSignInRenewsCSRF checks that sign-in replaces the CSRF token: one
// planted or seen before it (login CSRF, fixation) is refused afterwards,
// on every form and on the API, and the session is untouched.
func TestSignInRenewsCSRF(t *testing.T) {
	ts := newTestServer(t, testConfig(t))
	b := ts.browser(t)
	before := b.csrfFromLogin()

	res := b.PostForm("/login", url.Values{csrfField: {before}, "username": {"alice"}, "password": {"alice-demo-pw"}}, nil)

	require.Equal(t, http.StatusSeeOther, res.StatusCode, res.Body)
	var set []string
	for _, ck := range res.Cookies() {
		if ck.Name == csrfCookie {
			set = append(set, ck.Value)
		}
	}
	require.Len(t, set, 1, "one CSRF cookie is set at sign-in")
	after := inputValue(t, parseHTML(t, b.Get("/").Body), "logout-form", csrfField)
	require.NotEqual(t, before, after, "sign-in issues a fresh CSRF token")
	assert.Equal(t, after, b.Cookie(csrfCookie))

	tests := []struct {
		name     string
		giveSend func(csrf string) response
	}{
		{name: "fail/logout_form", giveSend: func(csrf string) response {
			return b.PostForm("/logout", url.Values{csrfField: {csrf}}, nil)
		}},
		{name: "fail/handoff_form", giveSend: func(csrf string) response {
			return b.PostForm("/handoffs", url.Values{csrfField: {csrf}, "audience": {payments}, "task_id": {"transfer-123"}}, nil)
		}},
		{name: "fail/api_header", giveSend: func(csrf string) response {
			return b.PostJSON("/api/v1/handoffs", `{"audience":"`+payments+`","task_id":"transfer-123"}`, http.Header{"X-CSRF-Token": {csrf}})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			minted := mintedTotal(t, ts.app)

			res := tt.giveSend(before)

			assert.Equal(t, http.StatusForbidden, res.StatusCode)
			assert.Equal(t, "csrf_invalid", errorCode(t, res))
			assert.Equal(t, minted, mintedTotal(t, ts.app), "nothing minted")
			assert.Equal(t, http.StatusOK, b.Get("/").StatusCode, "still signed in")
		})
	}
	assert.Equal(t, http.StatusSeeOther, b.PostForm("/logout", url.Values{csrfField: {after}}, nil).StatusCode, "the fresh token works")
}

// TestSessionBounds: a user's new sign-in replaces their oldest session,
// and a full store refuses a sign-in without touching anyone's session
// (with the bounds shrunk from 100,000 and 10 to 2 and 1).
func TestSessionBounds(t *testing.T) {
	ts := newTestServer(t, testConfig(t))
	small, err := shared.NewSessions[struct{}](shared.SessionsConfig{TTL: sessionTTL, MaxSessions: 2, MaxPerOwner: 1})
	require.NoError(t, err)
	ts.app.sessions = small

	first := ts.browser(t)
	first.signIn("alice", "alice-demo-pw")
	second := ts.browser(t)
	second.signIn("alice", "alice-demo-pw")
	assert.Equal(t, http.StatusSeeOther, first.Get("/").StatusCode, "alice's oldest session was replaced")
	assert.Equal(t, http.StatusOK, second.Get("/").StatusCode)
	bob := ts.browser(t)
	bob.signIn("bob", "bob-demo-pw")

	third := ts.browser(t)
	res := third.PostForm("/login", url.Values{csrfField: {third.csrfFromLogin()}, "username": {"alice"}, "password": {"alice-demo-pw"}}, nil)
	require.Equal(t, http.StatusServiceUnavailable, res.StatusCode, res.Body)
	assert.Equal(t, "too_many_sessions", sharedtest.Text(byID(t, parseHTML(t, res.Body), "reason")))
	assert.Equal(t, "5", res.Header.Get("Retry-After"))
	assert.Empty(t, third.Cookie(sessionCookie))
	assert.Equal(t, http.StatusOK, second.Get("/").StatusCode, "a refused sign-in ends no session")
	assert.Equal(t, http.StatusOK, bob.Get("/").StatusCode)
}

func TestDemoUserHashes(t *testing.T) {
	users, demo, err := loadUsers(defaultConfig())
	require.NoError(t, err)
	require.True(t, demo)
	for _, d := range demoUsers {
		t.Run("ok/"+d.username, func(t *testing.T) {
			t.Parallel()
			u, ok := users[d.username]
			require.True(t, ok)
			assert.NoError(t, bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(d.password)))
			cost, err := bcrypt.Cost([]byte(u.PasswordHash))
			require.NoError(t, err)
			assert.GreaterOrEqual(t, cost, bcrypt.DefaultCost)
		})
	}
}

func TestUsersFile(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("carol-pw-123"), bcrypt.MinCost)
	require.NoError(t, err)
	tests := []struct {
		name     string
		giveFile string
		wantErr  bool
	}{
		{name: "ok/one_user", giveFile: `[{"username":"carol","name":"Carol","password_hash":"` + string(hash) + `"}]`},
		{name: "fail/plaintext_password", giveFile: `[{"username":"carol","password_hash":"carol-pw-123"}]`, wantErr: true},
		{name: "fail/duplicate", giveFile: `[{"username":"carol","password_hash":"` + string(hash) + `"},{"username":"carol","password_hash":"` + string(hash) + `"}]`, wantErr: true},
		{name: "fail/unknown_member", giveFile: `[{"username":"carol","password":"x","password_hash":"` + string(hash) + `"}]`, wantErr: true},
		{name: "fail/username_too_long", giveFile: `[{"username":"` + strings.Repeat("c", maxUsernameLen+1) + `","password_hash":"` + string(hash) + `"}]`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.UsersFile = writeFile(t, "users.json", tt.giveFile)
			if tt.wantErr {
				_, err := newApp(cfg, options{Logger: slog.New(slog.DiscardHandler)})
				assert.Error(t, err)
				return
			}
			ts := newTestServer(t, cfg)
			require.False(t, ts.app.demoUsers)
			b := ts.browser(t)
			b.signIn("carol", "carol-pw-123")
			byID(t, parseHTML(t, b.Get("/").Body), "no-tasks")

			other := ts.browser(t)
			csrf := other.csrfFromLogin()
			res := other.PostForm("/login", url.Values{csrfField: {csrf}, "username": {"alice"}, "password": {"alice-demo-pw"}}, nil)
			assert.Equal(t, http.StatusUnauthorized, res.StatusCode, "demo users are gone")
		})
	}
}

func TestSignInAttemptsAreLimited(t *testing.T) {
	ts := newTestServer(t, testConfig(t))
	signIn := func(user, password string) response {
		b := ts.browser(t)
		return b.PostForm("/login", url.Values{csrfField: {b.csrfFromLogin()}, "username": {user}, "password": {password}}, nil)
	}
	for i := range loginBurst {
		require.Equal(t, http.StatusUnauthorized, signIn("alice", "guess").StatusCode, "attempt %d", i+1)
	}

	res := signIn("alice", "alice-demo-pw")
	assert.Equal(t, http.StatusTooManyRequests, res.StatusCode, "even the right password waits once the budget is spent")
	assert.Equal(t, "too_many_attempts", sharedtest.Text(byID(t, parseHTML(t, res.Body), "reason")))
	assert.Equal(t, "60", res.Header.Get("Retry-After"))
	assert.Equal(t, http.StatusSeeOther, signIn("bob", "bob-demo-pw").StatusCode, "other accounts are unaffected")
}

func TestLoginLimiterRefillsAndStaysBounded(t *testing.T) {
	l := newLoginLimiter(nil)
	now := time.Unix(1_800_000_000, 0)
	client := netip.MustParseAddr("192.0.2.1")
	for range loginBurst {
		require.NoError(t, l.allow(client, "alice", now))
	}
	assert.ErrorIs(t, l.allow(client, "alice", now), errUsernameLimited)
	assert.NoError(t, l.allow(client, "alice", now.Add(loginRefill)), "one attempt back per refill period")

	for i := range loginMaxTracks - 1 {
		l.allow(sprayClient(i), fmt.Sprintf("spray-%d", i), now)
	}
	assert.ErrorIs(t, l.allow(client, "one-more", now), errUsernameLimited, "full of live budgets: refuse rather than reset anyone's")
	assert.ErrorIs(t, l.allow(client, "alice", now.Add(loginRefill)), errUsernameLimited, "alice's spent budget survived the spray")
	later := now.Add(loginBurst * loginRefill)
	assert.NoError(t, l.allow(client, "one-more", later), "budgets that refilled are forgotten to make room")
}

// TestAppClock runs SERVER1 on a clock an hour ahead of real time: tokens,
// sessions and the handoff limit all read it.
func TestAppClock(t *testing.T) {
	clock := brokertest.NewClock(time.Now().Add(time.Hour).Truncate(time.Second))
	cfg := testConfig(t)
	cfg.HandoffBurst = 1
	ts := newTestServerWith(t, cfg, options{Now: clock.Now})
	b := ts.browser(t)
	b.signIn("alice", "alice-demo-pw")
	handoff := func() response {
		return b.PostJSON("/api/v1/handoffs", `{"audience":"`+payments+`","task_id":"transfer-123","subject":"alice"}`,
			http.Header{"X-Api-Key": {testAPIKey}})
	}

	res := handoff()

	require.Equal(t, http.StatusCreated, res.StatusCode, res.Body)
	var got struct {
		ExpiresAt string `json:"expires_at"`
	}
	require.NoError(t, json.Unmarshal([]byte(res.Body), &got))
	assert.Equal(t, clock.Now().Add(cfg.TokenTTL).UTC().Format(time.RFC3339), got.ExpiresAt, "the token expires by the app's clock")
	assert.Equal(t, http.StatusTooManyRequests, handoff().StatusCode, "the burst is spent")
	clock.Advance(time.Minute)
	assert.Equal(t, http.StatusCreated, handoff().StatusCode, "the handoff budget refills by the app's clock")

	require.Equal(t, http.StatusSeeOther, b.Get("/login").StatusCode, "still signed in")
	clock.Advance(sessionTTL)
	res = b.Get("/login")
	assert.Equal(t, http.StatusOK, res.StatusCode, "the session expired by the app's clock: the sign-in form is shown again")
}
