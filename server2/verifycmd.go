package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/handoffbroker/handoff/broker"
	"github.com/handoffbroker/handoff/shared"
)

// maxTokenInput caps what verify reads from stdin.
const maxTokenInput = 64 << 10

// errExplainOnly is what the verify command's replay store answers; Explain
// never calls it.
var errExplainOnly = errors.New("server2 verify never consumes tokens")

// explainOnlyReplay satisfies the Verifier's required store for Explain. It
// deliberately has no RemembersSince: a troubleshooting run must not refuse
// a token merely for predating the command.
type explainOnlyReplay struct{}

func (explainOnlyReplay) Consume(context.Context, string, time.Time) error { return errExplainOnly }

// verifyCommand runs `server2 verify [flags] TOKEN|-`: it explains, check
// by check, whether SERVER2 would accept TOKEN, without consuming it. It
// returns 0 when the token is valid, 1 when it is not, 2 on usage errors.
// The token is never printed.
func verifyCommand(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var keysFile string
	cfg, rest, err := parseConfig("server2 verify", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&keysFile, "keys-file", "", "a JWK Set or single public JWK file to verify with, instead of fetching SERVER1's JWKS")
	})
	if err != nil {
		fmt.Fprintf(stderr, "server2 verify: %v\n", err)
		return 2
	}
	if len(rest) != 1 {
		fmt.Fprintln(stderr, "usage: server2 verify [flags] TOKEN   (or - to read the token from stdin)")
		return 2
	}
	token := rest[0]
	if token == "-" {
		b, err := io.ReadAll(io.LimitReader(stdin, maxTokenInput))
		if err != nil {
			fmt.Fprintf(stderr, "server2 verify: reading stdin: %v\n", err)
			return 2
		}
		token = string(bytes.TrimSpace(b))
	}

	keys, err := verifyKeys(ctx, cfg, keysFile, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "server2 verify: %v\n", err)
		return 2
	}
	v, err := broker.NewVerifier(broker.VerifierConfig{
		Issuers:     []string{cfg.TrustedIssuer},
		Audience:    cfg.Audience,
		Keys:        keys,
		Replay:      explainOnlyReplay{},
		Leeway:      cfg.Leeway,
		MaxLifetime: cfg.MaxTokenLifetime,
	})
	if err != nil {
		fmt.Fprintf(stderr, "server2 verify: %v\n", err)
		return 2
	}
	ex := v.Explain(ctx, token, broker.Expect{})
	for _, st := range ex.Steps {
		if st.Err == nil {
			fmt.Fprintf(stdout, "✓ %s\n", st.Name)
			continue
		}
		fmt.Fprintf(stdout, "✗ %s: %s\n", stepLabel(st), plainWords(st.Err))
	}
	if ex.Err != nil {
		fmt.Fprintf(stdout, "token rejected: %s\n", broker.ReasonOf(ex.Err))
		return 1
	}
	c := ex.Token.Claims()
	fmt.Fprintf(stdout, "token valid (not consumed): sub=%s task=%s action=%s jti=%s kid=%s expires=%s\n",
		c.Subject, c.Task.ID, c.Task.Action, c.ID, c.KeyID, c.ExpiresAt.UTC().Format(time.RFC3339))
	fmt.Fprintln(stdout, "? single use: not checked here. verify never consumes a token and cannot see the running SERVER2's replay store; if this jti was already used, SERVER2 refuses the token as \"replayed\" (409).")
	return 0
}

// verifyKeys returns the keys from keysFile, or SERVER1's remote JWKS. When
// the JWKS cannot be found the returned source answers "unavailable", so
// the key step explains the failure.
func verifyKeys(ctx context.Context, cfg Config, keysFile string, stderr io.Writer) (broker.KeySource, error) {
	if keysFile != "" {
		return keysFromFile(keysFile)
	}
	keys := &issuerKeys{}
	policy, err := cfg.fetchPolicy()
	if err != nil {
		return nil, err
	}
	jwksURL := cfg.JWKSURL
	if jwksURL == "" {
		dctx, cancel := context.WithTimeout(ctx, cfg.JWKSTimeout)
		defer cancel()
		u, err := discoverJWKSURL(dctx, metadataClient(policy, cfg.JWKSTimeout, nil), policy)
		if err != nil {
			fmt.Fprintf(stderr, "cannot discover SERVER1's JWKS URL: %v\n", err)
			return keys, nil
		}
		jwksURL = u
	}
	rk, err := broker.NewRemoteKeys(broker.RemoteKeysConfig{URL: jwksURL, Policy: policy, Timeout: cfg.JWKSTimeout})
	if err != nil {
		return nil, err
	}
	if err := rk.Refresh(ctx); err != nil {
		fmt.Fprintf(stderr, "cannot fetch SERVER1's JWKS: %v\n", err)
	}
	keys.remote.Store(rk)
	return keys, nil
}

// keysFromFile reads a JWK Set, or a single public JWK, from path.
func keysFromFile(path string) (broker.KeySource, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	keys, err := broker.ParseJWKS(data)
	if err != nil || len(keys) == 0 {
		var set bytes.Buffer
		set.WriteString(`{"keys":[`)
		set.Write(bytes.TrimSpace(data))
		set.WriteString(`]}`)
		keys, err = broker.ParseJWKS(set.Bytes())
	}
	if err != nil || len(keys) == 0 {
		return nil, fmt.Errorf("%s holds no usable public signing key (a JWK Set or a public JWK with kid, alg and \"use\":\"sig\")", path)
	}
	return broker.NewStaticKeys(keys...)
}

// claimLabels names claims in plain words.
var claimLabels = map[string]string{
	"iss": "issuer", "sub": "subject", "aud": "audience", "exp": "expiry",
	"nbf": "not before", "iat": "issued at", "jti": "token id", "act": "actor",
	"task": "task", "kid": "key", "alg": "algorithm", "typ": "type",
}

// stepLabel names a failed step: the claim it failed on when there is one.
func stepLabel(st broker.Step) string {
	var be *broker.Error
	if st.Name == broker.StepClaims && errors.As(st.Err, &be) && be.Claim != "" {
		name, _, _ := strings.Cut(be.Claim, ".")
		if l, ok := claimLabels[name]; ok {
			return l
		}
		return be.Claim
	}
	return st.Name
}

// plainWords is the public sentence for a rejection, its reason code and,
// for the operator, the broker's detail (which never holds the token).
func plainWords(err error) string {
	pub := shared.FromBroker(err, false)
	s := pub.Title + " [" + pub.Code
	var be *broker.Error
	if errors.As(err, &be) {
		switch {
		case be.Detail != "":
			s += ": " + be.Detail
		case be.Err != nil:
			s += ": " + be.Err.Error()
		}
	}
	return s + "]"
}
