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
)

// TrustedIssuer pairs an issuer with the only keys that may sign for it.
type TrustedIssuer struct {
	// Issuer is the trusted "iss" value, compared exactly. Required.
	Issuer string
	// Keys finds this issuer's verification keys by "kid": keys.Remote on
	// its JWKS, keys.Static, or its own keys.Keyring. A token claiming
	// another issuer is never checked against them. Required.
	Keys KeySource
}

// profile is one JWS validation profile: the "typ", algorithms, size limit
// and trusted issuers a handoff token or a revocation list must match. Both
// run the one pipeline, raw → checked → verified:
//
//   - check (size, structure, header) turns the raw string into a
//     checkedJWS, whose fields are all attacker-controlled;
//   - verify then decodes the payload into the profile's untrusted type,
//     selects the key source of its unverified "iss", looks the unverified
//     "kid" up in that source only and checks the signature, returning a
//     verifiedJWS, which nothing else builds.
//
// The caller then validates the claims of the now authentic payload.
type profile struct {
	typ     string
	algs    []jose.SignatureAlgorithm
	maxSize int
	issuers map[string]KeySource
}

// newProfile validates the parts of a profile every config shares, returning
// each problem found.
func newProfile(typ string, issuers []TrustedIssuer, algs []Algorithm, maxSize int) (profile, []error) {
	var errs []error
	if len(issuers) == 0 {
		errs = append(errs, errors.New("field Issuers is required"))
	}
	set := make(map[string]KeySource, len(issuers))
	for i, ti := range issuers {
		if ti.Issuer == "" {
			errs = append(errs, fmt.Errorf("field Issuers[%d].Issuer is required and may not be empty", i))
		} else if _, dup := set[ti.Issuer]; dup {
			errs = append(errs, fmt.Errorf("field Issuers[%d]: issuer %q is listed twice", i, ti.Issuer))
		}
		if ti.Keys == nil {
			errs = append(errs, fmt.Errorf("field Issuers[%d].Keys is required", i))
		}
		set[ti.Issuer] = ti.Keys
	}
	if len(algs) == 0 {
		algs = supportedAlgorithms
	}
	allowed, err := allowlist(algs)
	if err != nil {
		errs = append(errs, err)
	}
	return profile{typ: typ, algs: allowed, maxSize: maxSize, issuers: set}, errs
}

// allowlist returns algs, each of which must be in the fixed allowlist, as
// the values parseHeader compares "alg" against.
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

// stepFunc reports the outcome of one pipeline step and returns err.
type stepFunc func(name string, err error) error

// untrustedPayload is a profile's payload type, decoded before the
// signature is checked.
type untrustedPayload interface {
	// unverifiedIssuer returns the "iss" member, nil when absent.
	unverifiedIssuer() *string
}

// header is the part of a JOSE header the broker reads, as parsed before
// the signature is checked.
type header struct {
	alg Algorithm
	// unverifiedKid only selects a key; it is authentic once the signature
	// verifies under that key.
	unverifiedKid string
	typ           string
}

// checkedJWS is a compact JWS that passed the structural checks. Nothing in
// it is authentic yet.
type checkedJWS struct {
	raw               string
	header            header
	unverifiedPayload []byte
}

// verifiedJWS is a JWS whose signature verified under a key of the issuer
// its payload names. Only profile.verify builds one.
type verifiedJWS struct {
	issuer string
	header header
	key    PublicKey
}

// verify runs the pipeline on raw, decoding its payload into dst. On
// success dst holds the authenticated payload.
func (p *profile) verify(ctx context.Context, raw string, dst untrustedPayload, step stepFunc) (verifiedJWS, error) {
	c, err := p.check(raw, step)
	if err != nil {
		return verifiedJWS{}, err
	}
	keys, err := p.issuerKeys(c.unverifiedPayload, dst)
	if err := step(StepIssuer, err); err != nil {
		return verifiedJWS{}, err
	}
	key, err := p.lookupKey(ctx, keys, c.header)
	if err := step(StepKey, err); err != nil {
		return verifiedJWS{}, err
	}
	if err := step(StepSignature, checkSignature(c.raw, key)); err != nil {
		return verifiedJWS{}, err
	}
	return verifiedJWS{issuer: *dst.unverifiedIssuer(), header: c.header, key: key}, nil
}

// check runs the steps that need no key: size before any parsing, then
// structure, then the strict header parse.
func (p *profile) check(raw string, step stepFunc) (checkedJWS, error) {
	if len(raw) > p.maxSize {
		return checkedJWS{}, step(StepSize, reject(ReasonTooLarge, "", "token is %d bytes, limit %d", len(raw), p.maxSize))
	}
	step(StepSize, nil)
	rawHeader, payload, err := checkStructure(raw)
	if err := step(StepStructure, err); err != nil {
		return checkedJWS{}, err
	}
	hdr, err := parseHeader(rawHeader, p.typ, p.algs)
	if err := step(StepHeader, err); err != nil {
		return checkedJWS{}, err
	}
	return checkedJWS{raw: raw, header: hdr, unverifiedPayload: payload}, nil
}

// issuerKeys decodes payload into dst and returns the key source of the
// issuer it claims. The "iss" is unverified: it only chooses whose keys the
// signature must verify under, so a key of one trusted issuer never
// verifies a token claiming another (cross-issuer key confusion).
func (p *profile) issuerKeys(payload []byte, dst untrustedPayload) (KeySource, error) {
	if err := decodePayload(payload, dst); err != nil {
		return nil, err
	}
	iss := dst.unverifiedIssuer()
	if iss == nil {
		return nil, reject(ReasonMissingClaim, "iss", "required claim is absent")
	}
	keys, ok := p.issuers[*iss]
	if !ok {
		return nil, reject(ReasonWrongIssuer, "iss", "issuer is not trusted")
	}
	return keys, nil
}

// decodePayload decodes a payload strictly: one JSON object, no duplicate
// member names, names matched case-sensitively, so two parsers can never
// read different claims from one payload.
func decodePayload(payload []byte, dst untrustedPayload) error {
	if err := json.Unmarshal(payload, dst); err != nil {
		var se *json.SemanticError
		if errors.As(err, &se) && se.JSONPointer != "" {
			return rejectWrap(ReasonInvalidClaim, strings.TrimPrefix(string(se.JSONPointer), "/"), err)
		}
		return rejectWrap(ReasonMalformed, "", err)
	}
	return nil
}

// lookupKey finds the key named by the unverified "kid" in keys, the source
// of the claimed issuer, and requires its algorithm to be the header's.
func (p *profile) lookupKey(ctx context.Context, keys KeySource, h header) (PublicKey, error) {
	key, err := keys.LookupKey(ctx, h.unverifiedKid)
	if err != nil {
		if ReasonOf(err) == "" {
			err = rejectWrap(ReasonUnavailable, "kid", err)
		}
		return PublicKey{}, err
	}
	if key.Algorithm != h.alg {
		// RFC 8725 §3.1: the key fixes the algorithm; a token may not
		// pick another one for it (algorithm confusion).
		return PublicKey{}, reject(ReasonUnsupportedAlg, "alg", "alg %s does not match the key's %s", h.alg, key.Algorithm)
	}
	return key, nil
}

// checkSignature checks the signature over the JWS Signing Input exactly as
// received (RFC 7515 §5.2 step 8). It runs after checkStructure and
// parseHeader, so the header has been read once, by the strict parser:
// handing the token to a second, more lenient JOSE parser here would let the
// two disagree about what the header says (a parser differential). Every
// mismatch is the one opaque ReasonBadSignature.
func checkSignature(raw string, key PublicKey) error {
	dot := strings.LastIndexByte(raw, '.')
	input := raw[:dot]
	sig, err := base64.RawURLEncoding.Strict().DecodeString(raw[dot+1:])
	if err != nil {
		return &Error{Reason: ReasonBadSignature, Err: err}
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
		return &Error{Reason: ReasonBadSignature}
	}
	return nil
}

// checkStructure accepts only the JWS Compact Serialization: three non-empty
// segments of unpadded base64url, no whitespace. JSON serialization, JWE
// (five segments) and unsigned tokens fail here. It returns the decoded
// header and payload.
func checkStructure(raw string) (hdr, payload []byte, err error) {
	if raw == "" {
		return nil, nil, reject(ReasonMalformed, "", "empty token")
	}
	dots := 0
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '.':
			dots++
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return nil, nil, reject(ReasonMalformed, "", "character %q at offset %d is not base64url", c, i)
		}
	}
	if dots != 2 {
		return nil, nil, reject(ReasonMalformed, "", "compact JWS has 3 segments, this has %d", dots+1)
	}
	h, rest, _ := strings.Cut(raw, ".")
	p, s, _ := strings.Cut(rest, ".")
	if h == "" || p == "" || s == "" {
		return nil, nil, reject(ReasonMalformed, "", "empty segment")
	}
	if hdr, err = base64.RawURLEncoding.Strict().DecodeString(h); err != nil {
		return nil, nil, rejectWrap(ReasonMalformed, "", fmt.Errorf("header: %w", err))
	}
	if payload, err = base64.RawURLEncoding.Strict().DecodeString(p); err != nil {
		return nil, nil, rejectWrap(ReasonMalformed, "", fmt.Errorf("payload: %w", err))
	}
	return hdr, payload, nil
}

// allowedHeader lists the only members a token header may carry. Anything
// else is refused: "crit" (RFC 7515 §4.1.11: we understand no extension),
// and "jwk", "jku", "x5u", "x5c" (an attacker naming their own key or key
// URL: key confusion / SSRF).
var allowedHeader = map[string]bool{"alg": true, "kid": true, "typ": true}

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
	return header{alg: Algorithm(h.Alg), unverifiedKid: h.Kid, typ: h.Typ}, nil
}

// typeMatches compares media types as RFC 7515 §4.1.9 allows: ignoring case,
// with the "application/" prefix optional.
func typeMatches(got, want string) bool {
	if len(got) > len("application/") && strings.EqualFold(got[:len("application/")], "application/") {
		got = got[len("application/"):]
	}
	return strings.EqualFold(got, want)
}

// validity is the time check both profiles apply to a verified payload:
// "exp" and "nbf" with leeway, "iat" not in the future, and a lifetime
// capped whatever the issuer chose.
type validity struct {
	leeway      time.Duration
	maxLifetime time.Duration
}

// check judges iat, exp and the optional nbf (zero when absent) at now.
func (v validity) check(now, iat, nbf, exp time.Time) error {
	switch {
	case !now.Before(exp.Add(v.leeway)):
		return reject(ReasonExpired, "exp", "expired at %s", exp.UTC().Format(time.RFC3339))
	case !nbf.IsZero() && now.Add(v.leeway).Before(nbf):
		return reject(ReasonNotYetValid, "nbf", "not valid before %s", nbf.UTC().Format(time.RFC3339))
	case now.Add(v.leeway).Before(iat):
		return reject(ReasonIssuedInFuture, "iat", "issued at %s, in the future", iat.UTC().Format(time.RFC3339))
	case exp.Before(iat):
		return reject(ReasonInvalidClaim, "exp", "exp is before iat")
	case exp.Sub(iat) > v.maxLifetime:
		return reject(ReasonLifetimeTooLong, "exp", "lifetime %v exceeds %v", exp.Sub(iat), v.maxLifetime)
	}
	return nil
}

// checkLeeway validates a configured leeway.
func checkLeeway(leeway time.Duration) error {
	if leeway < 0 || leeway > MaxLeeway {
		return fmt.Errorf("field Leeway %v must be between 0 and %v", leeway, MaxLeeway)
	}
	return nil
}
