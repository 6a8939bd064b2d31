package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/handoffbroker/handoff/broker"
)

func TestVerifyCommand(t *testing.T) {
	is := newIssuer(t, time.Now)
	jwks, err := is.keyring.JWKS()
	require.NoError(t, err)
	keysFile := filepath.Join(t.TempDir(), "jwks.json")
	require.NoError(t, os.WriteFile(keysFile, jwks, 0o600))
	wrongAud := demoRequest()
	wrongAud.Audience = "http://other-service.test"

	tests := []struct {
		name      string
		giveArgs  []string
		giveReq   broker.MintRequest
		giveStdin bool
		wantCode  int
		wantLines []string
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
			name:      "ok/discovered_jwks_url",
			giveReq:   demoRequest(),
			wantCode:  0,
			wantLines: []string{"✓ signature", "✓ claims"},
		},
		{
			name:      "ok/keys_file",
			giveArgs:  []string{"--keys-file", keysFile},
			giveReq:   demoRequest(),
			wantCode:  0,
			wantLines: []string{"✓ signature", "✓ claims"},
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
				"✗ audience: The handoff token is meant for a different service. [wrong_audience: token is for another audience]",
				"token rejected: wrong_audience",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := is.mint(t, tt.giveReq)
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
			assert.NotContains(t, stdout.String()+stderr.String(), signature(tok), "the token is never printed")
			// Explain never consumes: the same token explains the same way again.
			stdout.Reset()
			assert.Equal(t, tt.wantCode, run(context.Background(), args, strings.NewReader(input), &stdout, &stderr))
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
