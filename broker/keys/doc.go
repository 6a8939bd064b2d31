// Package keys holds the handoff broker's keys: the issuer's Keyring of
// private signing keys, their rotation, the JSON Web Key Set it publishes,
// and the relying service's key sources (Static and Remote) that implement
// token.KeySource.
//
// Keys are Ed25519 or P-256, identified by their RFC 7638 thumbprint, stored
// as RFC 7517 JWK files (one per key, mode 0600), and published as a JWK
// Set (RFC 7517 §5) with public members only. A key's state (next, current,
// retired, expired) follows from its activation time alone, so issuer
// instances sharing a key directory agree without coordination
// (Keyring.Rotate, Keyring.RevokeAndReplace).
//
// Remote is the relying service's cached view of the issuer's JWK Set,
// fetched by a fetch.Fetcher (immutable snapshot, singleflight, conditional
// requests, max-age clamp, every fetch under a fetch.Policy): Remote adds
// the kid lookup, a fetch.Cooldown on unknown kids, and the last good set
// kept for MaxStale, then fail closed. ParseJWKS skips, rather than trusts, keys that are private,
// not for signing, outside the allowlist, or listed twice.
//
// # What it does not do
//
// It does not verify tokens (package token does) or withdraw them before
// they expire (package revocation does): removing a key from the JWKS
// reaches a verifier only at its next refresh. It never fetches keys from a
// URL a token names, and it does not keep private keys anywhere but the key
// directory or memory.
//
// The files: keyring.go (keys, states, key files), rotate.go, jwks.go (JWK
// Set encoding, Thumbprint, Static), remote.go.
package keys
