package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/html"

	"github.com/handoffbroker/handoff/shared/sharedtest"
)

// Page is one HTTP response, its body read and, for HTML, parsed.
type Page struct {
	Status int
	Header http.Header
	Body   []byte
	// URL is the URL that was requested.
	URL *url.URL
	doc *html.Node
}

func readPage(t testing.TB, resp *http.Response) *Page {
	t.Helper()
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("e2e: reading %s %s: %v", resp.Request.Method, resp.Request.URL.Path, err)
	}
	p := &Page{Status: resp.StatusCode, Header: resp.Header, Body: body, URL: resp.Request.URL}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "text/html" {
		doc, err := html.Parse(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("e2e: parsing the page of %s: %v", resp.Request.URL.Path, err)
		}
		p.doc = doc
	}
	return p
}

// ByID returns the element with the given id, or nil.
func (p *Page) ByID(id string) *html.Node {
	return sharedtest.Find(p.doc, func(n *html.Node) bool { return attr(n, "id") == id })
}

// Text returns the trimmed text of the element with the given id, "" if
// there is none.
func (p *Page) Text(id string) string {
	return textOf(p.ByID(id))
}

// problem is the part of an RFC 9457 problem details body the suite reads.
type problem struct {
	Status int    `json:"status"`
	Code   string `json:"code"`
}

// Reason is the rejection reason the page shows: the #reason element of an
// HTML error page, or the code of a problem+json body.
func (p *Page) Reason() string {
	if p.doc != nil {
		return p.Text("reason")
	}
	var pr problem
	if json.Unmarshal(p.Body, &pr) == nil {
		return pr.Code
	}
	return ""
}

// Location returns the redirect target resolved against the request URL.
func (p *Page) Location(t testing.TB) *url.URL {
	t.Helper()
	loc, err := p.URL.Parse(p.Header.Get("Location"))
	if err != nil || p.Header.Get("Location") == "" {
		t.Fatalf("e2e: %s answered %d without a usable Location", p.URL.Path, p.Status)
	}
	return loc
}

// describe summarises a page for a failure message, without its body:
// bodies can hold tokens.
func (p *Page) describe() string {
	return p.URL.Host + p.URL.Path + " answered " + http.StatusText(p.Status) + " (" + itoa(p.Status) + ") reason=" + p.Reason()
}

func findAll(n *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && match(n) {
			out = append(out, n)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	if n != nil {
		walk(n)
	}
	return out
}

func attr(n *html.Node, name string) string {
	v, _ := sharedtest.Attr(n, name)
	return v
}

func textOf(n *html.Node) string { return strings.TrimSpace(sharedtest.Text(n)) }

// enclosingForm returns the form element holding n.
func enclosingForm(n *html.Node) *html.Node {
	for ; n != nil; n = n.Parent {
		if n.Type == html.ElementNode && n.Data == "form" {
			return n
		}
	}
	return nil
}

// formValues returns what submitting form sends: its named input fields
// with their values (there are no checkboxes or selects in these pages).
func formValues(form *html.Node) url.Values {
	v := url.Values{}
	for _, in := range findAll(form, func(n *html.Node) bool { return n.Data == "input" }) {
		if name := attr(in, "name"); name != "" {
			v.Add(name, attr(in, "value"))
		}
	}
	return v
}

// User is a person with a browser, as seen from the servers: one cookie jar
// across SERVER1 (localhost) and SERVER2 (127.0.0.1), redirects followed
// step by step so that each one can be checked.
type User struct {
	c      *Cluster
	client *http.Client
	// bind holds SERVER2's binding cookies (s2bind-*), name to value. They
	// are Secure, which net/http/cookiejar sends over plain http only to
	// loopback hosts (and older Go versions never), so the user carries
	// them itself for any other, as Chromium does for 127.0.0.1; the jar's
	// own copy is not sent twice.
	bindMu sync.Mutex
	bind   map[string]string
}

// NewUser returns a user with an empty cookie jar.
func NewUser(t testing.TB, c *Cluster) *User {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &User{c: c, bind: map[string]string{}, client: &http.Client{
		Jar:           jar,
		Timeout:       httpTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Do sends req and reads the response. Requests to SERVER2 carry the
// user's binding cookies; binding cookies SERVER2 sets or deletes are
// kept in step.
func (u *User) Do(t testing.TB, req *http.Request) *Page {
	t.Helper()
	toServer2 := u.c.Server2 != nil && sameHost(req.URL, u.c.Server2.URL)
	if toServer2 {
		inJar := map[string]bool{}
		for _, ck := range u.client.Jar.Cookies(req.URL) {
			inJar[ck.Name] = true
		}
		u.bindMu.Lock()
		for name, value := range u.bind {
			if !inJar[name] {
				req.AddCookie(&http.Cookie{Name: name, Value: value})
			}
		}
		u.bindMu.Unlock()
	}
	resp, err := u.client.Do(req)
	if err != nil {
		t.Fatalf("e2e: %s %s: %v", req.Method, req.URL.Host+req.URL.Path, err)
	}
	if toServer2 {
		u.keepBindings(resp.Cookies())
	}
	return readPage(t, resp)
}

// keepBindings records the binding cookies among cookies: set, or
// deleted when expired.
func (u *User) keepBindings(cookies []*http.Cookie) {
	u.bindMu.Lock()
	defer u.bindMu.Unlock()
	for _, ck := range cookies {
		if !isBindingCookie(ck.Name) {
			continue
		}
		if ck.MaxAge < 0 || ck.Value == "" {
			delete(u.bind, ck.Name)
			continue
		}
		u.bind[ck.Name] = ck.Value
	}
}

// ClearBindings drops the user's binding cookies, as clearing cookies
// between the start of a handoff and its post does.
func (u *User) ClearBindings() {
	u.bindMu.Lock()
	defer u.bindMu.Unlock()
	clear(u.bind)
}

// Bindings returns how many binding cookies the user holds.
func (u *User) Bindings() int {
	u.bindMu.Lock()
	defer u.bindMu.Unlock()
	return len(u.bind)
}

// sameHost reports whether u is on base's host, any port: cookies are
// scoped to hosts, not ports (RFC 6265 §8.5), so SERVER2's replicas on
// 127.0.0.1 share them as in a browser.
func sameHost(u *url.URL, base string) bool {
	b, err := url.Parse(base)
	return err == nil && u.Hostname() == b.Hostname()
}

func isBindingCookie(name string) bool {
	return strings.HasPrefix(name, "s2bind-") || strings.HasPrefix(name, "__Host-s2bind-")
}

// Get fetches rawURL.
func (u *User) Get(t testing.TB, rawURL string) *Page {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html")
	return u.Do(t, req)
}

// PostForm submits form to rawURL as a browser does.
func (u *User) PostForm(t testing.TB, rawURL string, form url.Values) *Page {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, rawURL, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "text/html")
	return u.Do(t, req)
}

// Follow requests the target of the redirect p, which must be a 303 See
// Other or a 302 Found.
func (u *User) Follow(t testing.TB, p *Page) *Page {
	t.Helper()
	if p.Status != http.StatusSeeOther && p.Status != http.StatusFound {
		t.Fatalf("e2e: want a redirect, %s", p.describe())
	}
	return u.Get(t, p.Location(t).String())
}

// SubmitForm submits the form holding the element with the given id (a
// button or the form itself), with its fields as the page set them,
// changed by set (a key set to an empty slice is left out).
func (u *User) SubmitForm(t testing.TB, p *Page, id string, set url.Values) *Page {
	t.Helper()
	el := p.ByID(id)
	form := enclosingForm(el)
	if form == nil {
		t.Fatalf("e2e: no form with #%s on %s (status %d)", id, p.URL.Path, p.Status)
	}
	values := formValues(form)
	for k, v := range set {
		if len(v) == 0 {
			values.Del(k)
			continue
		}
		values[k] = v
	}
	action, err := p.URL.Parse(attr(form, "action"))
	if err != nil {
		t.Fatalf("e2e: form #%s action: %v", id, err)
	}
	if m := strings.ToLower(attr(form, "method")); m != "post" {
		t.Fatalf("e2e: form #%s uses method %q, want post", id, m)
	}
	return u.PostForm(t, action.String(), values)
}

// SignIn signs in at SERVER1 through its login form and returns the page
// listing the user's transfers.
func (u *User) SignIn(t testing.TB, username, password string) *Page {
	t.Helper()
	login := u.Get(t, u.c.Server1.URL+"/login")
	if login.Status != http.StatusOK || login.ByID("login") == nil {
		t.Fatalf("e2e: no login form: %s", login.describe())
	}
	resp := u.SubmitForm(t, login, "login", url.Values{"username": {username}, "password": {password}})
	if resp.Status != http.StatusSeeOther {
		t.Fatalf("e2e: signing in as %s: %s", username, resp.describe())
	}
	home := u.Follow(t, resp)
	if home.Status != http.StatusOK {
		t.Fatalf("e2e: after signing in: %s", home.describe())
	}
	return home
}

// Handoff is SERVER1's auto-submit page: where the form posts, and the
// token it carries.
type Handoff struct {
	Action string
	Token  string
	Page   *Page
	// Start is SERVER2's answer to the start link (a 303 to SERVER1's
	// bound endpoint, setting the binding cookie); nil for an unbound
	// handoff (the POST /handoffs form).
	Start *Page
}

// StartHandoff presses "Continue on Payments" for taskID on home (the
// signed-in page of SERVER1) and returns the auto-submit form SERVER1
// answers with. With the bound flow, "Continue" is a link to SERVER2's
// /handoff/start, which sets the binding cookie and redirects to SERVER1's
// /handoffs/bound: both steps are followed and checked.
func (u *User) StartHandoff(t testing.TB, home *Page, taskID string) Handoff {
	t.Helper()
	p, start := u.PressContinue(t, home, taskID)
	if p.Status != http.StatusOK {
		t.Fatalf("e2e: continue on %s: %s", taskID, p.describe())
	}
	form := p.ByID("handoff")
	if form == nil {
		t.Fatalf("e2e: SERVER1's answer to continue has no #handoff form")
	}
	token := formValues(form).Get("token")
	if token == "" {
		t.Fatalf("e2e: the #handoff form carries no token")
	}
	u.c.NoteSecret(token)
	if start != nil {
		noteBinding(token, start)
	}
	return Handoff{Action: attr(form, "action"), Token: token, Page: p, Start: start}
}

// PressContinue presses "Continue on Payments" for taskID on home and
// returns SERVER1's answer (the auto-submit page, or a refusal), and
// SERVER2's answer to the start link (nil for the unbound form). With
// the bound flow, "Continue" is a link to SERVER2's /handoff/start, which
// sets the binding cookie and redirects to SERVER1's /handoffs/bound:
// both steps are followed, and the start checked.
func (u *User) PressContinue(t testing.TB, home *Page, taskID string) (answer, start *Page) {
	t.Helper()
	el := home.ByID("continue-" + taskID)
	if el == nil || el.Data != "a" {
		return u.SubmitForm(t, home, "continue-"+taskID, nil), nil
	}
	link, err := home.URL.Parse(attr(el, "href"))
	if err != nil {
		t.Fatalf("e2e: continue link: %v", err)
	}
	start = u.Get(t, link.String())
	if start.Status != http.StatusSeeOther {
		t.Fatalf("e2e: SERVER2's handoff start for %s: %s", taskID, start.describe())
	}
	if loc := start.Location(t); loc.Path != "/handoffs/bound" {
		t.Fatalf("e2e: SERVER2's handoff start redirects to %s, want SERVER1's /handoffs/bound", loc.Path)
	}
	return u.Follow(t, start), start
}

// noteBinding records the binding cookie SERVER2's start answer set as
// the binding of token, so postToken can post it as a second tab of the
// same browser would.
func noteBinding(token string, start *Page) {
	for _, ck := range (&http.Response{Header: start.Header}).Cookies() {
		if isBindingCookie(ck.Name) && ck.MaxAge >= 0 {
			bindings.Store(token, &http.Cookie{Name: ck.Name, Value: ck.Value})
		}
	}
}

// SubmitHandoffForm posts SERVER1's unbound handoff form (POST /handoffs)
// for taskID with the CSRF token of home (the signed-in page), its fields
// changed by set as SubmitForm does: for tests of that endpoint's checks,
// which stay in place for audiences without a start URL.
func (u *User) SubmitHandoffForm(t testing.TB, home *Page, taskID string, set url.Values) *Page {
	t.Helper()
	csrf := findAll(home.doc, func(n *html.Node) bool { return n.Data == "input" && attr(n, "name") == "_csrf" })
	if len(csrf) == 0 {
		t.Fatalf("e2e: no CSRF field on SERVER1's page")
	}
	values := url.Values{"_csrf": {attr(csrf[0], "value")}, "audience": {u.c.Audience}, "task_id": {taskID}}
	for k, v := range set {
		if len(v) == 0 {
			values.Del(k)
			continue
		}
		values[k] = v
	}
	return u.PostForm(t, u.c.Server1.URL+"/handoffs", values)
}

// Submit posts the token to SERVER2 as the auto-submit script does.
func (u *User) Submit(t testing.TB, h Handoff) *Page {
	t.Helper()
	return u.PostForm(t, h.Action, url.Values{"token": {h.Token}})
}

// Home returns SERVER1's page listing the user's transfers, signing in as
// alice first if the user is not signed in.
func (u *User) Home(t testing.TB) *Page {
	t.Helper()
	home := u.Get(t, u.c.Server1.URL+"/")
	if home.Status == http.StatusOK {
		return home
	}
	if home.Status != http.StatusSeeOther || home.Location(t).Path != "/login" {
		t.Fatalf("e2e: SERVER1 home: %s", home.describe())
	}
	return u.SignIn(t, demoUser, demoPassword)
}

// HandOff hands taskID off (signing in as alice if needed) and follows
// SERVER2's redirect to the task page, checking each step. It returns the
// token used and the task page.
func (u *User) HandOff(t testing.TB, taskID string) (Handoff, *Page) {
	t.Helper()
	h := u.StartHandoff(t, u.Home(t), taskID)
	resp := u.Submit(t, h)
	if resp.Status != http.StatusSeeOther {
		t.Fatalf("e2e: handoff to SERVER2: %s", resp.describe())
	}
	task := u.Follow(t, resp)
	if task.Status != http.StatusOK || task.ByID("task-page") == nil {
		t.Fatalf("e2e: task page: %s", task.describe())
	}
	return h, task
}

// TaskPage fetches SERVER2's page for taskID with the user's cookies.
func (u *User) TaskPage(t testing.TB, taskID string) *Page {
	t.Helper()
	return u.Get(t, u.c.Server2.URL+"/tasks/"+taskID)
}

// postToken posts token as the form field "token" to SERVER2's /handoff
// from a client without session cookies: what a second tab sends. It
// carries the token's binding cookie when the suite knows it (tokens from
// Cluster.Mint, bound to e2eBindingSecret, and from StartHandoff, bound to
// that user's start); a token the suite knows no binding for goes without,
// as a thief's would.
func postToken(t testing.TB, s *Server, token string) *Page {
	t.Helper()
	resp, err := postHandoff(plainClient, s, token)
	if err != nil {
		t.Fatalf("e2e: POST %s/handoff: %v", s.Label, err)
	}
	return readPage(t, resp)
}

// postHandoff posts token to s's /handoff with the binding cookie of the
// browser it was minted for, when the suite knows it (tokens from
// Cluster.Mint), and no other cookie.
func postHandoff(client *http.Client, s *Server, token string) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodPost, s.URL+"/handoff", strings.NewReader(url.Values{"token": {token}}.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if ck, ok := bindingOf(token); ok {
		req.AddCookie(ck)
	}
	return client.Do(req)
}

// tryPostToken is postToken for goroutines other than the test's: it
// returns an error instead of failing the test.
func tryPostToken(s *Server, token string) (status int, reason string, err error) {
	return tryPostTokenWith(plainClient, s, token)
}

// tryPostTokenWith is tryPostToken through client, for tests that post
// faster than plainClient's few idle connections allow.
func tryPostTokenWith(client *http.Client, s *Server, token string) (status int, reason string, err error) {
	resp, err := postHandoff(client, s, token)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	doc, err := html.Parse(resp.Body)
	if err != nil {
		return resp.StatusCode, "", err
	}
	return resp.StatusCode, textOf(sharedtest.Find(doc, func(n *html.Node) bool { return attr(n, "id") == "reason" })), nil
}
