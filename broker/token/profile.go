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
	segments
	header header
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
	if err := step(StepSignature, checkSignature(c.segments, key)); err != nil {
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
	seg, err := checkStructure(raw)
	if err := step(StepStructure, err); err != nil {
		return checkedJWS{}, err
	}
	hdr, err := parseHeader(seg.header, p.typ, p.algs)
	if err := step(StepHeader, err); err != nil {
		return checkedJWS{}, err
	}
	return checkedJWS{segments: seg, header: hdr}, nil
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
// mismatch, an undecodable signature segment included, is the one opaque
// ReasonBadSignature.
func checkSignature(seg segments, key PublicKey) error {
	if seg.signatureErr != nil {
		return &Error{Reason: ReasonBadSignature, Err: seg.signatureErr}
	}
	sig, input := seg.signature, seg.signingInput
	valid := false
	switch k := key.Key.(type) {
	case ed25519.PublicKey:
		valid = len(sig) == ed25519.SignatureSize && ed25519.Verify(k, input, sig)
	case *ecdsa.PublicKey:
		// RFC 7518 §3.4: R and S as two 32-byte big-endian integers. ecdsa.Verify
		// refuses r or s of zero or above the group order (the "psychic
		// signature" class of bugs).
		if len(sig) == 64 {
			digest := sha256.Sum256(input)
			r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
			valid = ecdsa.Verify(k, digest[:], r, s)
		}
	}
	if !valid {
		return &Error{Reason: ReasonBadSignature}
	}
	return nil
}

// segments is a compact JWS split and decoded by checkStructure, all of it
// in one allocation. Nothing in it is authentic yet.
type segments struct {
	// signingInput is the JWS Signing Input, header.payload, as received.
	signingInput []byte
	header       []byte
	// unverifiedPayload is decoded before the signature is checked.
	unverifiedPayload []byte
	// signature is the decoded signature; signatureErr, when set, says why
	// it could not be decoded. checkSignature reports it, as the one opaque
	// signature failure, once the issuer and key steps have run.
	signature    []byte
	signatureErr error
}

// base64url marks the bytes of the base64url alphabet (RFC 4648 §5).
var base64url = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") {
		t[c] = true
	}
	return t
}()

// checkStructure accepts only the JWS Compact Serialization: three non-empty
// segments of unpadded base64url, no whitespace. JSON serialization, JWE
// (five segments) and unsigned tokens fail here. It returns the segments
// decoded. The alphabet check comes first because the base64 decoder skips
// CR and LF even in strict mode: a token with line breaks would otherwise
// decode like one without.
func checkStructure(raw string) (segments, error) {
	if raw == "" {
		return segments{}, reject(ReasonMalformed, "", "empty token")
	}
	dots := 0
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; !base64url[c] {
			if c != '.' {
				return segments{}, reject(ReasonMalformed, "", "character %q at offset %d is not base64url", c, i)
			}
			dots++
		}
	}
	if dots != 2 {
		return segments{}, reject(ReasonMalformed, "", "compact JWS has 3 segments, this has %d", dots+1)
	}
	h, rest, _ := strings.Cut(raw, ".")
	p, sig, _ := strings.Cut(rest, ".")
	if h == "" || p == "" || sig == "" {
		return segments{}, reject(ReasonMalformed, "", "empty segment")
	}
	enc := base64.RawURLEncoding.Strict()
	buf := make([]byte, len(raw)+enc.DecodedLen(len(h))+enc.DecodedLen(len(p))+enc.DecodedLen(len(sig)))
	encoded, buf := buf[:copy(buf, raw):len(raw)], buf[len(raw):]
	inputLen := len(h) + 1 + len(p)
	seg := segments{signingInput: encoded[:inputLen:inputLen]}
	var err error
	if seg.header, buf, err = decodeSegment(enc, buf, encoded[:len(h)]); err != nil {
		return segments{}, rejectWrap(ReasonMalformed, "", fmt.Errorf("header: %w", err))
	}
	if seg.unverifiedPayload, buf, err = decodeSegment(enc, buf, encoded[len(h)+1:inputLen]); err != nil {
		return segments{}, rejectWrap(ReasonMalformed, "", fmt.Errorf("payload: %w", err))
	}
	seg.signature, _, seg.signatureErr = decodeSegment(enc, buf, encoded[inputLen+1:])
	return seg, nil
}

// decodeSegment decodes src into the start of buf, returning the decoded
// bytes and the rest of buf.
func decodeSegment(enc *base64.Encoding, buf, src []byte) (decoded, rest []byte, err error) {
	dst := buf[:enc.DecodedLen(len(src))]
	n, err := enc.Decode(dst, src)
	if err != nil {
		return nil, buf, err
	}
	return dst[:n:n], buf[n:], nil
}

// headerMembers is a JOSE header as read in one pass by parseHeader: the
// members it accepts and, for the checks after the pass, the first other
// member seen and whether an accepted one had a value other than a string
// or null. "crit" (RFC 7515 §4.1.11: we understand no extension), "jwk",
// "jku", "x5u" and "x5c" (an attacker naming their own key or key URL: key
// confusion / SSRF) and anything else are such other members.
type headerMembers struct {
	alg, kid, typ string
	hasOther      bool
	other         string
	badType       bool
}

// UnmarshalJSONFrom reads one JSON object, or null for none. The decoder
// enforces what the rest of the token's JSON gets: valid UTF-8, no
// duplicate member names (a parser differential), names matched exactly.
func (h *headerMembers) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	tok, err := dec.ReadToken()
	switch {
	case err != nil:
		return err
	case tok.Kind() == 'n':
		return nil
	case tok.Kind() != '{':
		return errors.New("header is not a JSON object")
	}
	for dec.PeekKind() != '}' {
		name, err := dec.ReadToken()
		if err != nil {
			return err
		}
		var dst *string
		switch name.String() {
		case "alg":
			dst = &h.alg
		case "kid":
			dst = &h.kid
		case "typ":
			dst = &h.typ
		default:
			if !h.hasOther {
				h.hasOther, h.other = true, name.String()
			}
			if err := dec.SkipValue(); err != nil {
				return err
			}
			continue
		}
		switch dec.PeekKind() {
		case '"':
			v, err := dec.ReadToken()
			if err != nil {
				return err
			}
			*dst = v.String()
		case 'n':
			if _, err := dec.ReadToken(); err != nil {
				return err
			}
		default:
			h.badType = true
			if err := dec.SkipValue(); err != nil {
				return err
			}
		}
	}
	_, err = dec.ReadToken()
	return err
}

// parseHeader reads the header strictly, in this order: one JSON object
// with no duplicate members, no member but "alg", "kid" and "typ", those
// of string type, "alg" in algs, "typ" matching wantTyp, a bounded "kid".
func parseHeader(raw []byte, wantTyp string, algs []jose.SignatureAlgorithm) (header, error) {
	var h headerMembers
	if err := json.Unmarshal(raw, &h); err != nil {
		return header{}, rejectWrap(ReasonMalformed, "", fmt.Errorf("header: %w", err))
	}
	if h.hasOther {
		return header{}, reject(ReasonBadHeader, h.other, "header member %q is not accepted", h.other)
	}
	if h.badType {
		return header{}, reject(ReasonMalformed, "", "header: alg, kid and typ must be strings")
	}
	if !slices.Contains(algs, jose.SignatureAlgorithm(h.alg)) {
		return header{}, reject(ReasonUnsupportedAlg, "alg", "alg %q is not allowed", h.alg)
	}
	if !typeMatches(h.typ, wantTyp) {
		return header{}, reject(ReasonBadType, "typ", "typ %q, want %q", h.typ, wantTyp)
	}
	if h.kid == "" || len(h.kid) > maxKidLen {
		return header{}, reject(ReasonBadHeader, "kid", "kid is required (at most %d bytes)", maxKidLen)
	}
	return header{alg: Algorithm(h.alg), unverifiedKid: h.kid, typ: h.typ}, nil
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
