package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/handoffbroker/handoff/broker"
	"github.com/handoffbroker/handoff/broker/fetch"
	"github.com/handoffbroker/handoff/broker/keys"
	"github.com/handoffbroker/handoff/broker/revocation"
	"github.com/handoffbroker/handoff/broker/token"
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

// Exit codes of the verify command.
const (
	verifyValid       = 0 // every check serve runs passed (single use aside)
	verifyRejected    = 1 // a check failed: SERVER2 refuses the token
	verifyUsage       = 2 // bad flags, configuration or input
	verifyUnconfirmed = 3 // the checks that ran passed, but one could not run
)

// verifyCommand runs `server2 verify [flags] TOKEN|-`: it explains, check
// by check, whether SERVER2 would accept TOKEN, without consuming it. It
// runs the checks serve runs, revocation included (it fetches the list as
// serve would), and names each one it could not run. It returns
// verifyValid, verifyRejected, verifyUsage or verifyUnconfirmed. The token
// is never printed.
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

	src, err := verifySources(ctx, cfg, keysFile, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "server2 verify: %v\n", err)
		return verifyUsage
	}
	keySource := src.keys
	if src.revocations != nil {
		keySource = revokedKeys{KeySource: src.keys, list: src.revocations, issuer: cfg.TrustedIssuer}
	}
	vc := token.VerifierConfig{
		Issuers:     []token.TrustedIssuer{{Issuer: cfg.TrustedIssuer, Keys: keySource}},
		Audience:    cfg.Audience,
		Replay:      explainOnlyReplay{},
		Leeway:      cfg.Leeway,
		MaxLifetime: cfg.MaxTokenLifetime,
	}
	if src.revocations != nil {
		vc.Revocation = src.revocations
	}
	v, err := token.NewVerifier(vc)
	if err != nil {
		fmt.Fprintf(stderr, "server2 verify: %v\n", err)
		return verifyUsage
	}
	ex := v.Explain(ctx, tok, token.Expect{AnyTask: true})
	for _, st := range ex.Steps {
		if st.Err == nil {
			fmt.Fprintf(stdout, "✓ %s\n", st.Name)
			continue
		}
		fmt.Fprintf(stdout, "✗ %s: %s\n", stepLabel(st), plainWords(st.Err))
	}
	if ex.Err != nil {
		fmt.Fprintf(stdout, "token rejected: %s\n", token.ReasonOf(ex.Err))
		return verifyRejected
	}
	if src.revocations == nil {
		fmt.Fprintf(stdout, "? %s: not checked: %s\n", token.StepRevocation, src.noRevocation)
	}
	c := ex.Token.Claims()
	facts := fmt.Sprintf("sub=%s task=%s action=%s jti=%s kid=%s expires=%s",
		c.Subject, c.Task.ID, c.Task.Action, c.ID, c.KeyID, c.ExpiresAt.UTC().Format(time.RFC3339))
	code := verifyValid
	if src.revocations == nil && !src.revocationOff {
		fmt.Fprintf(stdout, "token not confirmed: it passed every check that ran, but revocation was not checked; SERVER2 refuses it if it is revoked (401 revoked) or while it cannot fetch the list either (503 unavailable): %s\n", facts)
		code = verifyUnconfirmed
	} else {
		fmt.Fprintf(stdout, "token valid (not consumed): %s\n", facts)
	}
	fmt.Fprintln(stdout, "? single use: not checked here. verify never consumes a token and cannot see the running SERVER2's replay store; if this jti was already used, SERVER2 refuses the token as \"replayed\" (409).")
	return code
}

// sources are what the verify command checks a token against, found as
// serve finds them.
type sources struct {
	keys token.KeySource
	// revocations is the issuer's list, fetched once; nil when revocation
	// is not checked, for the reason in noRevocation.
	revocations  *revocation.Remote
	noRevocation string
	// revocationOff is set when revocation-url=off: serve does not check
	// revocation either, so not checking it here does not leave the
	// answer open.
	revocationOff bool
}

// verifySources returns the keys from keysFile or SERVER1's JWKS, and
// SERVER1's revocation list, each from the configured URL or else from the
// issuer's handoff configuration, as serve finds them. When the JWKS cannot
// be found the keys answer "unavailable", so the key step explains the
// failure; when the list cannot be fetched, sources says why.
func verifySources(ctx context.Context, cfg Config, keysFile string, stderr io.Writer) (sources, error) {
	var src sources
	policy, err := fetch.NewPolicy(fetch.PolicyConfig{Issuer: cfg.TrustedIssuer, AllowedHosts: cfg.FetchAllowedHosts})
	if err != nil {
		return sources{}, err
	}
	var md broker.Metadata
	var mdErr error
	if cfg.JWKSURL == "" && (keysFile == "" || cfg.RevocationURL == "") {
		dctx, cancel := context.WithTimeout(ctx, cfg.JWKSTimeout)
		md, mdErr = broker.Discover(dctx, policy, &http.Client{Timeout: cfg.JWKSTimeout})
		cancel()
		if mdErr != nil {
			fmt.Fprintf(stderr, "cannot discover SERVER1's handoff configuration: %v\n", mdErr)
		}
	}

	switch {
	case keysFile != "":
		ks, err := keysFromFile(keysFile)
		if err != nil {
			return sources{}, err
		}
		src.keys = ks
	default:
		src.keys = undiscoveredKeys{}
		jwksURL := cmp.Or(cfg.JWKSURL, md.JWKSURI)
		if jwksURL == "" {
			break
		}
		rk, err := keys.NewRemote(keys.RemoteConfig{URL: jwksURL, Policy: policy, Timeout: cfg.JWKSTimeout})
		if err != nil {
			return sources{}, err
		}
		if err := rk.Refresh(ctx); err != nil {
			fmt.Fprintf(stderr, "cannot fetch SERVER1's JWKS: %v\n", err)
		}
		src.keys = rk
	}

	listURL := cfg.RevocationURL
	switch {
	case listURL == RevocationOff:
		src.revocationOff = true
		src.noRevocation = "revocation-url is off, so SERVER2 with this configuration does not check it either"
		return src, nil
	case listURL == "" && mdErr != nil:
		src.noRevocation = "cannot discover SERVER1's revocation list: " + mdErr.Error()
		return src, nil
	case listURL == "" && md.RevocationEndpoint == "":
		src.noRevocation = "SERVER1's handoff configuration names no revocation_endpoint (SERVER2 with this configuration refuses every handoff as unavailable)"
		return src, nil
	case listURL == "":
		listURL = md.RevocationEndpoint
	}
	rr, err := revocation.NewRemote(revocation.RemoteConfig{
		URL:      listURL,
		Policy:   policy,
		Keys:     src.keys,
		Issuer:   cfg.TrustedIssuer,
		Interval: cfg.RevocationInterval,
		MaxStale: cfg.RevocationMaxStale,
		Timeout:  cfg.JWKSTimeout,
		Leeway:   cfg.Leeway,
	})
	if err != nil {
		return sources{}, err
	}
	if err := rr.Refresh(ctx); err != nil {
		fmt.Fprintf(stderr, "cannot fetch SERVER1's revocation list: %v\n", err)
		src.noRevocation = "cannot fetch SERVER1's revocation list: " + err.Error()
		return src, nil
	}
	src.revocations = rr
	return src, nil
}

// undiscoveredKeys is the verify command's KeySource when SERVER1's JWKS
// URL could not be found: every lookup fails closed, so the key step
// explains why.
type undiscoveredKeys struct{}

// LookupKey implements token.KeySource.
func (undiscoveredKeys) LookupKey(context.Context, string) (token.PublicKey, error) {
	return token.PublicKey{}, &token.Error{Reason: token.ReasonUnavailable, Claim: "kid", Detail: "the issuer's JWKS URL is not discovered yet"}
}

// revokedKeys is the verify command's KeySource: the issuer's keys, except
// that a kid SERVER1 no longer publishes but lists as revoked is reported
// as revoked rather than unknown. `server1 keys revoke` removes the key
// from the JWKS at once, so a freshly fetched JWKS never holds it; the
// list says why. The kid is unverified here, which is safe: it can only
// make the answer a refusal.
type revokedKeys struct {
	token.KeySource
	list   *revocation.Remote
	issuer string
}

// LookupKey implements token.KeySource.
func (k revokedKeys) LookupKey(ctx context.Context, kid string) (token.PublicKey, error) {
	key, err := k.KeySource.LookupKey(ctx, kid)
	if token.ReasonOf(err) != token.ReasonUnknownKey {
		return key, err
	}
	// A reference naming only the key: the list's jti and subject entries
	// are never empty, so only a kid entry can match.
	if rerr := k.list.CheckRevoked(ctx, token.TokenRef{Issuer: k.issuer, KeyID: kid}); token.ReasonOf(rerr) == token.ReasonRevoked {
		return token.PublicKey{}, &token.Error{Reason: token.ReasonRevoked, Claim: "kid", Detail: "the signing key was revoked; SERVER1 no longer publishes it"}
	}
	return key, err
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

// plainWords is the public sentence for a rejection, its reason code and,
// for the operator, the broker's detail (which never holds the token).
func plainWords(err error) string {
	pub := shared.FromBroker(err, false)
	s := pub.Title + " [" + pub.Code
	var be *token.Error
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
