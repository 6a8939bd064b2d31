package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/handoffbroker/handoff/broker/token"
	"github.com/handoffbroker/handoff/shared/cli"
)

// unverifiedWarning heads inspect's output.
const unverifiedWarning = "decoded without any check: the signature, issuer, audience, times and revocation are NOT verified, and anyone can write these values; run server2 verify to check the token"

// inspectReport is inspect's --json output.
type inspectReport struct {
	Verified       bool                  `json:"verified"`
	Warning        string                `json:"warning"`
	Now            time.Time             `json:"now"`
	Header         map[string]any        `json:"header,omitempty"`
	Claims         map[string]any        `json:"claims,omitempty"`
	Times          map[string]timeReport `json:"times,omitempty"`
	SignatureBytes int                   `json:"signature_bytes,omitempty"`
	Error          string                `json:"error,omitempty"`
	Stripped       []string              `json:"stripped,omitempty"`
	Hints          []string              `json:"hints,omitempty"`
}

// inspectCommand is `server2 inspect`.
func inspectCommand(stdin io.Reader, stdout, stderr io.Writer) cli.Command {
	return cli.Command{
		Name:     "inspect",
		Operands: "[FILE|-]",
		Summary:  "decode a token WITHOUT verifying it: every line is labelled UNVERIFIED",
		Help: `The token is read from FILE, or from stdin without one (or with -), never
from the command line, where other users (ps) and shell history see it.
Surrounding whitespace and quotes and a "Bearer " prefix are stripped (a
note says so); other paste mistakes get a hint. The signature is never
printed.

Exit status: 0 decoded, 1 not decodable as a JWT, 2 bad usage.`,
		Setup: func(fs *flag.FlagSet) func(context.Context, []string) error {
			asJSON := fs.Bool("json", false, "print one JSON object (verified is always false) instead of lines")
			return func(_ context.Context, args []string) error {
				if err := parseFlags(fs, args); err != nil {
					return err
				}
				in, err := readTokenInput(fs.Args(), stdin, stderr)
				if err != nil {
					return err
				}
				return runInspect(in, *asJSON, time.Now(), stdout, stderr)
			}
		},
	}
}

func runInspect(in tokenInput, asJSON bool, now time.Time, stdout, stderr io.Writer) error {
	u, decodeErr := decodeUnverified(in.Token)
	leeway := token.DefaultLeeway
	if asJSON {
		r := inspectReport{Warning: "UNVERIFIED: " + unverifiedWarning, Now: now.UTC(), Header: u.Header, Claims: u.Claims,
			Times: claimTimes(u.Claims, now, leeway), SignatureBytes: u.SignatureBytes, Stripped: in.Stripped, Hints: in.Hints}
		if decodeErr != nil {
			r.Error = decodeErr.Error()
		}
		if err := writeJSON(stdout, r); err != nil {
			return err
		}
	} else {
		printNotes(stderr, in)
		fmt.Fprintf(stdout, "UNVERIFIED: %s\n", unverifiedWarning)
		if decodeErr == nil {
			for _, k := range orderedKeys(u.Header, headerOrder) {
				fmt.Fprintf(stdout, "UNVERIFIED header %-6s %s\n", display(k), display(u.Header[k]))
			}
			for _, k := range orderedKeys(u.Claims, claimOrder) {
				fmt.Fprintf(stdout, "UNVERIFIED claim  %-6s %s\n", display(k), claimLine(k, u.Claims[k], now, leeway))
			}
			fmt.Fprintf(stdout, "UNVERIFIED signature: %d bytes, not checked\n", u.SignatureBytes)
		}
	}
	if decodeErr != nil {
		return cli.Exit(cli.ExitFailure, fmt.Errorf("cannot decode the token: %w", decodeErr))
	}
	return nil
}
