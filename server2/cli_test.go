package main

import (
	"io"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// helpFlags are the flags a command's help lists.
func helpFlags(help string) []string {
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`).FindAllStringSubmatch(help, -1) {
		names = append(names, m[1])
	}
	return names
}

// TestHelp: help, -h and --help exit 0 for the program and every command,
// on stdout, each command with its usage line and only its own flags.
func TestHelp(t *testing.T) {
	commands := program(nil, io.Discard, io.Discard).CommandNames()
	require.ElementsMatch(t, []string{"serve", "verify", "inspect"}, commands)
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		code, stdout, stderr := runServer2(t, "", args...)
		assert.Equal(t, 0, code, "%v", args)
		assert.Empty(t, stderr)
		for _, c := range commands {
			assert.Regexp(t, `(?m)^  `+c+` `, stdout, "%v lists %s", args, c)
		}
	}
	wantFlags := map[string][]string{
		"verify": {"action", "audience", "fetch-allowed-hosts", "json", "jwks-timeout", "jwks-url", "keys-file", "leeway",
			"max-token-lifetime", "param", "revocation-url", "task-id", "trusted-issuer"},
		"inspect": {"json"},
	}
	wantUsage := map[string]string{
		"serve":   "usage: server2 [serve] [flags]",
		"verify":  "usage: server2 verify [flags] [FILE|-]",
		"inspect": "usage: server2 inspect [flags] [FILE|-]",
	}
	for _, c := range commands {
		for _, args := range [][]string{{"help", c}, {c, "-h"}, {c, "--help"}} {
			t.Run(strings.Join(args, "_"), func(t *testing.T) {
				code, stdout, stderr := runServer2(t, "", args...)

				require.Equal(t, 0, code, stderr)
				assert.Empty(t, stderr)
				assert.Equal(t, wantUsage[c], lines(stdout)[0])
				if want, ok := wantFlags[c]; ok {
					assert.Equal(t, want, helpFlags(stdout))
				}
			})
		}
	}
	_, serveHelp, _ := runServer2(t, "", "help", "serve")
	assert.Contains(t, helpFlags(serveHelp), "session-ttl")
	assert.NotContains(t, helpFlags(serveHelp), "keys-file", "verify's flag is verify's only")

	code, stdout, stderr := runServer2(t, "", "help", "frobnicate")
	assert.Equal(t, 2, code)
	assert.Empty(t, stdout)
	assert.Contains(t, stderr, `server2 help: unknown command "frobnicate"`)
}

func TestVersion(t *testing.T) {
	code, stdout, stderr := runServer2(t, "", "--version")

	require.Equal(t, 0, code, stderr)
	assert.True(t, strings.HasPrefix(stdout, "server2 "), stdout)
	assert.Equal(t, 1, strings.Count(stdout, "\n"))
}

func TestExitStatus(t *testing.T) {
	tests := []struct {
		name     string
		giveArgs []string
		wantCode int
	}{
		{name: "usage/unknown_command", giveArgs: []string{"frobnicate"}, wantCode: 2},
		{name: "usage/serve_unknown_flag", giveArgs: []string{"serve", "--no-such-flag"}, wantCode: 2},
		{name: "usage/serve_operand", giveArgs: []string{"serve", "extra"}, wantCode: 2},
		{name: "usage/serve_bad_config", giveArgs: []string{"--leeway", "0s"}, wantCode: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runServer2(t, "", tt.giveArgs...)

			assert.Equal(t, tt.wantCode, code)
			assert.Empty(t, stdout)
			first := lines(stderr)[0]
			assert.Regexp(t, `^server2( serve)?: `, first)
			assert.False(t, slices.Contains(strings.Fields(first)[1:], "server2:"), "one prefix: %s", first)
		})
	}
}
