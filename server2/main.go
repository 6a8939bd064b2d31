// Command server2 is the relying service of the handoff demo ("Payments"):
// it accepts handoff tokens from SERVER1 by form POST or as bearer tokens,
// verifies them against SERVER1's published keys, and performs the one task
// each token names, once.
//
// Usage:
//
//	server2 [serve] [flags]          run the service
//	server2 verify [flags] [FILE|-]  explain whether a token would be accepted
//	server2 inspect [flags] [FILE|-] decode a token without verifying it
//	server2 help [COMMAND]
//	server2 --version
//
// verify and inspect read the token from FILE or stdin, never from the
// command line. Every flag has an environment variable: --jwks-url is
// SERVER2_JWKS_URL.
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
	"syscall"

	"github.com/handoffbroker/handoff/shared"
	"github.com/handoffbroker/handoff/shared/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	// The work is done: a late signal (a second Ctrl-C, or the SIGTERM
	// make demo forwards) must not kill the process and change its exit
	// status.
	signal.Ignore(os.Interrupt, syscall.SIGTERM)
	stop()
	os.Exit(code)
}

// run runs the command line args and returns the exit status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return program(stdin, stdout, stderr).Run(ctx, args, stdout, stderr)
}

// program is SERVER2's command line.
func program(stdin io.Reader, stdout, stderr io.Writer) *cli.Program {
	return &cli.Program{
		Name:    "server2",
		Summary: "the relying service: accepts SERVER1's handoff tokens and performs the one task each names",
		Default: "serve",
		Commands: []cli.Command{
			{Name: "serve", Summary: "run SERVER2 (the default command)", Setup: func(fs *flag.FlagSet) func(context.Context, []string) error {
				var cfg Config
				registerFlags(fs, &cfg)
				return func(ctx context.Context, args []string) error {
					if err := cli.Parse(fs, envPrefix, args); err != nil {
						return err
					}
					if err := cfg.validate(); err != nil {
						return cli.Usage(err)
					}
					return serve(ctx, cfg, stdout, stderr)
				}
			}},
			verifyCommand(stdin, stdout, stderr),
			inspectCommand(stdin, stdout, stderr),
		},
	}
}

// parseFlags reads fs's flags, then their environment variables, and
// leaves the operands in fs.Args().
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := shared.ParseFlagsAndEnv(fs, envPrefix, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return cli.Usage(err)
	}
	return nil
}

func serve(ctx context.Context, cfg Config, stdout, stderr io.Writer) error {
	log := shared.NewLogger(stderr, "server2", cfg.LogLevel, cfg.LogFormat)
	app, err := NewApp(cfg, Options{Logger: log})
	if err != nil {
		return err
	}
	defer app.Close()
	app.Start(ctx)
	if cfg.PprofAddr != "" {
		go func() {
			if err := shared.ServePprof(ctx, cfg.PprofAddr, log, nil); err != nil {
				log.Error("pprof server stopped", "error", err.Error())
			}
		}()
	}
	scfg := shared.ServerConfig{Addr: cfg.Addr, TLSCertFile: cfg.TLSCert, TLSKeyFile: cfg.TLSKey}
	err = shared.Serve(ctx, app.echo, scfg, log, func(bound string) {
		fmt.Fprintf(stdout, "SERVER2 listening on %s://%s\n", scfg.Scheme(), displayAddr(cfg.Addr, bound))
	})
	if err != nil {
		log.Error("server stopped", "error", err.Error())
		return cli.Exit(cli.ExitFailure, nil)
	}
	return nil
}

// displayAddr is the configured host with the bound port, so
// --addr 127.0.0.1:0 prints the port chosen. Without a configured host it
// is the bound address.
func displayAddr(configured, bound string) string {
	host, _, err := net.SplitHostPort(configured)
	_, port, err2 := net.SplitHostPort(bound)
	if err != nil || err2 != nil || host == "" {
		return bound
	}
	return net.JoinHostPort(host, port)
}
