package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/handoffbroker/handoff/shared"
)

// BenchmarkHandoffPage is one signed-in POST /handoffs through SERVER1's
// handler, in process (no sockets): session and CSRF checks, the handoff
// limits, a token minted, the request and audit lines written (to
// io.Discard, as JSON at info level) and the auto-submit page rendered.
// raw_ed25519_sign is the floor in the same run: one Ed25519 signature
// over a message as long as a token's signing input.
func BenchmarkHandoffPage(b *testing.B) {
	cfg := testConfig(b)
	// Room for every page of a run within the live-token bound.
	cfg.HandoffBurst, cfg.HandoffsPerMinute = 90_000, 1
	ts := newTestServer(b, cfg)
	br := ts.browser(b)
	csrf := br.signIn("alice", "alice-demo-pw")
	ts.app.log = shared.NewLogger(io.Discard, "server1", slog.LevelInfo, shared.LogJSON)
	ts.app.echo.Logger.SetOutput(io.Discard)
	body := url.Values{csrfField: {csrf}, "audience": {payments}, "task_id": {"transfer-123"}}.Encode()
	cookie := "s1_session=" + br.Cookie(sessionCookie) + "; " + csrfCookie + "=" + br.Cookie(csrfCookie)
	page := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/handoffs", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Cookie", cookie)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		rec := httptest.NewRecorder()
		ts.app.ServeHTTP(rec, req)
		return rec
	}
	tok := inputValue(b, parseHTML(b, page().Body.String()), "handoff", "token")

	b.Run("raw_ed25519_sign", func(b *testing.B) {
		msg := []byte(tok[:strings.LastIndexByte(tok, '.')])
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			ed25519.Sign(priv, msg)
		}
	})
	b.Run("page", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if rec := page(); rec.Code != http.StatusOK {
				b.Fatalf("handoff page: %d %s", rec.Code, rec.Body)
			}
		}
	})
}
