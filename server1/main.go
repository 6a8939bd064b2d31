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
//	server1 mint --sub S --aud A --task-id T --task-action X [--param k=v ...] [--ttl D] [--nonce N]
//
// Every flag has an environment variable: --keys-dir is SERVER1_KEYS_DIR.
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

// usageError marks a command-line mistake (exit status 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }

const usage = `usage:
  server1 [serve] [flags]
  server1 keys generate [--alg EdDSA|ES256]
  server1 keys list [--json]
  server1 keys rotate [--alg EdDSA|ES256] [--publish-for D]
  server1 keys revoke [flags] [--] KID
  server1 revoke-token --jti J [--exp RFC3339]
  server1 mint --sub S --aud A --task-id T --task-action X [--param k=v ...] [--ttl D] [--nonce N]
Run a subcommand with -h for its flags.
`

// run dispatches the subcommand and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = runServe(ctx, args, stdout, stderr)
	case "keys":
		err = runKeys(args, stdout, stderr)
	case "mint":
		err = runMint(args, stdout, stderr)
	case "revoke-token":
		err = runRevokeToken(args, stdout, stderr)
	default:
		fmt.Fprint(stderr, usage)
		return 2
	}
	var ue usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "server1 %s: %v\n", cmd, err)
		return 2
	default:
		fmt.Fprintf(stderr, "server1 %s: %v\n", cmd, err)
		return 1
	}
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("server1 "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parse reads flags, then their environment variables; no positional
// arguments are allowed.
func parse(fs *flag.FlagSet, args []string) error {
	if err := shared.ParseFlagsAndEnv(fs, envPrefix, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
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

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := defaultConfig()
	fs := newFlagSet("serve", stderr)
	cfg.bindServe(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	level, _ := cfg.logLevel()
	log := shared.NewLogger(stderr, "server1", level, cfg.LogFormat)
	a, err := newApp(cfg, options{Logger: log})
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

func runKeys(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return usageError{errors.New("want keys generate, list, rotate or revoke")}
	}
	sub, args := args[0], args[1:]
	cfg := defaultConfig()
	fs := newFlagSet("keys "+sub, stderr)
	cfg.bindKeys(fs)
	switch sub {
	case "generate":
		alg := fs.String("alg", "", "algorithm of the new key: EdDSA or ES256 (default --key-alg)")
		if err := parse(fs, args); err != nil {
			return err
		}
		if *alg == "" {
			*alg = cfg.KeyAlg
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
	case "list":
		return runKeysList(&cfg, fs, args, stdout)
	case "rotate":
		return runKeysRotate(&cfg, fs, args, stdout)
	case "revoke":
		return runKeysRevoke(&cfg, fs, args, stdout)
	default:
		return usageError{fmt.Errorf("unknown keys subcommand %q", sub)}
	}
}

// paramFlag collects repeated --param k=v.
type paramFlag map[string]string

func (p paramFlag) String() string { return "" }

func (p paramFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return errors.New("want name=value")
	}
	if _, dup := p[k]; dup {
		return fmt.Errorf("parameter %q given twice", k)
	}
	p[k] = val
	return nil
}

// runMint signs one token with the keys directory's current key and prints
// it alone on stdout, for scripts and manual tests.
func runMint(args []string, stdout, stderr io.Writer) error {
	cfg := defaultConfig()
	fs := newFlagSet("mint", stderr)
	cfg.bindMint(fs)
	var req token.MintRequest
	params := paramFlag{}
	fs.StringVar(&req.Subject, "sub", "", "subject (user) of the token. Required.")
	fs.StringVar(&req.Audience, "aud", "", "audience (relying service identifier). Required.")
	fs.StringVar(&req.Task.ID, "task-id", "", "task id, e.g. transfer-123. Required.")
	fs.StringVar(&req.Task.Action, "task-action", "", "task action, e.g. approve. Required.")
	fs.Var(params, "param", "task parameter name=value (repeatable)")
	fs.DurationVar(&req.TTL, "ttl", 0, "token lifetime (default --token-ttl)")
	fs.StringVar(&req.Nonce, "nonce", "", "browser binding \"nonce\" (the relying service's start endpoint names it); empty: an unbound token")
	if err := parse(fs, args); err != nil {
		return err
	}
	var missing []string
	for name, v := range map[string]string{"sub": req.Subject, "aud": req.Audience, "task-id": req.Task.ID, "task-action": req.Task.Action} {
		if v == "" {
			missing = append(missing, "--"+name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return usageError{fmt.Errorf("required: %s", strings.Join(missing, ", "))}
	}
	if err := cfg.validate(); err != nil {
		return err
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
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, m.Token)
	return err
}
