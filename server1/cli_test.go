package main

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"io"
	"maps"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/broker/keys"
	"github.com/handoffbroker/handoff/broker/token"
	"github.com/handoffbroker/handoff/shared/cli"
	"github.com/handoffbroker/handoff/shared/sharedtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMintCommand(t *testing.T) {
	mintArgs := []string{"mint", "--sub", "alice", "--aud", payments, "--task-id", "transfer-123", "--task-action", "approve",
		"--param", "amount=250.00", "--param", "currency=EUR", "--param", "payee=ACME Corp"}
	withArgs := func(extra ...string) []string { return append(slices.Clone(mintArgs), extra...) }
	noAud := slices.Delete(slices.Clone(mintArgs), 3, 5)
	tests := []struct {
		name       string
		giveArgs   []string
		giveEnv    map[string]string
		giveEnvDir bool // pass the keys dir as SERVER1_KEYS_DIR instead of --keys-dir
		giveNoKey  bool
		wantCode   int
		wantTTL    time.Duration
		wantAud    string // default payments
		wantStderr string // the first line of stderr starts so
	}{
		{name: "ok/default_ttl", giveArgs: mintArgs, wantCode: 0, wantTTL: time.Minute},
		{name: "ok/ttl", giveArgs: withArgs("--ttl", "2m"), wantCode: 0, wantTTL: 2 * time.Minute},
		{name: "ok/configured_ttl", giveArgs: mintArgs, giveEnv: map[string]string{"SERVER1_TOKEN_TTL": "3m"}, wantCode: 0, wantTTL: 3 * time.Minute},
		{name: "ok/keys_dir_from_env", giveArgs: mintArgs, giveEnvDir: true, wantCode: 0, wantTTL: time.Minute},
		{name: "ok/aud_defaults_to_configured_audience", giveArgs: noAud, giveEnv: map[string]string{"SERVER1_AUDIENCE": "http://payments-2.test"},
			wantCode: 0, wantTTL: time.Minute, wantAud: "http://payments-2.test"},
		{name: "ok/aud_defaults_to_default_audience", giveArgs: noAud, wantCode: 0, wantTTL: time.Minute},
		{name: "fail/ttl_above_max", giveArgs: withArgs("--ttl", "11m"), wantCode: 2,
			wantStderr: "server1 mint: --ttl 11m0s: want between 1s and the longest lifetime SERVER1 signs, 10m0s (SERVER1_MAX_TOKEN_TTL)"},
		{name: "fail/token_ttl_is_not_a_mint_flag", giveArgs: withArgs("--token-ttl", "2m"), wantCode: 2,
			wantStderr: "server1 mint: flag provided but not defined: -token-ttl"},
		{name: "fail/missing_sub", giveArgs: []string{"mint", "--aud", payments, "--task-id", "transfer-123", "--task-action", "approve"}, wantCode: 2,
			wantStderr: "server1 mint: required: --sub"},
		{name: "fail/bad_param", giveArgs: withArgs("--param", "novalue"), wantCode: 2},
		{name: "fail/param_too_long", giveArgs: withArgs("--param", "memo="+strings.Repeat("x", 300)), wantCode: 2,
			wantStderr: "server1 mint: task parameter name or value out of bounds"},
		{name: "fail/bad_configured_ttl", giveArgs: mintArgs, giveEnv: map[string]string{"SERVER1_MAX_TOKEN_TTL": "soon"}, wantCode: 2,
			wantStderr: "server1 mint: SERVER1_MAX_TOKEN_TTL: "},
		{name: "fail/no_key", giveArgs: mintArgs, giveNoKey: true, wantCode: 1, wantStderr: "server1 mint: no signing key in "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "keys")
			ring := openKeyring(t, dir)
			if !tt.giveNoKey {
				_, err := ring.Generate(token.EdDSA, time.Time{})
				require.NoError(t, err)
			}
			for k, v := range tt.giveEnv {
				t.Setenv(k, v)
			}
			args := tt.giveArgs
			if tt.giveEnvDir {
				t.Setenv("SERVER1_KEYS_DIR", dir)
			} else {
				args = append(slices.Clone(args), "--keys-dir", dir)
			}

			code, stdout, stderr := runCLI(t, args...)

			require.Equal(t, tt.wantCode, code, stderr)
			if tt.wantCode != 0 {
				assert.Empty(t, stdout)
				first, _, _ := strings.Cut(stderr, "\n")
				assert.True(t, strings.HasPrefix(first, tt.wantStderr), "stderr starts %q:\n%s", tt.wantStderr, stderr)
				assert.NotContains(t, first, "broker:", "one prefix, not a chain")
				return
			}
			lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
			require.Len(t, lines, 1, "the token alone")
			aud := cmp.Or(tt.wantAud, payments)
			verified, err := verifier(t, ring, aud).Verify(context.Background(), lines[0], expectTransfer("transfer-123", demoParams))
			require.NoError(t, err)
			claims := verified.Claims()
			assert.Equal(t, "alice", claims.Subject)
			assert.Equal(t, aud, claims.Audience)
			assert.Equal(t, demoParams, claims.Task.Params)
			assert.Equal(t, tt.wantTTL, claims.ExpiresAt.Sub(claims.IssuedAt))
		})
	}
}

// TestMintCommand_AudienceFromFile: without --aud, mint's audience is the
// first of the configured audiences file, as the demo's transfers are.
func TestMintCommand_AudienceFromFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	ring := openKeyring(t, dir)
	_, err := ring.Generate(token.EdDSA, time.Time{})
	require.NoError(t, err)
	t.Setenv("SERVER1_AUDIENCES_FILE", writeFile(t, "audiences.json",
		`[{"audience":"http://first.test","name":"First","handoff_url":"http://first.test/handoff"},{"audience":"http://second.test","name":"Second","handoff_url":"http://second.test/handoff"}]`))

	code, stdout, stderr := runCLI(t, "mint", "--sub", "alice", "--task-id", "t-1", "--task-action", "approve", "--keys-dir", dir)

	require.Equal(t, 0, code, stderr)
	verified, err := verifier(t, ring, "http://first.test").Verify(context.Background(), strings.TrimSpace(stdout), token.Expect{AnyTask: true})
	require.NoError(t, err)
	assert.Equal(t, "http://first.test", verified.Claims().Audience)
}

func TestKeysGenerateBecomesCurrent(t *testing.T) {
	cfg := testConfig(t)
	// The first key was made an hour ago, as if by an earlier start.
	old, err := keys.Open(keys.KeyringConfig{Dir: cfg.KeysDir, Now: func() time.Time { return time.Now().Add(-time.Hour) }})
	require.NoError(t, err)
	first, err := old.Generate(token.EdDSA, time.Time{})
	require.NoError(t, err)
	ts := newTestServer(t, cfg)
	require.Equal(t, []string{first.ID}, publishedKids(t, ts))

	code, stdout, stderr := runCLI(t, "keys", "generate", "--alg", "ES256", "--keys-dir", cfg.KeysDir)
	require.Equal(t, 0, code, stderr)
	generated := openKeyring(t, cfg.KeysDir).Keys()
	require.Len(t, generated, 2)
	var second keys.Info
	for _, k := range generated {
		if k.ID != first.ID {
			second = k
		}
	}
	assert.Contains(t, stdout, second.ID)
	assert.Equal(t, token.ES256, second.Algorithm)

	require.NoError(t, ts.app.reloadKeys())

	assert.ElementsMatch(t, []string{first.ID, second.ID}, publishedKids(t, ts), "both published: the old one still verifies live tokens")
	b := ts.browser(t)
	csrf := b.signIn("alice", "alice-demo-pw")
	res := b.PostForm("/handoffs", url.Values{csrfField: {csrf}, "audience": {payments}, "task_id": {"transfer-123"}}, nil)
	require.Equal(t, http.StatusOK, res.StatusCode)
	tok := inputValue(t, parseHTML(t, res.Body), "handoff", "token")
	verified, err := verifier(t, ts.app.keys, payments).Verify(context.Background(), tok, expectTransfer("transfer-123", demoParams))
	require.NoError(t, err)
	assert.Equal(t, second.ID, verified.Claims().KeyID, "the new key signs")
	assert.Equal(t, token.ES256, verified.Claims().Algorithm)
	changed := ts.logs.JSONLines(t, "signing key changed")
	require.Len(t, changed, 1)
	assert.Equal(t, second.ID, changed[0]["kid"])

	code, stdout, stderr = runCLI(t, "keys", "list", "--keys-dir", cfg.KeysDir)
	require.Equal(t, 0, code, stderr)
	rows := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n")[1:] {
		f := strings.Fields(line)
		rows[f[0]] = f[2]
	}
	assert.Equal(t, map[string]string{first.ID: "retired", second.ID: "current"}, rows)
}

func publishedKids(t testing.TB, ts *testServer) []string {
	t.Helper()
	res := ts.browser(t).Get("/.well-known/jwks.json")
	require.Equal(t, http.StatusOK, res.StatusCode)
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	require.NoError(t, json.Unmarshal([]byte(res.Body), &set))
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.Kid)
	}
	return kids
}

func TestCommandLine(t *testing.T) {
	tests := []struct {
		name     string
		giveArgs []string
		wantCode int
	}{
		{name: "fail/unknown_subcommand", giveArgs: []string{"frobnicate"}, wantCode: 2},
		{name: "fail/serve_operand", giveArgs: []string{"serve", "extra"}, wantCode: 2},
		{name: "fail/keys_without_subcommand", giveArgs: []string{"keys"}, wantCode: 2},
		{name: "fail/unknown_keys_subcommand", giveArgs: []string{"keys", "shred"}, wantCode: 2},
		{name: "fail/serve_unknown_flag", giveArgs: []string{"serve", "--no-such-flag"}, wantCode: 2},
		{name: "fail/serve_bad_config", giveArgs: []string{"serve", "--key-alg", "HS256", "--token-ttl", "0s"}, wantCode: 1},
		{name: "fail/serve_handoff_limits", giveArgs: []string{"serve", "--handoffs-per-minute", "0", "--handoff-burst", "-1"}, wantCode: 1},
		{name: "fail/serve_bad_log_format", giveArgs: []string{"serve", "--log-format", "yaml"}, wantCode: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, _ := runCLI(t, tt.giveArgs...)
			assert.Equal(t, tt.wantCode, code)
			assert.Empty(t, stdout)
		})
	}
}

func TestServeCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	ctx, cancel := context.WithCancel(context.Background())
	out := &sharedtest.Buffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--keys-dir", dir, "--log-level", "error"}, out, &sharedtest.Buffer{})
	}()

	var base string
	require.Eventually(t, func() bool {
		for _, l := range strings.Split(out.String(), "\n") {
			if rest, ok := strings.CutPrefix(l, "SERVER1 listening on "); ok {
				base = rest
				return true
			}
		}
		return false
	}, 10*time.Second, 10*time.Millisecond)
	assert.Regexp(t, `^http://127\.0\.0\.1:[1-9][0-9]*$`, base)
	assert.Contains(t, out.String(), "alice / alice-demo-pw")

	res, err := http.Get(base + "/readyz")
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusOK, res.StatusCode)

	cancel()
	select {
	case code := <-done:
		assert.Equal(t, 0, code)
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop")
	}
}

func TestDisplayAddr(t *testing.T) {
	tests := []struct {
		name           string
		giveConfigured string
		giveBound      string
		want           string
	}{
		{name: "ok/localhost_keeps_name", giveConfigured: "localhost:0", giveBound: "127.0.0.1:41234", want: "localhost:41234"},
		{name: "ok/ip", giveConfigured: "127.0.0.1:8081", giveBound: "127.0.0.1:8081", want: "127.0.0.1:8081"},
		{name: "ok/all_interfaces", giveConfigured: ":8081", giveBound: "[::]:8081", want: "localhost:8081"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, displayAddr(tt.giveConfigured, tt.giveBound))
		})
	}
}

// TestKeysListJSON: keys list --json is the machine-readable form of the
// table, for scripts and the e2e suite, and carries no key material.
func TestKeysListJSON(t *testing.T) {
	dir := t.TempDir()
	hourAgo := time.Now().Add(-time.Hour).Truncate(time.Second)
	old, err := keys.Open(keys.KeyringConfig{Dir: dir, Now: func() time.Time { return hourAgo }})
	require.NoError(t, err)
	first, err := old.Generate(token.EdDSA, time.Time{})
	require.NoError(t, err)
	code, _, stderr := runCLI(t, "keys", "generate", "--alg", "ES256", "--keys-dir", dir)
	require.Equal(t, 0, code, stderr)
	want := openKeyring(t, dir).Keys()
	require.Len(t, want, 2)

	code, stdout, stderr := runCLI(t, "keys", "list", "--json", "--keys-dir", dir)
	require.Equal(t, 0, code, stderr)
	var members []map[string]any
	require.NoError(t, json.Unmarshal([]byte(stdout), &members))
	require.Len(t, members, 2)
	assert.ElementsMatch(t, []string{"kid", "alg", "state", "created_at", "activates_at", "retired_at"}, slices.Collect(maps.Keys(members[0])),
		"a retired key: its retirement time, and nothing of the key itself")
	assert.ElementsMatch(t, []string{"kid", "alg", "state", "created_at", "activates_at"}, slices.Collect(maps.Keys(members[1])))

	var got []struct {
		ID          string     `json:"kid"`
		Algorithm   string     `json:"alg"`
		State       string     `json:"state"`
		CreatedAt   time.Time  `json:"created_at"`
		ActivatesAt time.Time  `json:"activates_at"`
		RetiredAt   *time.Time `json:"retired_at"`
	}
	require.NoError(t, json.Unmarshal([]byte(stdout), &got))
	assert.Equal(t, first.ID, got[0].ID, "in activation order")
	for i, k := range want {
		assert.Equal(t, k.ID, got[i].ID)
		assert.Equal(t, string(k.Algorithm), got[i].Algorithm)
		assert.Equal(t, string(k.State), got[i].State)
		assert.True(t, k.CreatedAt.Equal(got[i].CreatedAt), "created_at of %s", k.ID)
		assert.True(t, k.ActivatesAt.Equal(got[i].ActivatesAt), "activates_at of %s", k.ID)
	}
	assert.Equal(t, "retired", got[0].State)
	require.NotNil(t, got[0].RetiredAt)
	assert.True(t, want[0].RetiredAt.Equal(*got[0].RetiredAt))
	assert.Equal(t, "current", got[1].State)
	assert.Nil(t, got[1].RetiredAt)

	assert.Equal(t, map[string]string{got[0].ID: "retired", got[1].ID: "current"}, keyStates(t, dir), "the table says the same")

	code, stdout, _ = runCLI(t, "keys", "list", "--json", "--keys-dir", t.TempDir())
	require.Equal(t, 0, code)
	assert.Equal(t, "[]\n", stdout, "no keys: an empty array, not null")
}

func TestParseOperands(t *testing.T) {
	tests := []struct {
		name         string
		giveArgs     []string
		wantOperands []string
		wantDir      string
		wantJSON     bool
		wantUsage    bool // a cli.Usage error
		wantHelp     bool
	}{
		{name: "ok/operand_after_flags", giveArgs: []string{"--dir", "d", "k"}, wantOperands: []string{"k"}, wantDir: "d"},
		{name: "ok/operand_before_flags", giveArgs: []string{"k", "-dir=d"}, wantOperands: []string{"k"}, wantDir: "d"},
		{name: "ok/dash_operand", giveArgs: []string{"-k", "--json", "--dir", "d"}, wantOperands: []string{"-k"}, wantDir: "d", wantJSON: true},
		{name: "ok/bool_flag_takes_no_value", giveArgs: []string{"--json", "k"}, wantOperands: []string{"k"}, wantJSON: true},
		{name: "ok/value_starting_with_dash", giveArgs: []string{"--dir", "-d", "k"}, wantOperands: []string{"k"}, wantDir: "-d"},
		{name: "ok/end_of_flags", giveArgs: []string{"--", "--dir", "-"}, wantOperands: []string{"--dir", "-"}},
		{name: "ok/unknown_flag_is_an_operand", giveArgs: []string{"--no-such-flag"}, wantOperands: []string{"--no-such-flag"}},
		{name: "fail/missing_value", giveArgs: []string{"k", "--dir"}, wantUsage: true},
		{name: "fail/help", giveArgs: []string{"k", "-h"}, wantHelp: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			dir := fs.String("dir", "", "")
			asJSON := fs.Bool("json", false, "")

			operands, err := parseOperands(fs, tt.giveArgs)

			if tt.wantUsage {
				require.True(t, cli.IsUsage(err), "a usage error: %v", err)
				return
			}
			if tt.wantHelp {
				require.ErrorIs(t, err, flag.ErrHelp)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.wantOperands, operands)
			assert.Equal(t, tt.wantDir, *dir)
			assert.Equal(t, tt.wantJSON, *asJSON)
		})
	}
}

// TestHelp: help, -h and --help exit 0 for the program and every command,
// on stdout, each command with its usage line and only its own flags.
func TestHelp(t *testing.T) {
	commands := program(io.Discard, io.Discard).CommandNames()
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		code, stdout, stderr := runCLI(t, args...)
		assert.Equal(t, 0, code, "%v", args)
		assert.Empty(t, stderr)
		for _, c := range commands {
			assert.Regexp(t, `(?m)^  `+c+` `, stdout, "%v lists %s", args, c)
		}
	}
	wantFlags := map[string][]string{
		"mint":          {"aud", "issuer", "keys-dir", "nonce", "param", "sub", "task-action", "task-id", "ttl"},
		"keys generate": {"alg", "keys-dir"},
		"keys list":     {"json", "keys-dir"},
		"keys rotate":   {"alg", "jwks-max-age", "keys-dir", "publish-for"},
		"keys revoke":   {"key-alg", "keys-dir", "revocation-dir"},
		"revoke-token":  {"exp", "jti", "keys-dir", "revocation-dir"},
	}
	wantUsage := map[string]string{
		"serve":       "usage: server1 [serve] [flags]",
		"keys revoke": "usage: server1 keys revoke [flags] [--] KID",
		"mint":        "usage: server1 mint [flags]",
	}
	for _, c := range commands {
		words := strings.Fields(c)
		for _, args := range [][]string{append([]string{"help"}, words...), append(slices.Clone(words), "-h"), append(slices.Clone(words), "--help")} {
			t.Run(strings.Join(args, "_"), func(t *testing.T) {
				code, stdout, stderr := runCLI(t, args...)

				require.Equal(t, 0, code, stderr)
				assert.Empty(t, stderr)
				first := strings.SplitN(stdout, "\n", 2)[0]
				assert.Equal(t, cmp.Or(wantUsage[c], "usage: server1 "+c+" [flags]"), first)
				if want, ok := wantFlags[c]; ok {
					assert.Equal(t, want, helpFlags(stdout))
				}
			})
		}
	}
	code, stdout, _ := runCLI(t, "help", "keys")
	assert.Equal(t, 0, code)
	assert.Contains(t, stdout, "usage: server1 keys SUBCOMMAND [flags]")
	assert.Contains(t, stdout, "  keys rotate ")

	code, stdout, stderr := runCLI(t, "help", "frobnicate")
	assert.Equal(t, 2, code)
	assert.Empty(t, stdout)
	assert.Contains(t, stderr, `server1 help: unknown command "frobnicate"`)
}

// helpFlags are the flags a command's help lists.
func helpFlags(help string) []string {
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`).FindAllStringSubmatch(help, -1) {
		names = append(names, m[1])
	}
	return names
}

func TestVersion(t *testing.T) {
	code, stdout, stderr := runCLI(t, "--version")

	require.Equal(t, 0, code, stderr)
	assert.True(t, strings.HasPrefix(stdout, "server1 "), stdout)
	assert.Equal(t, 1, strings.Count(stdout, "\n"))
}
