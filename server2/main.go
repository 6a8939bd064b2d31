// Command server2 is the relying service of the handoff demo ("Payments"):
// it accepts handoff tokens from SERVER1 by form POST or as bearer tokens,
// verifies them against SERVER1's published keys, and performs the one task
// each token names, once.
//
// Usage:
//
//	server2 [serve] [flags]          run the service
//	server2 verify [flags] TOKEN|-   explain whether a token would be accepted
//
// Every flag has an environment variable: --jwks-url is SERVER2_JWKS_URL.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/handoffbroker/handoff/shared"
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

// run dispatches the subcommand and returns the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, stdout, stderr)
	case "verify":
		return verifyCommand(ctx, args, stdin, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "server2: unknown command %q\nusage: server2 [serve] [flags] | server2 verify [flags] TOKEN|-\n", cmd)
		return 2
	}
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, rest, err := parseConfig("server2", args, stderr, nil)
	if err != nil {
		fmt.Fprintf(stderr, "server2: %v\n", err)
		return 2
	}
	if len(rest) > 0 {
		fmt.Fprintf(stderr, "server2: unexpected arguments %q\n", rest)
		return 2
	}
	log := shared.NewLogger(stderr, "server2", cfg.LogLevel, cfg.LogFormat)
	app, err := NewApp(cfg, Options{Logger: log})
	if err != nil {
		fmt.Fprintf(stderr, "server2: %v\n", err)
		return 1
	}
	defer app.Close()
	app.Start(ctx)
	scfg := shared.ServerConfig{Addr: cfg.Addr, TLSCertFile: cfg.TLSCert, TLSKeyFile: cfg.TLSKey}
	err = shared.Serve(ctx, app.echo, scfg, log, func(bound string) {
		fmt.Fprintf(stdout, "SERVER2 listening on %s://%s\n", scfg.Scheme(), displayAddr(cfg.Addr, bound))
	})
	if err != nil {
		log.Error("server stopped", "error", err.Error())
		return 1
	}
	return 0
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
