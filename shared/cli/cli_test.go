package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestVersion(t *testing.T) {
	tests := []struct {
		name string
		give func() (*debug.BuildInfo, bool)
		want string
	}{
		{
			name: "ok/vcs",
			give: func() (*debug.BuildInfo, bool) {
				return &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.2.3"}, Settings: []debug.BuildSetting{
					{Key: "vcs.revision", Value: "5049e84"}, {Key: "vcs.time", Value: "2026-12-01T22:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}, true
			},
			want: "prog v1.2.3 revision 5049e84 (modified) committed 2026-12-01T22:00:00Z built with go1.26.0",
		},
		{
			name: "ok/buildvcs_false",
			give: func() (*debug.BuildInfo, bool) {
				return &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}}, true
			},
			want: "prog (devel) built with go1.26.0",
		},
		{name: "ok/no_build_info", give: func() (*debug.BuildInfo, bool) { return nil, false }, want: "prog (no build information)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &Program{Name: "prog", BuildInfo: tt.give}
			assert.Equal(t, tt.want, p.Version())
		})
	}
}

// TestRun_ErrorPrefix: each error is printed once with the one prefix
// "PROG COMMAND: ", and its class decides the exit status.
func TestRun_ErrorPrefix(t *testing.T) {
	tests := []struct {
		name       string
		giveErr    error
		wantCode   int
		wantStderr string
	}{
		{name: "ok", giveErr: nil, wantCode: 0, wantStderr: ""},
		{name: "fail/error", giveErr: errors.New("disk full"), wantCode: 1, wantStderr: "prog do: disk full\n"},
		{name: "fail/usage", giveErr: Usagef("--n %d: too big", 9), wantCode: 2,
			wantStderr: "prog do: --n 9: too big\nusage: prog [do] [flags]\nRun 'prog help do' for its flags.\n"},
		{name: "fail/joined", giveErr: errors.Join(errors.New("a is bad"), errors.New("b is bad")), wantCode: 1, wantStderr: "prog do: a is bad\nprog do: b is bad\n"},
		{name: "fail/exit_silent", giveErr: Exit(7, nil), wantCode: 7, wantStderr: ""},
		{name: "fail/exit_with_error", giveErr: Exit(3, fmt.Errorf("wrapped: %w", errors.New("x"))), wantCode: 3, wantStderr: "prog do: wrapped: x\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &Program{Name: "prog", Default: "do", Commands: []Command{{Name: "do", Setup: func(fs *flag.FlagSet) func(context.Context, []string) error {
				fs.Int("n", 0, "a number")
				return func(context.Context, []string) error { return tt.giveErr }
			}}}}
			var stdout, stderr bytes.Buffer

			code := p.Run(context.Background(), []string{"do"}, &stdout, &stderr)

			assert.Equal(t, tt.wantCode, code)
			assert.Equal(t, tt.wantStderr, stderr.String())
			assert.Empty(t, stdout.String())
		})
	}
}

func TestParams(t *testing.T) {
	p := Params{}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Var(p, "param", "")

	assert.NoError(t, fs.Parse([]string{"--param", "amount=250.00", "--param", "payee=ACME = Corp"}))
	assert.Equal(t, Params{"amount": "250.00", "payee": "ACME = Corp"}, p)
	assert.Error(t, fs.Parse([]string{"--param", "amount=1"}), "a name given twice")
	assert.Error(t, p.Set("novalue"))
	assert.Error(t, p.Set("=v"))
}

// TestRun_TokenNotEchoed: a token pasted where a command name, a
// subcommand or an argument belongs is refused without being printed, and
// so is any word too long to be one; other mistaken words are quoted.
func TestRun_TokenNotEchoed(t *testing.T) {
	const tok = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXNlY3JldA"
	const jws = "aGVhZGVyaGVhZGVyaGVhZGVy.cGF5bG9hZHBheWxvYWQ.c2lnbmF0dXJlc2lnbmF0dXJl" // no eyJ, two dots
	long := strings.Repeat("x", 65)
	tests := []struct {
		name       string
		giveArgs   []string
		wantStderr string
		wantHidden string
	}{
		{name: "fail/token_as_command", giveArgs: []string{tok}, wantStderr: "prog: unknown command (not shown: it looks like a token;", wantHidden: tok},
		{name: "fail/jws_as_command", giveArgs: []string{jws}, wantStderr: "prog: unknown command (not shown: it looks like a token;", wantHidden: jws},
		{name: "fail/token_as_subcommand", giveArgs: []string{"keys", tok}, wantStderr: "prog: unknown keys subcommand (not shown: it looks like a token;", wantHidden: tok},
		{name: "fail/token_after_help", giveArgs: []string{"help", tok}, wantStderr: "prog help: unknown command (not shown: it looks like a token;", wantHidden: tok},
		{name: "fail/token_as_argument", giveArgs: []string{"do", tok}, wantStderr: "prog do: unexpected argument (not shown: it looks like a token;", wantHidden: tok},
		{name: "fail/long_word", giveArgs: []string{long}, wantStderr: "prog: unknown command (not shown: 65 bytes)\n", wantHidden: long},
		{name: "fail/short_word_quoted", giveArgs: []string{"sevre"}, wantStderr: `prog: unknown command "sevre"` + "\n"},
		{name: "fail/control_characters_escaped", giveArgs: []string{"do", "x\x1b[2J"}, wantStderr: `prog do: unexpected argument "x\x1b[2J"` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &Program{Name: "prog", Default: "do", Commands: []Command{
				{Name: "do", Setup: func(fs *flag.FlagSet) func(context.Context, []string) error {
					return func(_ context.Context, args []string) error { return Parse(fs, "PROG_", args) }
				}},
				{Name: "keys list", Setup: func(fs *flag.FlagSet) func(context.Context, []string) error {
					return func(context.Context, []string) error { return nil }
				}},
			}}
			var stdout, stderr bytes.Buffer

			code := p.Run(context.Background(), tt.giveArgs, &stdout, &stderr)

			assert.Equal(t, ExitUsage, code)
			assert.Contains(t, stderr.String(), tt.wantStderr)
			if tt.wantHidden != "" {
				assert.NotContains(t, stderr.String()+stdout.String(), tt.wantHidden)
				assert.NotContains(t, stderr.String()+stdout.String(), tt.wantHidden[len(tt.wantHidden)-12:], "not even part of it")
			}
		})
	}
}
