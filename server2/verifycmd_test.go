package main

import (
	"bytes"
	"context"
	"encoding/json"
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

// runServer2 runs the command line with stdin and returns the exit status
// and both outputs.
func runServer2(t testing.TB, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

// assertNoToken fails when any output holds the token or its signature.
func assertNoToken(t testing.TB, tok string, outputs ...string) {
	t.Helper()
	for _, out := range outputs {
		assert.NotContains(t, out, signature(tok), "the token and its signature are never printed")
	}
}

func lines(s string) []string { return strings.Split(strings.TrimSpace(s), "\n") }

func hasPrefixLine(ls []string, prefix string) bool {
	return slices.ContainsFunc(ls, func(l string) bool { return strings.HasPrefix(l, prefix) })
}

func TestVerifyCommand(t *testing.T) {
	is := startIssuer(t, time.Now)
	jwks, err := is.Keyring().JWKS()
	require.NoError(t, err)
	dir := t.TempDir()
	keysFile := filepath.Join(dir, "jwks.json")
	require.NoError(t, os.WriteFile(keysFile, jwks, 0o600))
	wrongAud := demoRequest()
	wrongAud.Audience = "http://other-service.test"
	closed := closedURL(t)
	closedHost := strings.TrimPrefix(closed, "http://")
	hourAgo := startIssuer(t, func() time.Time { return time.Now().Add(-time.Hour) })
	off := []string{"--jwks-url", is.JWKSURL, "--revocation-url", RevocationOff}
	task := []string{"--task-id", "transfer-123", "--action", "approve", "--param", "amount=250.00", "--param", "currency=EUR", "--param", "payee=ACME Corp"}

	tests := []struct {
		name       string
		giveIssuer *brokertest.Issuer // default is
		giveArgs   []string
		giveReq    token.MintRequest
		giveInput  func(tok string) string // default: the token and a line break on stdin
		giveFile   bool                    // the input in a FILE operand instead
		wantCode   int
		wantLines  []string
		wantPrefix []string // each starts a line
		wantStderr []string
	}{
		{
			name: "ok/accepted", giveArgs: off, giveReq: demoRequest(), wantCode: 0,
			wantLines: []string{"token (signature verified):", "  sub     alice", "✓ size", "✓ structure", "✓ header", "✓ issuer", "✓ key", "✓ signature", "✓ claims",
				"? task: not checked: no --task-id given: any task passes, as on the browser handoff, where the user confirms the task shown; state the task the API call carries with --task-id, --action and --param",
				"? revocation: not checked: revocation-url is off, so SERVER2 with this configuration does not check it either",
				`? single use: not checked: verify never consumes a token and cannot see the running SERVER2's replay store; if this jti was already used, SERVER2 refuses the token as "replayed" (409).`,
				"token valid (not consumed)"},
			wantPrefix: []string{"  exp     ", "  iat     ", "key: ", "clock: now "},
		},
		{
			name: "ok/task_stated", giveArgs: append(slices.Clone(off), task...), giveReq: demoRequest(), wantCode: 0,
			wantLines: []string{"✓ task: task transfer-123, action approve, parameters match", "token valid (not consumed)"},
		},
		{
			name: "fail/task_mismatch", giveArgs: append(slices.Clone(off), "--task-id", "transfer-999", "--action", "approve"), giveReq: demoRequest(), wantCode: 1,
			wantLines: []string{"✓ signature", "✓ claims",
				"✗ task: The token allows a different task. [task_mismatch: token is for another task]",
				"    expected: task id transfer-999, action approve, params_digest (none)",
				"? revocation: not checked: an earlier check failed",
				"token rejected: task_mismatch"},
			wantPrefix: []string{"    got:      task id transfer-123, action approve, params_digest sha256:"},
		},
		{
			name: "fail/task_params_differ", giveArgs: append(slices.Clone(off), "--task-id", "transfer-123", "--action", "approve", "--param", "amount=9999.00"),
			giveReq: demoRequest(), wantCode: 1, wantLines: []string{"token rejected: task_mismatch"},
		},
		{
			name: "ok/keys_file", giveArgs: []string{"--keys-file", keysFile, "--revocation-url", RevocationOff}, giveReq: demoRequest(), wantCode: 0,
			wantLines: []string{"✓ signature", "token valid (not consumed)"}, wantPrefix: []string{"key: ", "  header  alg=EdDSA typ=handoff+jwt kid="},
		},
		{
			name: "fail/wrong_audience", giveArgs: off, giveReq: wrongAud, wantCode: 1,
			wantLines: []string{"✓ signature",
				"✗ audience: The token's aud is another service. [wrong_audience: token is for another audience]",
				"    expected: " + testAudience, "    got:      http://other-service.test",
				"token rejected: wrong_audience"},
		},
		{
			name: "fail/expired", giveIssuer: hourAgo, giveArgs: []string{"--jwks-url", hourAgo.JWKSURL, "--revocation-url", RevocationOff, "--trusted-issuer", hourAgo.URL},
			giveReq: demoRequest(), wantCode: 1,
			wantLines:  []string{"✓ signature", "token rejected: expired"},
			wantPrefix: []string{"✗ expiry: ", "    expected: exp after now ", "    got:      exp ", "  exp     "},
		},
		{
			name: "fail/wrong_issuer_unverified", giveArgs: append(slices.Clone(off), "--trusted-issuer", "http://elsewhere.test", "--fetch-allowed-hosts", strings.TrimPrefix(is.URL, "http://")),
			giveReq: demoRequest(), wantCode: 1,
			wantLines: []string{"token, UNVERIFIED (the signature did not verify or was not checked; anyone can write these values):",
				"    expected: http://elsewhere.test", "    got:      " + is.URL,
				"? signature: not checked: an earlier check failed", "token rejected: wrong_issuer"},
		},
		{
			name: "unchecked/no_revocation_endpoint", giveReq: demoRequest(), wantCode: 2,
			wantLines: []string{"✓ signature", "✓ claims",
				"? revocation: not checked: SERVER1's handoff configuration names no revocation_endpoint (SERVER2 with this configuration refuses every handoff as unavailable)"},
			wantPrefix: []string{"token not confirmed: "},
		},
		{
			name:     "unchecked/revocation_list_unreachable",
			giveArgs: []string{"--jwks-url", is.JWKSURL, "--revocation-url", closed + "/revocations", "--fetch-allowed-hosts", closedHost},
			giveReq:  demoRequest(), wantCode: 2,
			wantLines:  []string{"✓ signature", "✓ claims"},
			wantPrefix: []string{"? revocation: not checked: cannot fetch SERVER1's revocation list: ", "token not confirmed: "},
			wantStderr: []string{"cannot fetch SERVER1's revocation list: "},
		},
		{
			name:     "unchecked/jwks_unreachable",
			giveArgs: []string{"--jwks-url", closed + "/jwks.json", "--revocation-url", RevocationOff, "--fetch-allowed-hosts", closedHost},
			giveReq:  demoRequest(), wantCode: 2,
			wantLines:  []string{"✓ structure", "? signature: not checked: an earlier check failed"},
			wantPrefix: []string{"✗ key: ", "token not checked: "},
			wantStderr: []string{"cannot fetch SERVER1's JWKS: "},
		},
		{
			name: "usage/jwks_url_without_revocation_url", giveArgs: []string{"--jwks-url", is.JWKSURL}, giveReq: demoRequest(), wantCode: 2,
			wantStderr: []string{"server2 verify: ", "usage: server2 verify [flags] [FILE|-]"},
		},
		{
			name: "ok/token_in_file", giveArgs: off, giveReq: demoRequest(), giveFile: true, wantCode: 0,
			wantLines: []string{"token valid (not consumed)"},
		},
		{
			name: "ok/paste_mistakes_stripped", giveArgs: off, giveReq: demoRequest(),
			giveInput: func(tok string) string { return "  'Bearer " + tok + "'  \n" }, wantCode: 0,
			wantLines:  []string{"token valid (not consumed)"},
			wantStderr: []string{"note: stripped surrounding whitespace from the input", "note: stripped surrounding quotes from the input", `note: stripped a "Bearer " prefix from the input`},
		},
		{
			name: "fail/form_body_hinted", giveArgs: off, giveReq: demoRequest(),
			giveInput: func(tok string) string { return "token=" + tok + "&next=%2F" }, wantCode: 1,
			wantLines:  []string{"token rejected: malformed"},
			wantStderr: []string{"hint: this looks like a whole form body (token=...): pass only the value of token, URL-decoded"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iss := is
			if tt.giveIssuer != nil {
				iss = tt.giveIssuer
			}
			tok := iss.Mint(t, tt.giveReq)
			input := tok + "\n"
			if tt.giveInput != nil {
				input = tt.giveInput(tok)
			}
			args := append([]string{"verify", "--trusted-issuer", iss.URL, "--audience", testAudience}, tt.giveArgs...)
			stdin := input
			if tt.giveFile {
				path := filepath.Join(t.TempDir(), "token")
				require.NoError(t, os.WriteFile(path, []byte(input), 0o600))
				args, stdin = append(args, path), ""
			}

			code, stdout, stderr := runServer2(t, stdin, args...)

			require.Equal(t, tt.wantCode, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
			ls := lines(stdout)
			for _, want := range tt.wantLines {
				assert.Contains(t, ls, want)
			}
			for _, want := range tt.wantPrefix {
				assert.True(t, hasPrefixLine(ls, want), "no line starts with %q:\n%s", want, stdout)
			}
			for _, want := range tt.wantStderr {
				assert.Contains(t, stderr, want)
			}
			if tt.wantCode != 0 {
				assert.NotContains(t, stdout, "token valid", "only a token SERVER2 accepts is called valid")
			}
			assert.False(t, hasPrefixLine(ls, "✓ task") && !slices.Contains(tt.giveArgs, "--task-id"), "the task passes only when stated")
			assertNoToken(t, tok, stdout, stderr)
			// Explain never consumes: the same token explains the same way again.
			again, _, _ := runServer2(t, stdin, args...)
			assert.Equal(t, tt.wantCode, again)
		})
	}
}

// TestVerifyCommand_TokenOnArgv: a token given as the operand is refused
// (exit 2) without being checked or printed.
func TestVerifyCommand_TokenOnArgv(t *testing.T) {
	is := startIssuer(t, time.Now)
	tok := is.Mint(t, demoRequest())
	for _, cmd := range []string{"verify", "inspect"} {
		t.Run(cmd, func(t *testing.T) {
			code, stdout, stderr := runServer2(t, "", cmd, tok)

			assert.Equal(t, 2, code)
			assert.Empty(t, stdout)
			assert.Contains(t, stderr, "the argument is a token, not a FILE")
			assertNoToken(t, tok, stdout, stderr)
		})
	}
}

// TestTokenAsCommandName: a token pasted as the command name (server2
// eyJ...), or after a command that takes no operand, is refused unprinted.
func TestTokenAsCommandName(t *testing.T) {
	is := startIssuer(t, time.Now)
	tok := is.Mint(t, demoRequest())
	for name, args := range map[string][]string{"command": {tok}, "help": {"help", tok}, "serve": {"serve", tok}} {
		t.Run(name, func(t *testing.T) {
			code, stdout, stderr := runServer2(t, "", args...)

			assert.Equal(t, 2, code)
			assert.Contains(t, stderr, "(not shown: it looks like a token;")
			assertNoToken(t, tok, stdout, stderr)
			assert.NotContains(t, stdout+stderr, tok[:20])
		})
	}
}

// TestVerifyCommand_HostileNames: header member and claim names a token
// makes up reach the terminal escaped, as its values do, in the lines and
// in --json, which stays valid JSON.
func TestVerifyCommand_HostileNames(t *testing.T) {
	is := startIssuer(t, time.Now)
	args := []string{"verify", "--trusted-issuer", is.URL, "--audience", testAudience, "--jwks-url", is.JWKSURL, "--revocation-url", RevocationOff}

	code, stdout, stderr := runServer2(t, hostileNamesToken(), args...)

	require.Equal(t, 1, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	assertNoControls(t, stdout, stderr)
	ls := lines(stdout)
	assert.True(t, hasPrefixLine(ls, `  header  alg=EdDSA typ=handoff+jwt kid=k "x\x1b]0;pwn\a"=1`), stdout)
	assert.Contains(t, ls, `  "\x1b[2Jevil" "\u009b31m"`)
	assert.Contains(t, ls, `  "\u202eflip" 1`)

	code, stdout, stderr = runServer2(t, hostileNamesToken(), append(args, "--json")...)

	require.Equal(t, 1, code, stderr)
	assertNoControls(t, stdout, stderr)
	var got verifyReport
	require.NoError(t, json.Unmarshal([]byte(stdout), &got), "still valid JSON")
	assert.Equal(t, "\u009b31m", got.Claims["\x1b[2Jevil"])
	assert.Contains(t, got.Header, "x\x1b]0;pwn\a")
}

// TestFailedCheck_TaskDigestAsWritten: a task's params_digest is shown as
// the token has it, escaped, never turned into "(none)" by its spelling.
func TestFailedCheck_TaskDigestAsWritten(t *testing.T) {
	o := verifyOptions{taskID: "transfer-1", action: "approve"}
	step := token.Step{Name: token.StepTask, Err: &token.Error{Reason: token.ReasonTaskMismatch}}
	tests := []struct {
		name       string
		giveDigest any
		wantGot    string
	}{
		{name: "ok/absent", giveDigest: nil, wantGot: "task id transfer-9, action approve, params_digest (none)"},
		{name: "ok/nil_spelt_out", giveDigest: "<nil>", wantGot: "task id transfer-9, action approve, params_digest <nil>"},
		{name: "ok/not_a_string", giveDigest: map[string]any{"\x1b[2J": true}, wantGot: `task id transfer-9, action approve, params_digest {"\u001b[2J":true}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task := map[string]any{"id": "transfer-9", "action": "approve"}
			if tt.giveDigest != nil {
				task["params_digest"] = tt.giveDigest
			}
			u := unverifiedToken{Claims: map[string]any{"task": task}}

			c := failedCheck(o, step, u, time.Now())

			assert.Equal(t, "task id transfer-1, action approve, params_digest (none)", c.Expected)
			assert.Equal(t, tt.wantGot, c.Got)
		})
	}
}

// TestVerifyCommand_JSON: --json is one object a script can read: the
// result, each check with its status, and nothing marked passed that did
// not run.
func TestVerifyCommand_JSON(t *testing.T) {
	is := startIssuer(t, time.Now)
	enableRevocations(is)
	tok := is.Mint(t, demoRequest())
	tests := []struct {
		name       string
		giveArgs   []string
		wantCode   int
		wantResult string
		wantReason token.Reason
		wantChecks map[string]string
	}{
		{name: "ok/valid_task_not_stated", wantCode: 0, wantResult: "valid",
			wantChecks: map[string]string{"signature": "passed", "claims": "passed", "task": "not_checked", "revocation": "passed", "single use": "not_checked"}},
		{name: "ok/valid_task_stated", giveArgs: []string{"--task-id", "transfer-123", "--action", "approve", "--param", "amount=250.00", "--param", "currency=EUR", "--param", "payee=ACME Corp"},
			wantCode: 0, wantResult: "valid", wantChecks: map[string]string{"task": "passed"}},
		{name: "fail/wrong_action", giveArgs: []string{"--task-id", "transfer-123", "--action", "reject"}, wantCode: 1, wantResult: "invalid",
			wantReason: token.ReasonTaskMismatch, wantChecks: map[string]string{"signature": "passed", "task": "failed", "revocation": "not_checked"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"verify", "--json", "--trusted-issuer", is.URL, "--audience", testAudience}, tt.giveArgs...)

			code, stdout, stderr := runServer2(t, tok, args...)

			require.Equal(t, tt.wantCode, code, stderr)
			var got verifyReport
			require.NoError(t, json.Unmarshal([]byte(stdout), &got), stdout)
			assert.Equal(t, tt.wantResult, got.Result)
			assert.Equal(t, tt.wantReason, got.Reason)
			assert.True(t, got.SignatureVerified)
			assert.Equal(t, "alice", got.Claims["sub"])
			assert.NotNil(t, got.Revocation.IssuedAt, "the revocation list was fetched")
			assert.Equal(t, is.URL+"/revocations", got.Revocation.URL)
			require.NotNil(t, got.Key)
			assert.Equal(t, is.JWKSURL, got.Key.JWKSURL)
			assert.NotNil(t, got.Key.FetchedAt)
			statuses := map[string]string{}
			for _, c := range got.Checks {
				statuses[c.Name] = c.Status
			}
			for name, want := range tt.wantChecks {
				assert.Equal(t, want, statuses[name], "check %s", name)
			}
			assertNoToken(t, tok, stdout, stderr)
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
			wantLines:  []string{"✓ key", "✓ signature", "✓ claims", "✓ revocation"},
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
			wantLines: []string{"? task: not checked: no --task-id given: any task passes, as on the browser handoff, where the user confirms the task shown; state the task the API call carries with --task-id, --action and --param",
				"✗ revocation: The token was revoked. [revoked: the token was revoked]", "token rejected: revoked"},
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

			code, stdout, stderr := runServer2(t, m.Token, args...)

			assert.Equal(t, tt.wantCode, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
			ls := lines(stdout)
			for _, want := range tt.wantLines {
				assert.Contains(t, ls, want)
			}
			assert.True(t, hasPrefixLine(ls, "revocation list: "+is.URL+"/revocations issued "), "the list's age is shown:\n%s", stdout)
			if tt.wantCode != 0 {
				assert.NotContains(t, stdout, "token valid")
			}
			assertNoToken(t, m.Token, stdout, stderr)
		})
	}
}

func TestVerifyCommand_Usage(t *testing.T) {
	tests := []struct {
		name     string
		giveArgs []string
	}{
		{name: "fail/empty_input", giveArgs: []string{"verify"}},
		{name: "fail/two_files", giveArgs: []string{"verify", "a", "b"}},
		{name: "fail/missing_file", giveArgs: []string{"verify", filepath.Join(os.TempDir(), "no-such-token-file")}},
		{name: "fail/unknown_flag", giveArgs: []string{"verify", "--nope"}},
		{name: "fail/action_without_task", giveArgs: []string{"verify", "--action", "approve"}},
		{name: "fail/task_without_action", giveArgs: []string{"verify", "--task-id", "transfer-123"}},
		{name: "fail/serve_flag_not_verifys", giveArgs: []string{"verify", "--session-ttl", "1m"}},
		{name: "fail/unknown_command", giveArgs: []string{"frobnicate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runServer2(t, "", tt.giveArgs...)

			assert.Equal(t, 2, code)
			assert.Empty(t, stdout)
			first := lines(stderr)[0]
			assert.Regexp(t, `^server2( verify)?: `, first)
			assert.NotContains(t, first, "broker:", "one prefix, not a chain")
		})
	}
}
