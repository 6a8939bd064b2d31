package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/handoffbroker/handoff/broker"
	"github.com/handoffbroker/handoff/broker/keys"
	"github.com/handoffbroker/handoff/broker/token"
	"github.com/handoffbroker/handoff/shared"
)

// maxTokenInput caps what verify reads from stdin.
const maxTokenInput = 64 << 10

// Exit codes of the verify command.
const (
	verifyValid       = 0 // every check serve runs passed (single use aside)
	verifyRejected    = 1 // a check failed: SERVER2 refuses the token
	verifyUsage       = 2 // bad flags, configuration or input
	verifyUnconfirmed = 3 // the checks that ran passed, but one could not run
)

// verifyCommand runs `server2 verify [flags] TOKEN|-`: it explains, check
// by check, whether SERVER2 would accept TOKEN, without consuming it. It
// runs the checks serve runs, revocation included, on an explain-only
// broker.RelyingParty configured as serve's and refreshed once (the JWKS
// and list fetched as serve finds them), and names each check it could not
// run. It returns verifyValid, verifyRejected, verifyUsage or
// verifyUnconfirmed. The token is never printed.
func verifyCommand(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var keysFile string
	cfg, rest, err := parseConfig("server2 verify", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&keysFile, "keys-file", "", "a JWK Set or single public JWK file to verify with, instead of fetching SERVER1's JWKS")
	})
	if err != nil {
		fmt.Fprintf(stderr, "server2 verify: %v\n", err)
		return verifyUsage
	}
	if len(rest) != 1 {
		fmt.Fprintln(stderr, "usage: server2 verify [flags] TOKEN   (or - to read the token from stdin)")
		return verifyUsage
	}
	tok := rest[0]
	if tok == "-" {
		b, err := io.ReadAll(io.LimitReader(stdin, maxTokenInput))
		if err != nil {
			fmt.Fprintf(stderr, "server2 verify: reading stdin: %v\n", err)
			return verifyUsage
		}
		tok = string(bytes.TrimSpace(b))
	}

	bc := cfg.brokerConfig()
	bc.ExplainOnly = true
	bc.Logger = slog.New(slog.DiscardHandler)
	if keysFile != "" {
		if bc.Keys, err = keysFromFile(keysFile); err != nil {
			fmt.Fprintf(stderr, "server2 verify: %v\n", err)
			return verifyUsage
		}
		bc.JWKSURL = ""
	}
	rp, err := broker.New(bc)
	if err != nil {
		fmt.Fprintf(stderr, "server2 verify: %v\n", err)
		return verifyUsage
	}
	defer rp.Close()
	var refresh broker.RefreshError
	if err := rp.Refresh(ctx); err != nil {
		var re *broker.RefreshError
		if !errors.As(err, &re) {
			fmt.Fprintf(stderr, "server2 verify: %v\n", err)
			return verifyUsage
		}
		refresh = *re
		reportRefresh(stderr, refresh)
	}

	ex := rp.Explain(ctx, tok, token.Expect{AnyTask: true})
	for _, st := range ex.Steps {
		if st.Err == nil {
			fmt.Fprintf(stdout, "✓ %s\n", st.Name)
			continue
		}
		fmt.Fprintf(stdout, "✗ %s: %s\n", stepLabel(st), plainWords(st))
	}
	if ex.Err != nil {
		fmt.Fprintf(stdout, "token rejected: %s\n", token.ReasonOf(ex.Err))
		return verifyRejected
	}
	revocationOff := cfg.RevocationURL == RevocationOff
	checked := slices.ContainsFunc(ex.Steps, func(st token.Step) bool { return st.Name == token.StepRevocation })
	if !checked {
		fmt.Fprintf(stdout, "? %s: not checked: %s\n", token.StepRevocation, noRevocation(revocationOff, refresh))
	}
	c := ex.Token.Claims()
	facts := fmt.Sprintf("sub=%s task=%s action=%s jti=%s kid=%s expires=%s",
		c.Subject, c.Task.ID, c.Task.Action, c.ID, c.KeyID, c.ExpiresAt.UTC().Format(time.RFC3339))
	code := verifyValid
	if !checked && !revocationOff {
		fmt.Fprintf(stdout, "token not confirmed: it passed every check that ran, but revocation was not checked; SERVER2 refuses it if it is revoked (401 revoked) or while it cannot fetch the list either (503 unavailable): %s\n", facts)
		code = verifyUnconfirmed
	} else {
		fmt.Fprintf(stdout, "token valid (not consumed): %s\n", facts)
	}
	fmt.Fprintln(stdout, "? single use: not checked here. verify never consumes a token and cannot see the running SERVER2's replay store; if this jti was already used, SERVER2 refuses the token as \"replayed\" (409).")
	return code
}

// reportRefresh tells the operator, on stderr, which of SERVER1's
// documents could not be had.
func reportRefresh(stderr io.Writer, e broker.RefreshError) {
	if e.Metadata != nil {
		fmt.Fprintf(stderr, "cannot discover SERVER1's handoff configuration: %v\n", e.Metadata)
	}
	if e.JWKS != nil {
		fmt.Fprintf(stderr, "cannot fetch SERVER1's JWKS: %v\n", e.JWKS)
	}
	if e.RevocationList != nil && !errors.Is(e.RevocationList, broker.ErrNoRevocationEndpoint) {
		fmt.Fprintf(stderr, "cannot fetch SERVER1's revocation list: %v\n", e.RevocationList)
	}
}

// noRevocation says why the revocation check did not run.
func noRevocation(off bool, e broker.RefreshError) string {
	switch {
	case off:
		return "revocation-url is off, so SERVER2 with this configuration does not check it either"
	case errors.Is(e.RevocationList, broker.ErrNoRevocationEndpoint):
		return "SERVER1's handoff configuration names no revocation_endpoint (SERVER2 with this configuration refuses every handoff as unavailable)"
	case e.RevocationList != nil:
		return "cannot fetch SERVER1's revocation list: " + e.RevocationList.Error()
	case e.Metadata != nil:
		return "cannot discover SERVER1's revocation list: " + e.Metadata.Error()
	default:
		return "no fresh revocation list is held"
	}
}

// keysFromFile reads a JWK Set, or a single public JWK, from path.
func keysFromFile(path string) (token.KeySource, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	ks, err := keys.ParseJWKS(data)
	if err != nil || len(ks) == 0 {
		var set bytes.Buffer
		set.WriteString(`{"keys":[`)
		set.Write(bytes.TrimSpace(data))
		set.WriteString(`]}`)
		ks, err = keys.ParseJWKS(set.Bytes())
	}
	if err != nil || len(ks) == 0 {
		return nil, fmt.Errorf("%s holds no usable public signing key (a JWK Set or a public JWK with kid, alg and \"use\":\"sig\")", path)
	}
	return keys.NewStatic(ks...)
}

// claimLabels names claims in plain words.
var claimLabels = map[string]string{
	"iss": "issuer", "sub": "subject", "aud": "audience", "exp": "expiry",
	"nbf": "not before", "iat": "issued at", "jti": "token id", "act": "actor",
	"task": "task", "kid": "key", "alg": "algorithm", "typ": "type",
}

// stepLabel names a failed step: the claim it failed on when there is one.
func stepLabel(st token.Step) string {
	var be *token.Error
	if (st.Name == token.StepClaims || st.Name == token.StepIssuer) && errors.As(st.Err, &be) && be.Claim != "" {
		name, _, _ := strings.Cut(be.Claim, ".")
		if l, ok := claimLabels[name]; ok {
			return l
		}
		return be.Claim
	}
	return st.Name
}

// plainWords is the public sentence for a failed step, as API clients
// read it, its reason code and, for the operator, the broker's detail
// (which never holds the token).
func plainWords(st token.Step) string {
	pub := shared.FromBroker(st.Err, false)
	s := pub.Problem().Title + " [" + pub.Code
	var be *token.Error
	if errors.As(st.Err, &be) {
		switch {
		case st.Name == token.StepKey && be.Reason == token.ReasonRevoked:
			s += ": the signing key was revoked; SERVER1 no longer publishes it"
		case be.Detail != "":
			s += ": " + be.Detail
		case be.Err != nil:
			s += ": " + be.Err.Error()
		}
	}
	return s + "]"
}
