// Package broker is the token engine of the handoff broker: it mints,
// verifies and keys short-lived, audience-scoped, single-task JWTs that carry
// a signed-in user from one server (the issuer) to another (the relying
// service) for one task.
//
// It is the only package in this module that touches JOSE (go-jose v4); it
// knows nothing of HTTP frameworks. Servers call Minter.Mint and
// Verifier.Verify and map the returned *Error's Reason to a response.
//
// # What Verify checks, in order
//
//  1. Size (DefaultMaxTokenSize) before any parsing.
//  2. Structure: JWS Compact Serialization only (RFC 7515 §7.1), three
//     unpadded base64url segments; JSON serialization and JWE are refused.
//  3. Header: "alg" in the fixed allowlist (EdDSA, ES256; RFC 8725 §3.1),
//     "typ" exactly "handoff+jwt" (RFC 8725 §3.11, compared as RFC 7515
//     §4.1.9 allows), "kid" present; any other member, "crit", "jwk",
//     "jku", "x5u" and "x5c" included, is refused.
//  4. Key: looked up by "kid" in a KeySource; its algorithm must equal "alg".
//  5. Signature, checked over the JWS Signing Input exactly as received
//     (RFC 7515 §5.2) with the key's one algorithm, after the strict header
//     parse: the header is never read by a second parser. One opaque reason
//     for every failure.
//  6. Claims (RFC 7519 §4.1) with strict JSON types and no duplicate
//     members: trusted "iss", "aud" exactly this audience (a single
//     string), "exp", "nbf", "iat" with bounded leeway, a lifetime capped
//     by the verifier, "jti", "sub" and "task".
//  7. The expected task, when the caller states one.
//  8. Revocation, through an optional RevocationChecker.
//  9. Single use: the (iss, jti) pair is consumed atomically in a
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
// uses keys named inside a token. A MemoryReplayStore protects one process
// only; replicas need a shared store.
//
// Keys are Ed25519 or P-256, identified by their RFC 7638 thumbprint, stored
// as RFC 7517 JWK files, and published as a JWK Set. A key's state (next,
// current, retired, expired) follows from its activation time alone, so
// issuer instances sharing a key directory agree without coordination
// (Keyring.Rotate, Keyring.RevokeAndReplace). RemoteKeys is the relying
// service's cached view of the issuer's JWK Set.
//
// Every remote fetch (RemoteKeys, RemoteRevocations, and a caller's
// discovery of the issuer's metadata) goes through one URLPolicy: the URL
// and every redirect must be https when the issuer is, and on the issuer's
// host or one the caller allowed. A refusal is a *URLError with a stable
// URLReason.
//
// Revocation travels as a signed list of its own type, "revocation+jwt"
// (RevocationState and RevocationPublisher on the issuer, RemoteRevocations
// on the relying service): a distinct validation profile, so a list is never
// accepted as a handoff token nor the reverse (RFC 8725 §3.12).
//
// The files: errors.go (reasons), mint.go, verify.go and claims.go,
// keyring.go and rotate.go, jwks.go and remotekeys.go, replay.go,
// revocation.go, revocationlist.go, revocations.go and remoterevocations.go,
// urlpolicy.go (what every remote fetch may reach).
package broker
