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

// BenchmarkHandoff is one accepted browser handoff through SERVER2's
// handler, in process (no sockets): form POST, every check, the jti
// consumed in the memory store, a session opened, the request and audit
// lines written (to io.Discard, as JSON at info level), 303. The tokens
// are minted before the timer starts. raw_ed25519_verify is the floor in
// the same run: one Ed25519 verify over a token's signing input.
func BenchmarkHandoff(b *testing.B) {
	ta := newTestApp(b, func(_ *Config, o *Options) {
		o.Logger = shared.NewLogger(io.Discard, "server2", slog.LevelInfo, shared.LogJSON)
	})
	h := ta.app.Handler()
	cookie := bindingCookie(testBindingSecret).String()
	mint := func(n int) []string {
		toks := make([]string, n)
		for i := range toks {
			toks[i] = ta.issuer.Mint(b, demoRequest())
		}
		return toks
	}

	b.Run("raw_ed25519_verify", func(b *testing.B) {
		tok := mint(1)[0]
		msg := []byte(tok[:strings.LastIndexByte(tok, '.')])
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		sig := ed25519.Sign(priv, msg)
		b.ReportAllocs()
		for b.Loop() {
			if !ed25519.Verify(pub, msg, sig) {
				b.Fatal("own signature does not verify")
			}
		}
	})
	b.Run("memory_store", func(b *testing.B) {
		toks := mint(b.N)
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			req := httptest.NewRequest(http.MethodPost, "/handoff", strings.NewReader("token="+url.QueryEscape(toks[i])))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Cookie", cookie)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusSeeOther {
				b.Fatalf("handoff: %d %s", rec.Code, rec.Body)
			}
		}
	})
}
