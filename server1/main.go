// Command server1 is SERVER1, the issuer of the handoff demo: a customer
// portal where users sign in, see the transfers waiting for them and hand
// one over to SERVER2 with a short-lived, single-task token carried by an
// auto-submitted form. It publishes its keys as a JWKS.
//
// Usage:
//
//	server1 [serve] [flags]
//	server1 keys generate [--alg EdDSA|ES256] [--keys-dir DIR]
//	server1 keys list [--json] [--keys-dir DIR]
//	server1 keys rotate [--alg EdDSA|ES256] [--publish-for D]
//	server1 keys revoke [flags] [--] KID
//	server1 revoke-token --jti J [--exp T]
//	server1 mint --sub S --task-id T --task-action X [--aud A] [--param k=v ...] [--ttl D] [--nonce N]
//	server1 help [COMMAND]
//	server1 --version
//
// Every flag has an environment variable: --keys-dir is SERVER1_KEYS_DIR.
// A command reads the settings it has no flag for from those variables, as
// serve would: mint's default --aud is SERVER1_AUDIENCE.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/handoffbroker/handoff/broker/token"
	"github.com/handoffbroker/handoff/shared"
	"github.com/handoffbroker/handoff/shared/cli"
)

const envPrefix = "SERVER1"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	// The work is done: a late signal (a second Ctrl-C, or the SIGTERM
	// make demo forwards) must not kill the process and change its exit
	// status.
	signal.Ignore(os.Interrupt, syscall.SIGTERM)
	stop()
	os.Exit(code)
}

// run runs the command line args and returns the exit status: 0 success,
// 1 failure, 2 bad usage.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return program(stdout, stderr).Run(ctx, args, stdout, stderr)
}

// program is SERVER1's command line.
func program(stdout, stderr io.Writer) *cli.Program {
	return &cli.Program{
		Name:    "server1",
		Summary: "the issuer: a portal that hands tasks to SERVER2 with short-lived single-use tokens",
		Default: "serve",
		Commands: []cli.Command{
			{Name: "serve", Summary: "run SERVER1 (the default command)", Setup: func(fs *flag.FlagSet) func(context.Context, []string) error {
				cfg := defaultConfig()
				cfg.bindServe(fs)
				return func(ctx context.Context, args []string) error { return runServe(ctx, &cfg, fs, args, stdout, stderr) }
			}},
			{Name: "keys generate", Summary: "add a signing key to the keys directory; it signs from now on", Setup: setupKeysGenerate(stdout)},
			{Name: "keys list", Summary: "list the keys of the keys directory (no key material)", Setup: setupKeysList(stdout)},
			{Name: "keys rotate", Summary: "publish a next key now; it signs after --publish-for", Setup: setupKeysRotate(stdout)},
			{Name: "keys revoke", Operands: "[--] KID", Summary: "withdraw a compromised key at once (revocation list, JWKS, replacement)", Setup: setupKeysRevoke(stdout)},
			{Name: "revoke-token", Summary: "withdraw one token by its jti", Setup: setupRevokeToken(stdout)},
			{Name: "mint", Summary: "print one token signed with the current key, for scripts and tests", Setup: setupMint(stdout),
				Help: "The token is printed alone on stdout: treat it as a password."},
		},
	}
}

// configured is SERVER1's configuration as the environment sets it
// (SERVER1_*, defaults otherwise): the settings a command reads without a
// flag of its own, as serve would read them. all holds every serve flag,
// bound to cfg, for expose.
func configured() (cfg *Config, all *flag.FlagSet, err error) {
	cfg = new(Config)
	*cfg = defaultConfig()
	all = flag.NewFlagSet("server1", flag.ContinueOnError)
	all.SetOutput(io.Discard)
	cfg.bindServe(all)
	return cfg, all, shared.ParseFlagsAndEnv(all, envPrefix, nil)
}

// expose registers the named flags of all on fs: a command shows and
// takes only its own flags, with serve's names, meanings and variables.
func expose(fs, all *flag.FlagSet, names ...string) {
	for _, name := range names {
		f := all.Lookup(name)
		fs.Var(f.Value, f.Name, f.Usage)
	}
}

// parse reads flags, then their environment variables; no positional
// arguments are allowed.
func parse(fs *flag.FlagSet, args []string) error {
	return cli.Parse(fs, envPrefix, args)
}

// parseOperands reads the flags fs defines, wherever they stand among
// args, then their environment variables, and returns the other arguments
// (the operands) in order. An argument is a flag only when fs defines its
// name, and every argument after "--" is an operand, so an operand may
// start with '-': a key id is a base64url thumbprint, and about 1 in 64
// does. A misspelt flag therefore comes back as an operand; callers
// refuse operands they do not expect.
func parseOperands(fs *flag.FlagSet, args []string) ([]string, error) {
	var flags, operands []string
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			operands = append(operands, args[i+1:]...)
			break
		}
		f, inline, ok := lookupFlag(fs, arg)
		if !ok {
			operands = append(operands, arg)
			continue
		}
		flags = append(flags, arg)
		if !inline && !isBoolFlag(f) && i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	if err := parse(fs, flags); err != nil {
		return nil, err
	}
	return operands, nil
}

// lookupFlag reports whether arg is a flag fs understands: -name or
// --name, with or without =value, or the -h and -help every FlagSet
// answers. f is nil for -h and -help; inline tells whether the value is
// in arg.
func lookupFlag(fs *flag.FlagSet, arg string) (f *flag.Flag, inline, ok bool) {
	name, found := strings.CutPrefix(arg, "-")
	if !found {
		return nil, false, false
	}
	name = strings.TrimPrefix(name, "-")
	name, _, inline = strings.Cut(name, "=")
	if f := fs.Lookup(name); f != nil && name != "" {
		return f, inline, true
	}
	return nil, inline, name == "h" || name == "help"
}

// isBoolFlag reports whether f takes no separate value, as -h does not.
func isBoolFlag(f *flag.Flag) bool {
	if f == nil {
		return true
	}
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

func runServe(ctx context.Context, cfg *Config, fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	level, _ := cfg.logLevel()
	log := shared.NewLogger(stderr, "server1", level, cfg.LogFormat)
	a, err := newApp(*cfg, options{Logger: log})
	if err != nil {
		return err
	}
	if a.demoUsers {
		fmt.Fprintln(stdout, "SERVER1 demo users (set --users-file to replace them):")
		for _, d := range demoUsers {
			fmt.Fprintf(stdout, "  %s / %s\n", d.username, d.password)
		}
	}
	if cfg.APIKey != "" && len(cfg.APIKey) < 16 {
		log.Warn("the API key is shorter than 16 characters: easy to guess")
	}
	return a.run(ctx, func(bound string) {
		fmt.Fprintf(stdout, "SERVER1 listening on %s://%s\n", cfg.serverConfig().Scheme(), displayAddr(cfg.Addr, bound))
	})
}

// displayAddr is the configured host with the bound port, so that
// "localhost:0" prints as "localhost:41234".
func displayAddr(configured, bound string) string {
	host, _, err := net.SplitHostPort(configured)
	if err != nil || host == "" {
		host = "localhost"
	}
	_, port, err := net.SplitHostPort(bound)
	if err != nil {
		return bound
	}
	return net.JoinHostPort(host, port)
}

// setupKeysGenerate is `keys generate`.
func setupKeysGenerate(stdout io.Writer) func(*flag.FlagSet) func(context.Context, []string) error {
	return func(fs *flag.FlagSet) func(context.Context, []string) error {
		cfg, all, envErr := configured()
		expose(fs, all, "keys-dir")
		alg := fs.String("alg", cfg.KeyAlg, "algorithm of the new key: EdDSA or ES256 (default: key-alg, SERVER1_KEY_ALG)")
		return func(_ context.Context, args []string) error {
			if err := parseConfigured(fs, args, envErr); err != nil {
				return err
			}
			ring, err := cfg.openKeyring(time.Now)
			if err != nil {
				return err
			}
			info, err := ring.Generate(token.Algorithm(*alg), time.Time{})
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "generated key %s (%s), %s from %s\n", info.ID, info.Algorithm, info.State, info.ActivatesAt.UTC().Format(time.RFC3339))
			return nil
		}
	}
}

// parseConfigured is parse for a command built on configured: a bad
// SERVER1_* variable is reported first.
func parseConfigured(fs *flag.FlagSet, args []string, envErr error) error {
	if err := parse(fs, args); err != nil {
		return err
	}
	if envErr != nil {
		return cli.Usage(envErr)
	}
	return nil
}

// setupMint is `mint`: it signs one token with the keys directory's
// current key and prints it alone on stdout, for scripts and manual
// tests. --aud defaults to the configured audience (SERVER1_AUDIENCE, or
// the first entry of SERVER1_AUDIENCES_FILE) and --ttl to the configured
// lifetime (SERVER1_TOKEN_TTL), bounded by SERVER1_MAX_TOKEN_TTL.
func setupMint(stdout io.Writer) func(*flag.FlagSet) func(context.Context, []string) error {
	return func(fs *flag.FlagSet) func(context.Context, []string) error {
		cfg, all, envErr := configured()
		expose(fs, all, "keys-dir", "issuer")
		var req token.MintRequest
		params := cli.Params{}
		fs.StringVar(&req.Subject, "sub", "", "subject (user) of the token. Required.")
		fs.StringVar(&req.Audience, "aud", "", fmt.Sprintf("audience (relying service identifier) (default: the configured audience, SERVER1_AUDIENCE: %s)", cfg.Audience))
		fs.StringVar(&req.Task.ID, "task-id", "", "task id, e.g. transfer-123. Required.")
		fs.StringVar(&req.Task.Action, "task-action", "", "task action, e.g. approve. Required.")
		fs.Var(params, "param", "task parameter name=value (repeatable)")
		fs.DurationVar(&req.TTL, "ttl", cfg.TokenTTL, fmt.Sprintf("token lifetime, at most %v (SERVER1_MAX_TOKEN_TTL) (default: SERVER1_TOKEN_TTL)", cfg.MaxTokenTTL))
		fs.StringVar(&req.Nonce, "nonce", "", "browser binding \"nonce\" (the relying service's start endpoint names it); empty: an unbound token")
		return func(_ context.Context, args []string) error {
			if err := parseConfigured(fs, args, envErr); err != nil {
				return err
			}
			return runMint(cfg, req, params, stdout)
		}
	}
}

func runMint(cfg *Config, req token.MintRequest, params cli.Params, stdout io.Writer) error {
	var missing []string
	for name, v := range map[string]string{"sub": req.Subject, "task-id": req.Task.ID, "task-action": req.Task.Action} {
		if v == "" {
			missing = append(missing, "--"+name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return cli.Usagef("required: %s", strings.Join(missing, ", "))
	}
	if req.TTL > cfg.MaxTokenTTL || req.TTL < time.Second {
		return cli.Usagef("--ttl %v: want between 1s and the longest lifetime SERVER1 signs, %v (SERVER1_MAX_TOKEN_TTL)", req.TTL, cfg.MaxTokenTTL)
	}
	cfg.TokenTTL = req.TTL
	if err := cfg.validate(); err != nil {
		return err
	}
	if req.Audience == "" {
		reg, err := loadRegistry(*cfg)
		if err != nil {
			return err
		}
		req.Audience = reg.primary().ID
	}
	if len(params) > 0 {
		req.Task.Params = params
	}
	ring, err := cfg.openKeyring(time.Now)
	if err != nil {
		return err
	}
	if len(ring.Keys()) == 0 {
		return fmt.Errorf("no signing key in %s: run `server1 keys generate` or start the server once", cfg.KeysDir)
	}
	minter, err := token.NewMinter(token.MinterConfig{
		Issuer: cfg.Issuer, Keys: ring, DefaultTTL: cfg.TokenTTL, MaxTTL: cfg.MaxTokenTTL,
	})
	if err != nil {
		return err
	}
	m, err := minter.Mint(req)
	var bad *token.RequestError
	if errors.As(err, &bad) {
		return cli.Usage(bad.Err)
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, m.Token)
	return err
}
