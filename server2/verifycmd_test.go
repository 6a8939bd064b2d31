package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/broker/brokertest"
	"github.com/handoffbroker/handoff/broker/token"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestVerifyCommand(t *testing.T) {
	is := startIssuer(t, time.Now)
	jwks, err := is.Keyring().JWKS()
	require.NoError(t, err)
	keysFile := filepath.Join(t.TempDir(), "jwks.json")
	require.NoError(t, os.WriteFile(keysFile, jwks, 0o600))
	wrongAud := demoRequest()
	wrongAud.Audience = "http://other-service.test"
	closed := closedURL(t)

	tests := []struct {
		name      string
		giveArgs  []string
		giveReq   token.MintRequest
		giveStdin bool
		wantCode  int
		wantLines []string
		// wantPrefix, when set, starts one of the lines.
		wantPrefix string
	}{
		{
			name:     "ok/accepted",
			giveArgs: []string{"--jwks-url", is.JWKSURL, "--revocation-url", RevocationOff},
			giveReq:  demoRequest(),
			wantCode: 0,
			wantLines: []string{"✓ size", "✓ structure", "✓ header", "✓ key", "✓ signature", "✓ claims", "✓ task",
				`? single use: not checked here. verify never consumes a token and cannot see the running SERVER2's replay store; if this jti was already used, SERVER2 refuses the token as "replayed" (409).`},
		},
		{
			name:     "fail/discovered_without_revocation_endpoint_is_unconfirmed",
			giveReq:  demoRequest(),
			wantCode: 3,
			wantLines: []string{"✓ signature", "✓ claims",
				"? revocation: not checked: SERVER1's handoff configuration names no revocation_endpoint (SERVER2 with this configuration refuses every handoff as unavailable)"},
		},
		{
			name:     "ok/keys_file_revocation_off",
			giveArgs: []string{"--keys-file", keysFile, "--revocation-url", RevocationOff},
			giveReq:  demoRequest(),
			wantCode: 0,
			wantLines: []string{"✓ signature", "✓ claims",
				"? revocation: not checked: revocation-url is off, so SERVER2 with this configuration does not check it either"},
		},
		{
			name: "fail/revocation_list_unreachable_is_unconfirmed",
			giveArgs: []string{"--jwks-url", is.JWKSURL, "--revocation-url", closed + "/revocations",
				"--fetch-allowed-hosts", strings.TrimPrefix(closed, "http://")},
			giveReq:    demoRequest(),
			wantCode:   3,
			wantLines:  []string{"✓ signature", "✓ claims"},
			wantPrefix: "? revocation: not checked: cannot fetch SERVER1's revocation list: ",
		},
		{
			name:     "fail/jwks_url_without_revocation_url",
			giveArgs: []string{"--jwks-url", is.JWKSURL},
			giveReq:  demoRequest(),
			wantCode: 2,
		},
		{
			name:      "ok/token_on_stdin",
			giveArgs:  []string{"--jwks-url", is.JWKSURL, "--revocation-url", RevocationOff},
			giveReq:   demoRequest(),
			giveStdin: true,
			wantCode:  0,
			wantLines: []string{"✓ signature", "✓ claims"},
		},
		{
			name:     "fail/wrong_audience",
			giveArgs: []string{"--jwks-url", is.JWKSURL, "--revocation-url", RevocationOff},
			giveReq:  wrongAud,
			wantCode: 1,
			wantLines: []string{
				"✓ signature",
				"✗ audience: The token's aud is another service. [wrong_audience: token is for another audience]",
				"token rejected: wrong_audience",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := is.Mint(t, tt.giveReq)
			args := append([]string{"verify", "--trusted-issuer", is.URL, "--audience", testAudience}, tt.giveArgs...)
			input := ""
			if tt.giveStdin {
				args, input = append(args, "-"), tok+"\n"
			} else {
				args = append(args, tok)
			}
			var stdout, stderr bytes.Buffer

			code := run(context.Background(), args, strings.NewReader(input), &stdout, &stderr)

			assert.Equal(t, tt.wantCode, code, "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
			lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
			for _, want := range tt.wantLines {
				assert.Contains(t, lines, want)
			}
			if tt.wantPrefix != "" {
				assert.True(t, slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, tt.wantPrefix) }), "no line starts with %q:\n%s", tt.wantPrefix, stdout.String())
			}
			if tt.wantCode != 0 {
				assert.NotContains(t, stdout.String(), "token valid", "only a token SERVER2 accepts is called valid")
			}
			assert.NotContains(t, stdout.String()+stderr.String(), signature(tok), "the token is never printed")
			// Explain never consumes: the same token explains the same way again.
			stdout.Reset()
			assert.Equal(t, tt.wantCode, run(context.Background(), args, strings.NewReader(input), &stdout, &stderr))
		})
	}
}

// TestVerifyCommand_Revocation: verify runs the revocation check serve
// runs, against SERVER1's list found the same way, and reports a revoked
// jti, subject or key as revoked (exit 1), never as valid.
func TestVerifyCommand_Revocation(t *testing.T) {
	tests := []struct {
		name       string
		giveURLs   bool // configure the JWKS and list URLs instead of discovering them
		giveRevoke func(t testing.TB, is *brokertest.Issuer, m token.Minted)
		wantCode   int
		wantLines  []string
	}{
		{
			name:       "ok/not_revoked_discovered",
			giveRevoke: func(testing.TB, *brokertest.Issuer, token.Minted) {},
			wantCode:   0,
			wantLines:  []string{"✓ key", "✓ signature", "✓ claims", "✓ task", "✓ revocation"},
		},
		{
			name:       "ok/not_revoked_configured",
			giveURLs:   true,
			giveRevoke: func(testing.TB, *brokertest.Issuer, token.Minted) {},
			wantCode:   0,
			wantLines:  []string{"✓ revocation"},
		},
		{
			name: "fail/jti_revoked",
			giveRevoke: func(t testing.TB, is *brokertest.Issuer, m token.Minted) {
				require.NoError(t, is.Revocations().RevokeToken(m.ID, m.ExpiresAt))
			},
			wantCode: 1,
			wantLines: []string{"✓ task", "✗ revocation: The token was revoked. [revoked: the token was revoked]",
				"token rejected: revoked"},
		},
		{
			name:     "fail/jti_revoked_configured",
			giveURLs: true,
			giveRevoke: func(t testing.TB, is *brokertest.Issuer, m token.Minted) {
				require.NoError(t, is.Revocations().RevokeToken(m.ID, m.ExpiresAt))
			},
			wantCode:  1,
			wantLines: []string{"token rejected: revoked"},
		},
		{
			name: "fail/subject_signed_out",
			giveRevoke: func(t testing.TB, is *brokertest.Issuer, _ token.Minted) {
				now := time.Now()
				require.NoError(t, is.Revocations().RevokeSubject("alice", now, now.Add(time.Hour)))
			},
			wantCode:  1,
			wantLines: []string{"token rejected: revoked"},
		},
		{
			name: "fail/key_revoked_still_published",
			giveRevoke: func(t testing.TB, is *brokertest.Issuer, m token.Minted) {
				require.NoError(t, is.Revocations().RevokeKey(m.KeyID, time.Now().Add(24*time.Hour)))
			},
			wantCode: 1,
			wantLines: []string{"✓ key", "✓ signature",
				"✗ revocation: The token was revoked. [revoked: the signing key was revoked]", "token rejected: revoked"},
		},
		{
			name: "fail/key_revoked_and_unpublished",
			giveRevoke: func(t testing.TB, is *brokertest.Issuer, m token.Minted) {
				// What `server1 keys revoke` does: list the kid, then drop
				// the key from the JWKS (a replacement signs the list).
				require.NoError(t, is.Revocations().RevokeKey(m.KeyID, time.Now().Add(24*time.Hour)))
				_, err := is.Keyring().RevokeAndReplace(m.KeyID, token.EdDSA)
				require.NoError(t, err)
			},
			wantCode: 1,
			wantLines: []string{"✗ key: The token was revoked. [revoked: the signing key was revoked; SERVER1 no longer publishes it]",
				"token rejected: revoked"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := startIssuer(t, time.Now)
			enableRevocations(is)
			m := is.MintFull(t, demoRequest())
			tt.giveRevoke(t, is, m)
			args := []string{"verify", "--trusted-issuer", is.URL, "--audience", testAudience}
			if tt.giveURLs {
				args = append(args, "--jwks-url", is.JWKSURL, "--revocation-url", is.URL+"/revocations")
			}
			var stdout, stderr bytes.Buffer

			code := run(context.Background(), append(args, m.Token), strings.NewReader(""), &stdout, &stderr)

			assert.Equal(t, tt.wantCode, code, "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
			lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
			for _, want := range tt.wantLines {
				assert.Contains(t, lines, want)
			}
			if tt.wantCode != 0 {
				assert.NotContains(t, stdout.String(), "token valid")
			}
			assert.NotContains(t, stdout.String()+stderr.String(), signature(m.Token), "the token is never printed")
		})
	}
}

func TestVerifyCommand_Usage(t *testing.T) {
	tests := []struct {
		name     string
		giveArgs []string
	}{
		{name: "fail/no_token", giveArgs: []string{"verify"}},
		{name: "fail/two_tokens", giveArgs: []string{"verify", "a", "b"}},
		{name: "fail/unknown_flag", giveArgs: []string{"verify", "--nope", "a"}},
		{name: "fail/unknown_command", giveArgs: []string{"frobnicate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer

			code := run(context.Background(), tt.giveArgs, strings.NewReader(""), &stdout, &stderr)

			assert.Equal(t, 2, code)
			assert.Empty(t, stdout.String())
			assert.NotEmpty(t, stderr.String())
		})
	}
}
