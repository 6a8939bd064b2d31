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
	"github.com/handoffbroker/handoff/shared/cli"
)

// Exit statuses of the verify command.
const (
	verifyValid     = cli.ExitOK      // every check serve runs passed (single use aside)
	verifyInvalid   = cli.ExitFailure // a check ran and failed: SERVER2 refuses the token
	verifyUnchecked = cli.ExitUsage   // a check could not run (keys or list unreachable), or bad usage
)

// verifyFlags are the serve flags verify takes: the ones that decide how
// a token is checked, with serve's names, defaults and variables.
var verifyFlags = []string{"audience", "trusted-issuer", "jwks-url", "revocation-url", "fetch-allowed-hosts",
	"leeway", "max-token-lifetime", "jwks-timeout"}

const verifyHelp = `It runs, check by check, what SERVER2 runs on a handoff, revocation
included, against the JWKS and revocation list found as serve finds them
(configured or discovered from --trusted-issuer), without consuming the
token, and says for each check whether it passed, failed (expected versus
got) or was not checked. The decoded header and claims are shown (labelled
UNVERIFIED unless the signature verified), with times in UTC and relative to
now; the token string and its signature are never printed.

The token is read from FILE, or from stdin without one (or with -), never
from the command line, where other users (ps) and shell history see it.
Surrounding whitespace and quotes and a "Bearer " prefix are stripped (a
note says so); other paste mistakes get a hint.

The task is checked only when stated (--task-id with --action, and every
--param the API request would carry), as the Bearer API checks it; without
--task-id it is "not checked", as on the browser handoff, where the user
confirms the task shown. Single use is never checked here: only the running
SERVER2's replay store knows.

Exit status: 0 valid; 1 invalid (a check ran and refused the token, a
revoked token included); 2 could not check (SERVER1's keys or revocation
list unreachable or not advertised, so a check could not run) or bad
usage.`

// verifyCommand is `server2 verify`.
func verifyCommand(stdin io.Reader, stdout, stderr io.Writer) cli.Command {
	return cli.Command{
		Name:     "verify",
		Operands: "[FILE|-]",
		Summary:  "explain whether SERVER2 would accept a token, check by check, without consuming it",
		Help:     verifyHelp,
		Setup: func(fs *flag.FlagSet) func(context.Context, []string) error {
			var opts verifyOptions
			all := flag.NewFlagSet("server2", flag.ContinueOnError)
			registerFlags(all, &opts.cfg)
			for _, name := range verifyFlags {
				f := all.Lookup(name)
				fs.Var(f.Value, f.Name, f.Usage)
			}
			fs.StringVar(&opts.keysFile, "keys-file", "", "a JWK Set or single public JWK file to verify with, instead of fetching SERVER1's JWKS")
			fs.StringVar(&opts.taskID, "task-id", "", "the task the token must be for, as the API checks it (with --action); default: the task is not checked")
			fs.StringVar(&opts.action, "action", "", "the action the token must allow (with --task-id), e.g. approve")
			opts.params = cli.Params{}
			fs.Var(opts.params, "param", "a task parameter name=value the token must carry (repeatable; with --task-id: all of them, or none)")
			fs.BoolVar(&opts.asJSON, "json", false, "print one JSON object (result, checks, header, claims, key, revocation) instead of lines")
			return func(ctx context.Context, args []string) error {
				if err := parseFlags(fs, args); err != nil {
					return err
				}
				if err := opts.cfg.validate(); err != nil {
					return cli.Usage(err)
				}
				if err := opts.checkTask(); err != nil {
					return err
				}
				in, err := readTokenInput(fs.Args(), stdin, stderr)
				if err != nil {
					return err
				}
				return runVerify(ctx, opts, in, time.Now(), stdout, stderr)
			}
		},
	}
}

// verifyOptions are verify's settings.
type verifyOptions struct {
	cfg            Config
	keysFile       string
	taskID, action string
	params         cli.Params
	asJSON         bool
}

func (o verifyOptions) checkTask() error {
	switch {
	case o.taskID == "" && (o.action != "" || len(o.params) > 0):
		return cli.Usage(errors.New("--action and --param state a task with --task-id"))
	case o.taskID != "" && o.action == "":
		return cli.Usage(errors.New("--task-id needs --action, the action the token must allow"))
	}
	return nil
}

// expect is the Expect serve's API would use for the stated task, or any
// task when none is stated.
func (o verifyOptions) expect() token.Expect {
	if o.taskID == "" {
		return token.Expect{AnyTask: true}
	}
	want := &token.Task{ID: o.taskID, Action: o.action}
	if len(o.params) > 0 {
		want.ParamsDigest = token.DigestParams(o.params)
	}
	return token.Expect{Task: want}
}

// Check statuses in a verifyReport.
const (
	checkPassed     = "passed"
	checkFailed     = "failed"
	checkNotChecked = "not_checked"
)

// verifyReport is what verify found: printed as lines, or with --json as
// this object.
type verifyReport struct {
	// Result is "valid", "invalid" or "unchecked", as the exit status.
	Result string       `json:"result"`
	Reason token.Reason `json:"reason,omitempty"`
	// SignatureVerified says whether Header and Claims are authentic;
	// when false they are decoded, UNVERIFIED.
	SignatureVerified bool                  `json:"signature_verified"`
	Now               time.Time             `json:"now"`
	LeewaySeconds     float64               `json:"leeway_seconds"`
	Header            map[string]any        `json:"header,omitempty"`
	Claims            map[string]any        `json:"claims,omitempty"`
	Times             map[string]timeReport `json:"times,omitempty"`
	Checks            []checkReport         `json:"checks"`
	Key               *keyReport            `json:"key,omitempty"`
	Revocation        revocationReport      `json:"revocation"`
	Problems          []string              `json:"problems,omitempty"`
	Stripped          []string              `json:"stripped,omitempty"`
	Hints             []string              `json:"hints,omitempty"`
}

// checkReport is one check.
type checkReport struct {
	Name     string       `json:"name"`
	Status   string       `json:"status"`
	Reason   token.Reason `json:"reason,omitempty"`
	Detail   string       `json:"detail,omitempty"`
	Expected string       `json:"expected,omitempty"`
	Got      string       `json:"got,omitempty"`
}

// keyReport is the key that verified the signature and where it came from.
type keyReport struct {
	KeyID     string     `json:"kid"`
	JWKSURL   string     `json:"jwks_url,omitempty"`
	KeysFile  string     `json:"keys_file,omitempty"`
	FetchedAt *time.Time `json:"fetched_at,omitempty"`
}

// revocationReport is the revocation list consulted.
type revocationReport struct {
	Status     string     `json:"status"` // checked, not_checked or off
	Why        string     `json:"why,omitempty"`
	URL        string     `json:"url,omitempty"`
	IssuedAt   *time.Time `json:"issued_at,omitempty"`
	AgeSeconds *float64   `json:"age_seconds,omitempty"`
	FetchedAt  *time.Time `json:"fetched_at,omitempty"`
	Entries    int        `json:"entries"`
}

// runVerify builds an explain-only broker.RelyingParty configured as
// serve's, refreshes it once (the JWKS and list fetched as serve finds
// them), explains the token and reports.
func runVerify(ctx context.Context, o verifyOptions, in tokenInput, now time.Time, stdout, stderr io.Writer) error {
	bc := o.cfg.brokerConfig()
	bc.ExplainOnly = true
	bc.Logger = slog.New(slog.DiscardHandler)
	if o.keysFile != "" {
		var err error
		if bc.Keys, err = keysFromFile(o.keysFile); err != nil {
			return cli.Usage(err)
		}
		bc.JWKSURL = ""
	}
	rp, err := broker.New(bc)
	if err != nil {
		return cli.Usage(err)
	}
	defer rp.Close()
	var refresh broker.RefreshError
	if err := rp.Refresh(ctx); err != nil {
		var re *broker.RefreshError
		if !errors.As(err, &re) {
			return cli.Exit(verifyUnchecked, err)
		}
		refresh = *re
	}
	ex := rp.Explain(ctx, in.Token, o.expect())
	r := buildReport(o, in, ex, rp.Status(), refresh, now)
	if o.asJSON {
		if err := writeJSON(stdout, r); err != nil {
			return err
		}
	} else {
		printNotes(stderr, in)
		for _, p := range r.Problems {
			fmt.Fprintln(stderr, display(p))
		}
		printReport(stdout, r)
	}
	switch r.Result {
	case "valid":
		return nil
	case "invalid":
		return cli.Exit(verifyInvalid, nil)
	default:
		return cli.Exit(verifyUnchecked, nil)
	}
}

// buildReport turns Explain's steps into checks, each passed only when it
// ran and passed, and decides the result.
func buildReport(o verifyOptions, in tokenInput, ex token.Explanation, st broker.Status, refresh broker.RefreshError, now time.Time) verifyReport {
	leeway := o.cfg.Leeway
	r := verifyReport{Now: now.UTC(), LeewaySeconds: leeway.Seconds(), Stripped: in.Stripped, Hints: in.Hints,
		Problems: refreshProblems(refresh)}
	u, decodeErr := decodeUnverified(in.Token)
	if decodeErr == nil {
		r.Header, r.Claims, r.Times = u.Header, u.Claims, claimTimes(u.Claims, now, leeway)
	}
	revocationRan := false
	for _, s := range ex.Steps {
		c := checkReport{Name: s.Name, Status: checkPassed}
		switch {
		case s.Err != nil:
			c = failedCheck(o, s, u, now)
		case s.Name == token.StepTask && o.taskID == "":
			c.Status = checkNotChecked
			c.Detail = "no --task-id given: any task passes, as on the browser handoff, where the user confirms the task shown; state the task the API call carries with --task-id, --action and --param"
		case s.Name == token.StepTask:
			c.Detail = "task " + o.taskID + ", action " + o.action + paramsNote(o.params)
		case s.Name == token.StepSignature:
			r.SignatureVerified = true
		}
		revocationRan = revocationRan || s.Name == token.StepRevocation
		r.Checks = append(r.Checks, c)
	}
	if r.SignatureVerified {
		kid, _ := u.Header["kid"].(string) // the key that verified it has this kid
		r.Key = &keyReport{KeyID: kid}
		if o.keysFile != "" {
			r.Key.KeysFile = o.keysFile
		} else {
			r.Key.JWKSURL = st.JWKSURL
			r.Key.FetchedAt = nonZero(st.Keys.FetchedAt)
		}
	}
	if ex.Err != nil {
		for _, name := range explainedSteps[slices.Index(explainedSteps, ex.Steps[len(ex.Steps)-1].Name)+1:] {
			r.Checks = append(r.Checks, checkReport{Name: name, Status: checkNotChecked, Detail: "an earlier check failed"})
		}
	}
	r.Revocation = revocationStatus(o.cfg.RevocationURL == RevocationOff, revocationRan, st, refresh, now)
	if ex.Err == nil && !revocationRan {
		r.Checks = append(r.Checks, checkReport{Name: token.StepRevocation, Status: checkNotChecked, Detail: r.Revocation.Why})
	}
	if _, bound := u.Claims["nonce"]; bound && ex.Err == nil {
		r.Checks = append(r.Checks, checkReport{Name: token.StepBinding, Status: checkNotChecked,
			Detail: "the token is bound to a browser: SERVER2's /handoff accepts it only from the browser holding that binding cookie"})
	}
	r.Checks = append(r.Checks, checkReport{Name: "single use", Status: checkNotChecked,
		Detail: `verify never consumes a token and cannot see the running SERVER2's replay store; if this jti was already used, SERVER2 refuses the token as "replayed" (409).`})

	switch {
	case ex.Err != nil:
		r.Reason = token.ReasonOf(ex.Err)
		r.Result = "invalid"
		if couldNotCheck(ex.Err, refresh) {
			r.Result = "unchecked"
		}
	case !revocationRan && r.Revocation.Status != "off":
		r.Result = "unchecked"
	default:
		r.Result = "valid"
	}
	return r
}

// explainedSteps are the steps Explain runs on an explain-only relying
// party, in order (binding only with a browser, replay never).
var explainedSteps = []string{token.StepSize, token.StepStructure, token.StepHeader, token.StepIssuer, token.StepKey,
	token.StepSignature, token.StepClaims, token.StepTask, token.StepRevocation}

// couldNotCheck reports whether a failure means a check could not run
// rather than that the token is bad: SERVER1's keys or list were not to
// be had.
func couldNotCheck(err error, refresh broker.RefreshError) bool {
	switch token.ReasonOf(err) {
	case token.ReasonUnavailable:
		return true
	case token.ReasonUnknownKey:
		return refresh.JWKS != nil || refresh.Metadata != nil
	}
	return false
}

func paramsNote(p cli.Params) string {
	if len(p) == 0 {
		return ", no parameters"
	}
	return ", parameters match"
}

func nonZero(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// revocationStatus describes the list consulted, or why none was.
func revocationStatus(off, ran bool, st broker.Status, refresh broker.RefreshError, now time.Time) revocationReport {
	r := revocationReport{URL: st.RevocationURL, Entries: st.Revocation.Entries,
		IssuedAt: nonZero(st.Revocation.IssuedAt), FetchedAt: nonZero(st.Revocation.FetchedAt)}
	if r.IssuedAt != nil {
		age := now.Sub(*r.IssuedAt).Round(time.Second).Seconds()
		r.AgeSeconds = &age
	}
	switch {
	case off:
		r.Status, r.Why = "off", "revocation-url is off, so SERVER2 with this configuration does not check it either"
	case ran:
		r.Status = "checked"
	case errors.Is(refresh.RevocationList, broker.ErrNoRevocationEndpoint):
		r.Status, r.Why = checkNotChecked, "SERVER1's handoff configuration names no revocation_endpoint (SERVER2 with this configuration refuses every handoff as unavailable)"
	case refresh.RevocationList != nil:
		r.Status, r.Why = checkNotChecked, "cannot fetch SERVER1's revocation list: "+refresh.RevocationList.Error()
	case refresh.Metadata != nil:
		r.Status, r.Why = checkNotChecked, "cannot discover SERVER1's revocation list: "+refresh.Metadata.Error()
	default:
		r.Status, r.Why = checkNotChecked, "the checks before it failed"
	}
	return r
}

// refreshProblems says which of SERVER1's documents could not be had.
func refreshProblems(e broker.RefreshError) []string {
	var out []string
	if e.Metadata != nil {
		out = append(out, "cannot discover SERVER1's handoff configuration: "+e.Metadata.Error())
	}
	if e.JWKS != nil {
		out = append(out, "cannot fetch SERVER1's JWKS: "+e.JWKS.Error())
	}
	if e.RevocationList != nil && !errors.Is(e.RevocationList, broker.ErrNoRevocationEndpoint) {
		out = append(out, "cannot fetch SERVER1's revocation list: "+e.RevocationList.Error())
	}
	return out
}

// failedCheck describes a failed step: its reason, the public sentence,
// the broker's detail (which never holds the token), and what was
// expected versus what the token says.
func failedCheck(o verifyOptions, s token.Step, u unverifiedToken, now time.Time) checkReport {
	c := checkReport{Name: stepLabel(s), Status: checkFailed, Reason: token.ReasonOf(s.Err), Detail: plainWords(s)}
	claim := func(name string) string {
		if v, ok := u.Claims[name]; ok {
			return claimLine(name, v, now, o.cfg.Leeway)
		}
		return "(absent)"
	}
	nowLine := "now " + now.UTC().Format(time.RFC3339) + ", within the leeway of " + o.cfg.Leeway.String()
	switch c.Reason {
	case token.ReasonWrongIssuer:
		c.Expected, c.Got = o.cfg.TrustedIssuer, claim("iss")
	case token.ReasonWrongAudience:
		c.Expected, c.Got = o.cfg.Audience, claim("aud")
	case token.ReasonExpired:
		c.Expected, c.Got = "exp after "+nowLine, "exp "+claim("exp")
	case token.ReasonNotYetValid:
		c.Expected, c.Got = "nbf before "+nowLine, "nbf "+claim("nbf")
	case token.ReasonIssuedInFuture:
		c.Expected, c.Got = "iat before "+nowLine, "iat "+claim("iat")
	case token.ReasonLifetimeTooLong:
		c.Expected = "exp - iat at most " + o.cfg.MaxTokenLifetime.String()
		iat, ok1 := numericTime(u.Claims["iat"])
		exp, ok2 := numericTime(u.Claims["exp"])
		if ok1 && ok2 {
			c.Got = "exp - iat = " + exp.Sub(iat).String()
		}
	case token.ReasonTaskMismatch:
		want := o.expect().Task
		c.Expected = fmt.Sprintf("task id %s, action %s, params_digest %s", display(want.ID), display(want.Action), orNone(want.ParamsDigest))
		if t, ok := u.Claims["task"].(map[string]any); ok {
			c.Got = fmt.Sprintf("task id %s, action %s, params_digest %s", display(t["id"]), display(t["action"]), orNone(t["params_digest"]))
		}
	case token.ReasonUnknownKey:
		c.Got = "kid " + display(u.Header["kid"])
	}
	return c
}

// orNone displays v, or "(none)" for an absent or empty value.
func orNone(v any) string {
	if v == nil || v == "" {
		return "(none)"
	}
	return display(v)
}

// printReport prints r as lines: the decoded token, the key and list
// consulted, then one line per check and the verdict.
func printReport(w io.Writer, r verifyReport) {
	label := "token (signature verified):"
	if !r.SignatureVerified {
		label = "token, UNVERIFIED (the signature did not verify or was not checked; anyone can write these values):"
	}
	if r.Header != nil {
		fmt.Fprintln(w, label)
		var hdr []string
		for _, k := range orderedKeys(r.Header, headerOrder) {
			hdr = append(hdr, display(k)+"="+display(r.Header[k]))
		}
		fmt.Fprintf(w, "  %-7s %s\n", "header", strings.Join(hdr, " "))
		for _, k := range orderedKeys(r.Claims, claimOrder) {
			fmt.Fprintf(w, "  %-7s %s\n", display(k), claimLine(k, r.Claims[k], r.Now, time.Duration(r.LeewaySeconds*float64(time.Second))))
		}
	}
	if k := r.Key; k != nil {
		switch {
		case k.KeysFile != "":
			fmt.Fprintf(w, "key: %s, from the keys file %s\n", display(k.KeyID), display(k.KeysFile))
		case k.FetchedAt != nil:
			fmt.Fprintf(w, "key: %s, from the JWKS %s fetched %s (%s ago)\n", display(k.KeyID), display(k.JWKSURL), k.FetchedAt.Format(time.RFC3339), r.Now.Sub(*k.FetchedAt).Round(time.Second))
		default:
			fmt.Fprintf(w, "key: %s, from the JWKS %s\n", display(k.KeyID), display(k.JWKSURL))
		}
	}
	if rv := r.Revocation; rv.IssuedAt != nil {
		fmt.Fprintf(w, "revocation list: %s issued %s (%s old), %d entries\n", display(rv.URL), rv.IssuedAt.Format(time.RFC3339), time.Duration(*rv.AgeSeconds*float64(time.Second)), rv.Entries)
	}
	fmt.Fprintf(w, "clock: now %s, leeway %s\n", r.Now.Format(time.RFC3339), time.Duration(r.LeewaySeconds*float64(time.Second)))
	for _, c := range r.Checks {
		// A failed check's detail quotes what the token, or SERVER1's
		// documents, said.
		c.Name, c.Detail, c.Expected, c.Got = display(c.Name), display(c.Detail), display(c.Expected), display(c.Got)
		switch c.Status {
		case checkPassed:
			if c.Detail != "" {
				fmt.Fprintf(w, "✓ %s: %s\n", c.Name, c.Detail)
			} else {
				fmt.Fprintf(w, "✓ %s\n", c.Name)
			}
		case checkFailed:
			fmt.Fprintf(w, "✗ %s: %s\n", c.Name, c.Detail)
			if c.Expected != "" {
				fmt.Fprintf(w, "    expected: %s\n", c.Expected)
			}
			if c.Got != "" {
				fmt.Fprintf(w, "    got:      %s\n", c.Got)
			}
		default:
			fmt.Fprintf(w, "? %s: not checked: %s\n", c.Name, c.Detail)
		}
	}
	switch r.Result {
	case "valid":
		fmt.Fprintln(w, "token valid (not consumed)")
	case "invalid":
		fmt.Fprintf(w, "token rejected: %s\n", r.Reason)
	default:
		if r.Reason != "" {
			fmt.Fprintf(w, "token not checked: %s, because a check could not run; SERVER2 refuses it while this lasts\n", r.Reason)
		} else {
			fmt.Fprintln(w, "token not confirmed: it passed every check that ran, but revocation was not checked; SERVER2 refuses it if it is revoked (401 revoked) or while it cannot fetch the list either (503 unavailable)")
		}
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
