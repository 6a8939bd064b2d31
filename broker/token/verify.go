package token

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/handoffbroker/handoff/broker/internal/seconds"
)

// VerifierConfig configures a Verifier. A required field left empty is a
// construction error, never a skipped check.
type VerifierConfig struct {
	// Issuers are the trusted "iss" values. Required.
	Issuers []string
	// Audience is this service's identifier; "aud" must equal it exactly.
	// Required.
	Audience string
	// Keys finds verification keys by "kid". Required.
	Keys KeySource
	// Replay records used "jti" values. Required.
	Replay ReplayStore
	// Revocation, when set, is asked about every token that passed the other
	// checks. Default: none (keys and expiry are then the only withdrawal).
	Revocation RevocationChecker
	// Algorithms narrows the fixed allowlist. Default Algorithms().
	Algorithms []Algorithm
	// Leeway is the clock skew tolerated on exp, nbf and iat. Default 30s,
	// at most MaxLeeway.
	Leeway time.Duration
	// MaxLifetime caps exp - iat whatever the issuer chose. Default 10m.
	MaxLifetime time.Duration
	// MaxTokenSize is the largest token parsed, in bytes. Default 8 KiB.
	MaxTokenSize int
	// Now returns the current time. Default time.Now.
	Now func() time.Time
}

// Verifier checks handoff tokens. It is safe for concurrent use.
type Verifier struct {
	cfg           VerifierConfig
	algs          []jose.SignatureAlgorithm
	issuers       map[string]bool
	rememberSince func() time.Time
}

// NewVerifier validates cfg, reporting every problem at once.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	if cfg.Leeway == 0 {
		cfg.Leeway = DefaultLeeway
	}
	if cfg.MaxLifetime == 0 {
		cfg.MaxLifetime = DefaultMaxTTL
	}
	if cfg.MaxTokenSize == 0 {
		cfg.MaxTokenSize = DefaultMaxTokenSize
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if len(cfg.Algorithms) == 0 {
		cfg.Algorithms = supportedAlgorithms
	}
	var errs []error
	if len(cfg.Issuers) == 0 || slices.Contains(cfg.Issuers, "") {
		errs = append(errs, errors.New("field Issuers is required and may not contain an empty issuer"))
	}
	if cfg.Audience == "" {
		errs = append(errs, errors.New("field Audience is required"))
	}
	if cfg.Keys == nil {
		errs = append(errs, errors.New("field Keys is required"))
	}
	if cfg.Replay == nil {
		errs = append(errs, errors.New("field Replay is required"))
	}
	if cfg.Leeway < 0 || cfg.Leeway > MaxLeeway {
		errs = append(errs, fmt.Errorf("field Leeway %v must be between 0 and %v", cfg.Leeway, MaxLeeway))
	}
	if cfg.MaxLifetime < 0 {
		errs = append(errs, errors.New("field MaxLifetime must be positive"))
	}
	if cfg.MaxTokenSize < 0 || cfg.MaxTokenSize > 64<<10 {
		errs = append(errs, errors.New("field MaxTokenSize must be between 1 and 65536"))
	}
	algs, err := allowlist(cfg.Algorithms)
	if err := errors.Join(append(errs, err)...); err != nil {
		return nil, fmt.Errorf("broker: verifier config: %w", err)
	}
	v := &Verifier{cfg: cfg, algs: algs, issuers: issuerSet(cfg.Issuers)}
	if f, ok := cfg.Replay.(interface{ RemembersSince() time.Time }); ok {
		v.rememberSince = f.RemembersSince
	}
	return v, nil
}

// allowlist returns algs, each of which must be in the fixed allowlist, as
// the values go-jose and parseHeader compare "alg" against.
func allowlist(algs []Algorithm) ([]jose.SignatureAlgorithm, error) {
	out := make([]jose.SignatureAlgorithm, 0, len(algs))
	var errs []error
	for _, a := range algs {
		if !a.Supported() {
			errs = append(errs, fmt.Errorf("algorithm %q is not supported", a))
			continue
		}
		out = append(out, jose.SignatureAlgorithm(a))
	}
	return out, errors.Join(errs...)
}

func issuerSet(issuers []string) map[string]bool {
	set := make(map[string]bool, len(issuers))
	for _, iss := range issuers {
		set[iss] = true
	}
	return set
}

// Expect is what the caller already knows the token must say.
type Expect struct {
	// Task, when set, must equal the token's task exactly, parameters digest
	// included. Leave it nil only where the caller shows the task to the user
	// for confirmation instead (the browser handoff).
	Task *Task
}

// Claims are the contents of a token that passed every check.
type Claims struct {
	Issuer    string
	Subject   string
	Audience  string
	ID        string
	IssuedAt  time.Time
	NotBefore time.Time // zero when the token had no "nbf"
	ExpiresAt time.Time
	Task      Task
	Actor     *Actor
	KeyID     string
	Algorithm Algorithm
}

// Verified is a token that passed every check. Only the Verifier builds one,
// so holding a *Verified is proof of verification.
type Verified struct {
	claims Claims
}

// Claims returns a copy of the verified claims.
func (v *Verified) Claims() Claims { return v.claims }

// Verify runs every check on token, in order: size, structure, header, key,
// signature, claims, expected task, revocation, and finally consumes the
// token's "jti" so it can never be used again. It returns the verified
// claims or a *Error. The jti is consumed only when everything else passed:
// an invalid token never burns the jti of a valid one.
func (v *Verifier) Verify(ctx context.Context, token string, want Expect) (*Verified, error) {
	return v.run(ctx, token, want, true, nil)
}

// Step is one check in an Explanation.
type Step struct {
	Name string
	Err  error // nil when the check passed
}

// Explanation is the outcome of every check Explain ran.
type Explanation struct {
	Steps []Step
	Token *Verified // set when every check passed
	Err   error     // the first failure
}

// Explain runs the same checks as Verify without consuming the jti, and
// reports each one: a troubleshooting aid. Because it does not consume, a
// token Explain accepts may still be refused by Verify as replayed.
func (v *Verifier) Explain(ctx context.Context, token string, want Expect) Explanation {
	var ex Explanation
	ex.Token, ex.Err = v.run(ctx, token, want, false, func(name string, err error) {
		ex.Steps = append(ex.Steps, Step{Name: name, Err: err})
	})
	return ex
}

// The step names reported by Explain.
const (
	StepSize       = "size"
	StepStructure  = "structure"
	StepHeader     = "header"
	StepKey        = "key"
	StepSignature  = "signature"
	StepClaims     = "claims"
	StepTask       = "task"
	StepRevocation = "revocation"
	StepReplay     = "replay"
)

func (v *Verifier) run(ctx context.Context, token string, want Expect, consume bool, trace func(string, error)) (*Verified, error) {
	var jti string // set once the signature has verified
	step := func(name string, err error) error {
		var e *Error
		if jti != "" && errors.As(err, &e) && e.TokenID == "" {
			e.TokenID = jti
		}
		if trace != nil {
			trace(name, err)
		}
		return err
	}
	payload, hdr, key, err := verifySignature(ctx, token, HandoffTokenType, v.algs, v.cfg.MaxTokenSize, v.cfg.Keys, step)
	if err != nil {
		return nil, err
	}
	now := v.cfg.Now()
	c, err := v.checkClaims(payload, now)
	jti = c.ID
	if err := step(StepClaims, err); err != nil {
		return nil, err
	}
	c.KeyID, c.Algorithm = hdr.kid, key.Algorithm
	if err := step(StepTask, checkTask(c.Task, want.Task)); err != nil {
		return nil, err
	}
	if v.cfg.Revocation != nil {
		if err := step(StepRevocation, v.checkRevoked(ctx, &c)); err != nil {
			return nil, err
		}
	}
	if v.rememberSince != nil && c.IssuedAt.Before(seconds.Ceil(v.rememberSince())) {
		err := reject(ReasonIssuedBeforeRestart, "iat", "issued before the replay store started; it may already have been used")
		return nil, step(StepReplay, err)
	}
	if consume {
		if err := step(StepReplay, v.consume(ctx, &c)); err != nil {
			return nil, err
		}
	}
	return &Verified{claims: c}, nil
}

func (v *Verifier) consume(ctx context.Context, c *Claims) error {
	err := v.cfg.Replay.Consume(ctx, ReplayKey(c.Issuer, c.ID), ReplayRetention(c.ExpiresAt, v.cfg.Leeway))
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrAlreadyUsed):
		return reject(ReasonReplayed, "jti", "jti already used")
	default:
		return rejectWrap(ReasonUnavailable, "", fmt.Errorf("replay store: %w", err))
	}
}

func (v *Verifier) checkRevoked(ctx context.Context, c *Claims) error {
	err := v.cfg.Revocation.CheckRevoked(ctx, TokenRef{
		Issuer: c.Issuer, Subject: c.Subject, ID: c.ID, KeyID: c.KeyID,
		IssuedAt: c.IssuedAt, ExpiresAt: c.ExpiresAt,
	})
	if err == nil {
		return nil
	}
	if r := ReasonOf(err); r == ReasonRevoked || r == ReasonUnavailable {
		return err
	}
	return rejectWrap(ReasonUnavailable, "", fmt.Errorf("revocation: %w", err))
}

// ReplayKey is the key under which a token's use is recorded: the pair
// (iss, jti). It is never the token string, which an attacker can re-spell
// (ECDSA signatures are malleable; base64 has twin encodings). The Verifier
// passes it to ReplayStore.Consume; it is exported for store implementers
// and for keys derived from it (revocation.SharedKey), not for callers.
func ReplayKey(issuer, jti string) string { return issuer + " " + jti }

func checkTask(got Task, want *Task) error {
	if want == nil {
		return nil
	}
	switch {
	case got.ID != want.ID:
		return reject(ReasonTaskMismatch, "task.id", "token is for another task")
	case got.Action != want.Action:
		return reject(ReasonTaskMismatch, "task.action", "token is for another action")
	case got.ParamsDigest != want.ParamsDigest:
		return reject(ReasonTaskMismatch, "task.params_digest", "token is for other task parameters")
	}
	return nil
}

// header is the part of a JOSE header the broker reads. The kid is
// unverified until the signature checks out: it only selects a key.
type header struct {
	alg Algorithm
	kid string
	typ string
}

// allowedHeader lists the only members a token header may carry. Anything
// else is refused: "crit" (RFC 7515 §4.1.11: we understand no extension),
// and "jwk", "jku", "x5u", "x5c" (an attacker naming their own key or key
// URL: key confusion / SSRF).
var allowedHeader = map[string]bool{"alg": true, "kid": true, "typ": true}

// verifySignature runs the checks every token profile shares: size,
// structure, header, key lookup, and the signature. It returns the verified
// payload bytes.
func verifySignature(ctx context.Context, token, wantTyp string, algs []jose.SignatureAlgorithm, maxSize int, keys KeySource, step func(string, error) error) ([]byte, header, PublicKey, error) {
	var hdr header
	if len(token) > maxSize {
		return nil, hdr, PublicKey{}, step(StepSize, reject(ReasonTooLarge, "", "token is %d bytes, limit %d", len(token), maxSize))
	}
	step(StepSize, nil)
	rawHeader, err := checkStructure(token)
	if err := step(StepStructure, err); err != nil {
		return nil, hdr, PublicKey{}, err
	}
	hdr, err = parseHeader(rawHeader, wantTyp, algs)
	if err := step(StepHeader, err); err != nil {
		return nil, hdr, PublicKey{}, err
	}
	key, err := keys.LookupKey(ctx, hdr.kid)
	if err != nil && ReasonOf(err) == "" {
		err = rejectWrap(ReasonUnavailable, "kid", err)
	}
	if err == nil && key.Algorithm != hdr.alg {
		// RFC 8725 §3.1: the key fixes the algorithm; a token may not
		// pick another one for it (algorithm confusion).
		err = reject(ReasonUnsupportedAlg, "alg", "alg %s does not match the key's %s", hdr.alg, key.Algorithm)
	}
	if err := step(StepKey, err); err != nil {
		return nil, hdr, PublicKey{}, err
	}
	payload, err := verifyJWS(token, key)
	if err := step(StepSignature, err); err != nil {
		return nil, hdr, PublicKey{}, err
	}
	return payload, hdr, key, nil
}

// verifyJWS checks the signature over the JWS Signing Input exactly as
// received (RFC 7515 §5.2 step 8) and returns the decoded payload. It runs
// after checkStructure and parseHeader, so the header has been read once, by
// the strict parser: handing the token to a second, more lenient JOSE parser
// here would let the two disagree about what the header says (a parser
// differential). Every mismatch is the one opaque ReasonBadSignature.
func verifyJWS(token string, key PublicKey) ([]byte, error) {
	dot := strings.LastIndexByte(token, '.')
	input := token[:dot]
	sig, err := base64.RawURLEncoding.Strict().DecodeString(token[dot+1:])
	if err != nil {
		return nil, &Error{Reason: ReasonBadSignature, Err: err}
	}
	valid := false
	switch k := key.Key.(type) {
	case ed25519.PublicKey:
		valid = len(sig) == ed25519.SignatureSize && ed25519.Verify(k, []byte(input), sig)
	case *ecdsa.PublicKey:
		// RFC 7518 §3.4: R and S as two 32-byte big-endian integers. ecdsa.Verify
		// refuses r or s of zero or above the group order (the "psychic
		// signature" class of bugs).
		if len(sig) == 64 {
			digest := sha256.Sum256([]byte(input))
			r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
			valid = ecdsa.Verify(k, digest[:], r, s)
		}
	}
	if !valid {
		return nil, &Error{Reason: ReasonBadSignature}
	}
	payload, err := base64.RawURLEncoding.Strict().DecodeString(input[strings.IndexByte(input, '.')+1:])
	if err != nil {
		return nil, rejectWrap(ReasonMalformed, "", fmt.Errorf("payload: %w", err))
	}
	return payload, nil
}

// checkStructure accepts only the JWS Compact Serialization: three non-empty
// segments of unpadded base64url, no whitespace. JSON serialization, JWE
// (five segments) and unsigned tokens fail here. It returns the decoded
// header.
func checkStructure(token string) ([]byte, error) {
	if token == "" {
		return nil, reject(ReasonMalformed, "", "empty token")
	}
	dots := 0
	for i := 0; i < len(token); i++ {
		c := token[i]
		switch {
		case c == '.':
			dots++
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return nil, reject(ReasonMalformed, "", "character %q at offset %d is not base64url", c, i)
		}
	}
	if dots != 2 {
		return nil, reject(ReasonMalformed, "", "compact JWS has 3 segments, this has %d", dots+1)
	}
	h, rest, _ := strings.Cut(token, ".")
	p, s, _ := strings.Cut(rest, ".")
	if h == "" || p == "" || s == "" {
		return nil, reject(ReasonMalformed, "", "empty segment")
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(h)
	if err != nil {
		return nil, rejectWrap(ReasonMalformed, "", fmt.Errorf("header: %w", err))
	}
	return raw, nil
}

func parseHeader(raw []byte, wantTyp string, algs []jose.SignatureAlgorithm) (header, error) {
	var members map[string]jsontext.Value
	if err := json.Unmarshal(raw, &members); err != nil {
		return header{}, rejectWrap(ReasonMalformed, "", fmt.Errorf("header: %w", err))
	}
	for name := range members {
		if !allowedHeader[name] {
			return header{}, reject(ReasonBadHeader, name, "header member %q is not accepted", name)
		}
	}
	var h struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		return header{}, rejectWrap(ReasonMalformed, "", fmt.Errorf("header: %w", err))
	}
	if !slices.Contains(algs, jose.SignatureAlgorithm(h.Alg)) {
		return header{}, reject(ReasonUnsupportedAlg, "alg", "alg %q is not allowed", h.Alg)
	}
	if !typeMatches(h.Typ, wantTyp) {
		return header{}, reject(ReasonBadType, "typ", "typ %q, want %q", h.Typ, wantTyp)
	}
	if h.Kid == "" || len(h.Kid) > maxKidLen {
		return header{}, reject(ReasonBadHeader, "kid", "kid is required (at most %d bytes)", maxKidLen)
	}
	return header{alg: Algorithm(h.Alg), kid: h.Kid, typ: h.Typ}, nil
}

// typeMatches compares media types as RFC 7515 §4.1.9 allows: ignoring case,
// with the "application/" prefix optional.
func typeMatches(got, want string) bool {
	if len(got) > len("application/") && strings.EqualFold(got[:len("application/")], "application/") {
		got = got[len("application/"):]
	}
	return strings.EqualFold(got, want)
}
