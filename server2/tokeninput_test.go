package main

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCleanToken(t *testing.T) {
	const tok = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhbGljZSJ9.c2ln"
	tests := []struct {
		name         string
		give         string
		wantToken    string
		wantStripped []string
		wantHint     string // a substring of one hint; "" wants none
	}{
		{name: "ok/plain", give: tok, wantToken: tok},
		{name: "ok/line_break_goes_silently", give: tok + "\r\n", wantToken: tok},
		{name: "ok/surrounding_whitespace", give: "  \t" + tok + " \n\n", wantToken: tok, wantStripped: []string{"surrounding whitespace"}},
		{name: "ok/double_quotes", give: `"` + tok + `"`, wantToken: tok, wantStripped: []string{"surrounding quotes"}},
		{name: "ok/bearer", give: "Bearer " + tok, wantToken: tok, wantStripped: []string{`a "Bearer " prefix`}},
		{name: "ok/lowercase_bearer", give: "bearer " + tok, wantToken: tok, wantStripped: []string{`a "Bearer " prefix`}},
		{name: "ok/authorization_header", give: "Authorization: Bearer " + tok, wantToken: tok,
			wantStripped: []string{`an "Authorization:" header name`, `a "Bearer " prefix`}},
		{name: "ok/quoted_bearer", give: `'Bearer ` + tok + `'`, wantToken: tok, wantStripped: []string{"surrounding quotes", `a "Bearer " prefix`}},
		{name: "hint/whitespace_inside", give: tok[:20] + "\n" + tok[20:], wantToken: tok[:20] + "\n" + tok[20:], wantHint: "whitespace inside"},
		{name: "hint/url_encoded", give: strings.ReplaceAll(tok, ".", "%2E"), wantToken: strings.ReplaceAll(tok, ".", "%2E"), wantHint: "URL-encoded"},
		{name: "hint/form_body", give: "token=" + tok + "&state=x", wantToken: "token=" + tok + "&state=x", wantHint: "whole form body"},
		{name: "hint/cut_short", give: tok[:30], wantToken: tok[:30], wantHint: "three parts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := cleanToken(tt.give)

			assert.Equal(t, tt.wantToken, got.Token)
			assert.Equal(t, tt.wantStripped, got.Stripped)
			if tt.wantHint == "" {
				assert.Empty(t, got.Hints)
				return
			}
			assert.Contains(t, strings.Join(got.Hints, "\n"), tt.wantHint)
		})
	}
}

func TestRelativeTime(t *testing.T) {
	now := time.Date(2026, 12, 2, 1, 0, 0, 0, time.UTC)
	leeway := 30 * time.Second
	tests := []struct {
		name      string
		giveClaim string
		giveAt    time.Duration // from now
		want      string
	}{
		{name: "exp/expired", giveClaim: "exp", giveAt: -(2*time.Minute + 13*time.Second), want: "expired 2m13s ago; leeway 30s"},
		{name: "exp/within_leeway", giveClaim: "exp", giveAt: -10 * time.Second, want: "expired 10s ago, within the leeway of 30s"},
		{name: "exp/live", giveClaim: "exp", giveAt: 45 * time.Second, want: "expires in 45s"},
		{name: "nbf/future", giveClaim: "nbf", giveAt: 2 * time.Minute, want: "not valid until in 2m0s; leeway 30s"},
		{name: "nbf/past", giveClaim: "nbf", giveAt: -15 * time.Second, want: "valid since 15s ago"},
		{name: "iat/future", giveClaim: "iat", giveAt: time.Hour, want: "issued in 1h0m0s, in the future; leeway 30s"},
		{name: "iat/past", giveClaim: "iat", giveAt: -time.Second, want: "issued 1s ago"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, relativeTime(tt.giveClaim, now.Add(tt.giveAt), now, leeway))
		})
	}
}

// TestDisplay: decoded values reach the terminal escaped, so a hostile
// token cannot send control sequences (terminal injection).
func TestDisplay(t *testing.T) {
	assert.Equal(t, "alice", display("alice"))
	assert.Equal(t, `"\x1b]0;owned\a"`, display("\x1b]0;owned\a"))
	assert.Equal(t, `{"payee":"ACME & Co"}`, display(map[string]any{"payee": "ACME & Co"}))
	assert.NotContains(t, display(map[string]any{"x": "\u009b31m"}), "\u009b")
}

// hostileNamesToken is an unsigned token whose header member and claim
// names, not only values, hold terminal control sequences: OSC, CSI (C0
// and C1) and a bidirectional override.
func hostileNamesToken() string {
	seg := func(v string) string { return base64.RawURLEncoding.EncodeToString([]byte(v)) }
	return seg(`{"alg":"EdDSA","typ":"handoff+jwt","kid":"k","x\u001b]0;pwn\u0007":1}`) + "." +
		seg(`{"sub":"alice","\u001b[2Jevil":"\u009b31m","\u202eflip":1,"del\u007f":true}`) + "." + seg("sig")
}

// assertNoControls fails when an output holds a character a terminal
// could take as the start of a control sequence, or that reorders text.
func assertNoControls(t testing.TB, outputs ...string) {
	t.Helper()
	for _, out := range outputs {
		for _, r := range out {
			if r != '\n' && !unicode.IsPrint(r) {
				assert.Failf(t, "control character reaches the terminal", "%U in:\n%s", r, strconv.QuoteToASCII(out))
				return
			}
		}
	}
}

func TestInspectCommand(t *testing.T) {
	is := startIssuer(t, func() time.Time { return time.Now().Add(-time.Hour) })
	tok := is.Mint(t, demoRequest())

	t.Run("ok/every_line_unverified", func(t *testing.T) {
		code, stdout, stderr := runServer2(t, "Bearer "+tok+"\n", "inspect")

		require.Equal(t, 0, code, stderr)
		ls := lines(stdout)
		for _, l := range ls {
			assert.True(t, strings.HasPrefix(l, "UNVERIFIED"), "line not labelled: %q", l)
		}
		assert.Contains(t, ls, "UNVERIFIED claim  sub    alice")
		assert.Contains(t, ls, "UNVERIFIED header typ    handoff+jwt")
		assert.True(t, hasPrefixLine(ls, "UNVERIFIED claim  exp    "), stdout)
		assert.Contains(t, stdout, "ago; leeway 30s)", "expired an hour ago")
		assert.Contains(t, stderr, `note: stripped a "Bearer " prefix from the input`)
		assertNoToken(t, tok, stdout, stderr)
	})
	t.Run("ok/json", func(t *testing.T) {
		code, stdout, stderr := runServer2(t, tok, "inspect", "--json")

		require.Equal(t, 0, code, stderr)
		var got inspectReport
		require.NoError(t, json.Unmarshal([]byte(stdout), &got))
		assert.False(t, got.Verified)
		assert.True(t, strings.HasPrefix(got.Warning, "UNVERIFIED"))
		assert.Equal(t, "alice", got.Claims["sub"])
		assert.Equal(t, "EdDSA", got.Header["alg"])
		assert.Contains(t, got.Times["exp"].Relative, "expired ")
		assert.Positive(t, got.SignatureBytes)
		assertNoToken(t, tok, stdout, stderr)
	})
	t.Run("ok/hostile_values_escaped", func(t *testing.T) {
		seg := func(v string) string { return base64.RawURLEncoding.EncodeToString([]byte(v)) }
		hostile := seg(`{"alg":"EdDSA","kid":"\u001b]0;owned\u0007"}`) + "." + seg(`{"sub":"\u001b[2J","task":{"id":"\u009b31m"}}`) + "." + seg("sig")

		code, stdout, stderr := runServer2(t, hostile, "inspect")

		require.Equal(t, 0, code, stderr)
		assert.NotContains(t, stdout, "\x1b", "no raw ESC reaches the terminal")
		assert.NotContains(t, stdout, "\u009b", "no raw CSI reaches the terminal")
		assert.Contains(t, stdout, `UNVERIFIED claim  sub    "\x1b[2J"`)
	})
	t.Run("ok/hostile_names_escaped", func(t *testing.T) {
		code, stdout, stderr := runServer2(t, hostileNamesToken(), "inspect")

		require.Equal(t, 0, code, stderr)
		assertNoControls(t, stdout, stderr)
		assert.Contains(t, stdout, `UNVERIFIED header "x\x1b]0;pwn\a" 1`)
		assert.Contains(t, stdout, `UNVERIFIED claim  "\x1b[2Jevil" "\u009b31m"`)
		assert.Contains(t, stdout, `UNVERIFIED claim  "\u202eflip" 1`)
	})
	t.Run("ok/hostile_names_json", func(t *testing.T) {
		code, stdout, stderr := runServer2(t, hostileNamesToken(), "inspect", "--json")

		require.Equal(t, 0, code, stderr)
		assertNoControls(t, stdout, stderr)
		var got inspectReport
		require.NoError(t, json.Unmarshal([]byte(stdout), &got), "still valid JSON")
		assert.Equal(t, "\u009b31m", got.Claims["\x1b[2Jevil"], "the JSON means what the token said")
		assert.Contains(t, got.Header, "x\x1b]0;pwn\a")
		assert.Contains(t, got.Claims, "\u202eflip")
	})
	t.Run("fail/not_a_jwt", func(t *testing.T) {
		code, stdout, stderr := runServer2(t, "token="+tok, "inspect")

		assert.Equal(t, 1, code)
		assert.Equal(t, []string{"UNVERIFIED: " + unverifiedWarning}, lines(stdout))
		assert.Contains(t, stderr, "hint: this looks like a whole form body")
		assert.Contains(t, stderr, "server2 inspect: cannot decode the token: ")
		assertNoToken(t, tok, stdout, stderr)
	})
	t.Run("fail/empty", func(t *testing.T) {
		code, _, stderr := runServer2(t, " \n", "inspect")

		assert.Equal(t, 2, code)
		assert.Contains(t, stderr, "server2 inspect: no token in the input")
	})
}
