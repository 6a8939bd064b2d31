// Package broker is the token engine of the handoff broker: it mints,
// verifies and keys short-lived, audience-scoped, single-task JWTs that carry
// a signed-in user from one server (the issuer) to another (the relying
// service) for one task. Its subpackages are the engine; this package holds
// no code of its own yet.
//
//   - [github.com/handoffbroker/handoff/broker/token]: the token core. The
//     Minter signs handoff tokens and revocation lists; the Verifier checks
//     them, in a fixed order, and consumes each token's jti once in a
//     ReplayStore. Every rejection is a *token.Error with a stable Reason.
//   - [github.com/handoffbroker/handoff/broker/keys]: the issuer's Keyring
//     (key files, rotation, the published JWK Set) and the relying
//     service's key sources: Static keys and Remote, the cached JWK Set.
//   - [github.com/handoffbroker/handoff/broker/revocation]: the issuer's
//     revocation State and the Publisher of its signed list; Remote, the
//     relying service's poller of that list.
//   - [github.com/handoffbroker/handoff/broker/fetch]: the URL Policy every
//     remote fetch (keys, revocation list, discovery) obeys.
//   - [github.com/handoffbroker/handoff/broker/brokertest]: the test kit for
//     relying services: an issuer on httptest and a settable Clock.
//
// The subpackages are the only code in this module that touches JOSE
// (go-jose v4); they know nothing of HTTP frameworks. token imports neither
// keys nor revocation: it declares the interfaces it consumes (KeySource,
// Signer, ReplayStore, RevocationChecker) and the other packages implement
// them.
package broker
