package sharedtest_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/handoffbroker/handoff/shared/sharedtest"
	"golang.org/x/net/html"
)

func TestBrowser(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/login":
			http.SetCookie(w, &http.Cookie{Name: "session", Value: r.PostFormValue("user"), Path: "/"})
			http.Redirect(w, r, "/", http.StatusSeeOther)
		case "/echo":
			fmt.Fprintf(w, "%s %s %s %s", r.Header.Get("Content-Type"), r.Header.Get("X-Test"), r.Header.Get("Accept"), r.URL.Path)
		}
	}))
	t.Cleanup(srv.Close)
	b := sharedtest.NewBrowser(t, srv.URL)
	b.Header = http.Header{"Accept": {"text/html"}, "X-Test": {"default"}}
	var checked int
	b.Check = func(testing.TB, sharedtest.Response) { checked++ }

	login := b.PostForm("/login", url.Values{"user": {"alice"}}, nil)
	echo := b.PostJSON("/echo", "{}", http.Header{"X-Test": {"yes"}})

	if login.StatusCode != http.StatusSeeOther || login.Header.Get("Location") != "/" {
		t.Errorf("login: %d %q, want the 303 itself", login.StatusCode, login.Header.Get("Location"))
	}
	if got := b.Cookie("session"); got != "alice" {
		t.Errorf("session cookie %q, want alice", got)
	}
	if echo.Body != "application/json yes text/html /echo" {
		t.Errorf("echo %q", echo.Body)
	}
	if checked != 2 {
		t.Errorf("Check ran %d times, want 2", checked)
	}
}

func TestBuffer(t *testing.T) {
	var b sharedtest.Buffer
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() { fmt.Fprintf(&b, `{"msg":"m","i":%d}`+"\n", i) })
	}
	wg.Wait()
	fmt.Fprintln(&b, `{"msg":"other"}`)
	if got := len(b.JSONLines(t, "m")); got != 4 {
		t.Errorf("%d lines with msg m, want 4", got)
	}
}

func TestHTML(t *testing.T) {
	doc, err := html.Parse(strings.NewReader(`<p id="a">script <b>bold</b></p><script nonce="n"></script>`))
	if err != nil {
		t.Fatal(err)
	}
	p := sharedtest.Find(doc, func(n *html.Node) bool { v, _ := sharedtest.Attr(n, "id"); return v == "a" })
	if got := sharedtest.Text(p); got != "script bold" {
		t.Errorf("Text = %q", got)
	}
	script := sharedtest.Find(doc, func(n *html.Node) bool { return n.Data == "script" })
	if nonce, ok := sharedtest.Attr(script, "nonce"); !ok || nonce != "n" {
		t.Errorf("found %v with nonce %q: want the script element, not the text", script, nonce)
	}
	if sharedtest.Text(nil) != "" || sharedtest.Find(nil, func(*html.Node) bool { return true }) != nil {
		t.Error("nil node")
	}
}
