// Package token is the core of the handoff broker: it mints and verifies
// handoff tokens, short-lived, audience-scoped, single-task JWTs (RFC 7519)
// signed as compact JWS (RFC 7515) with EdDSA or ES256, and the signed
// revocation lists the relying services poll.
//
// Servers call Minter.Mint and Verifier.Verify and map the returned
// *Error's Reason to a response. A verifier trusts a list of issuers, each a
// TrustedIssuer with its own KeySource (keys.Static, keys.Remote, or the
// issuer's own keys.Keyring); the Minter signs with a Signer (keys.Keyring);
// used tokens are recorded in a ReplayStore (MemoryReplayStore here, Redis
// in replaystore/redisstore); withdrawn tokens are reported by a
// RevocationChecker (revocation.State, revocation.Remote).
//
// # One pipeline, three profiles
//
// A handoff token ("handoff+jwt"), a result token ("handoff-result+jwt",
// Minter.MintResult, NewResultVerifier: the relying service's signed
// answer, with an "outcome" claim, carried back to the issuer) and a signed
// revocation list ("revocation+jwt", Minter.SignRevocationList,
// RevocationListVerifier) are validation profiles of one JWS pipeline: raw
// string → checked (size, structure, header; nothing authentic yet) →
// verified (the key of the claimed issuer, the signature). Each profile then
// validates its own claims with the same time rules. None is ever accepted
// as another (RFC 8725 §3.12).
//
// # What Verify checks, in order
//
//  0. The caller's Expect: it must name the task (Expect.Task) or say any
//     task will do (Expect.AnyTask); the zero Expect is refused
//     (ReasonInvalidExpect), never read as "skip the task check".
//  1. Size (DefaultMaxTokenSize) before any parsing.
//  2. Structure: JWS Compact Serialization only (RFC 7515 §7.1), three
//     unpadded base64url segments; JSON serialization and JWE are refused.
//  3. Header: "alg" in the fixed allowlist (EdDSA, ES256; RFC 8725 §3.1),
//     "typ" exactly "handoff+jwt" (RFC 8725 §3.11, compared as RFC 7515
//     §4.1.9 allows), "kid" present; any other member, "crit", "jwk",
//     "jku", "x5u" and "x5c" included, is refused.
//  4. Issuer: the payload, decoded with strict JSON types and no duplicate
//     members, names a trusted "iss". Still unverified, it only selects
//     whose keys may verify the token.
//  5. Key: looked up by "kid" in that issuer's KeySource, never another
//     trusted issuer's; its algorithm must equal "alg".
//  6. Signature, checked over the JWS Signing Input exactly as received
//     (RFC 7515 §5.2) with the key's one algorithm, after the strict header
//     parse: the header is never read by a second parser. One opaque reason
//     for every failure.
//  7. Claims (RFC 7519 §4.1): "aud" exactly this audience (a single
//     string), "exp", "nbf", "iat" with bounded leeway, a lifetime capped
//     by the verifier, "jti", "sub" and "task".
//  8. The expected task, unless the caller said AnyTask, and the expected
//     subject when the caller states one (Expect.Subject).
//  9. Revocation, through an optional RevocationChecker.
//  10. Single use: the (iss, jti) pair is consumed atomically in a
//     ReplayStore, only after every other check passed.
//
// Every rejection is an *Error carrying a stable Reason (see Reasons).
// Errors from key sources and stores become ReasonUnavailable: the caller
// must refuse the token.
//
// # What it does not do
//
// It does not authenticate users, keep sessions or transport tokens; it does
// not accept tokens from issuers it was not configured to trust, and it never
// uses keys named inside a token. It does not fetch anything: keys and
// revocation lists reach it through the interfaces above. A
// MemoryReplayStore protects one process only; replicas need a shared store.
//
// The files: errors.go (reasons), key.go (algorithms, public and signing
// keys, KeySource, Signer), profile.go (TrustedIssuer and the JWS pipeline
// both profiles run), mint.go, verify.go and claims.go (the handoff
// profile), replay.go, revocation.go (RevocationChecker), revocationlist.go
// (the list profile).
package token
