// Package broker is the relying-party library of the handoff broker: what a
// Go service needs to accept a signed-in user handed over by an issuer
// (SERVER1) for one task, with short-lived, audience-scoped, single-use
// JWTs. Its subpackages are the token engine and a test kit.
//
// # Accepting handoffs
//
// NewRelyingParty is the one call: given the issuer's URL and this
// service's audience it returns a RelyingParty that discovers the issuer's
// handoff configuration (MetadataPath), keeps the issuer's JWK Set and
// signed revocation list fresh in the background, records used tokens in a
// replay store (an embedded memory store unless Config.Replay names one,
// such as replaystore/redisstore for replicas), and reports readiness.
//
//   - Verify checks a token and consumes it; Explain runs the same checks
//     without consuming, step by step. A troubleshooting tool builds an
//     unstarted relying party with Config.ExplainOnly (no replay store),
//     calls Refresh once (discovery and one fetch of each document, no
//     pollers; a *RefreshError says what failed) and then Explain.
//   - Config.Keys pins the issuer's keys instead of fetching its JWK Set;
//     Config.Validate checks a Config, naming fields the caller's way.
//   - StartHandler is the browser's handoff start (GET /handoff/start):
//     it sets a fresh binding secret in a cookie and redirects to the
//     issuer's bound_handoff_endpoint with the secret's digest as nonce.
//   - HandoffHandler is the net/http handler of the browser's form POST:
//     with Config.Binding BindingRequired (the default) it refuses a
//     foreign or null Origin and a token not bound to a secret the
//     browser presents, then verifies, then calls the application's Open
//     with the claims.
//   - Middleware protects Bearer routes (RFC 6750) and puts the claims in
//     the request context (ClaimsFromContext).
//   - Ready, Checks and Status serve /readyz and metrics; HeldRevocation
//     lets sessions made from tokens end when the issuer revokes them.
//
// Every refusal is an *Error with a stable code (a token.Reason, or
// CodeTokenInURL, CodeMissingToken, CodeInvalidRequest, CodeWrongOrigin,
// CodeInternal)
// rendered by an ErrorFunc: WriteError by default, an HTML page for
// browsers and an RFC 9457 problem details body (Problem) otherwise, with
// the RFC 6750 §3 challenge its status calls for on Bearer routes. Nothing
// here writes or logs a token.
//
// # What it guarantees
//
// A token is accepted only when signed by a key the configured issuer
// publishes (never one a token names), of type handoff+jwt, for exactly
// this audience, unexpired, not revoked and never used before; see
// token.Verifier for the checks in order. Keys, list and metadata are
// fetched only from the configured or discovered URLs, under one
// fetch.Policy (no downgrade from https, no other host unless allowed).
// The handoff configuration must name the configured issuer (RFC 8414
// §3.3, against mix-up). Until the keys and the revocation list are in,
// every token fails closed as unavailable; revocation is off only when
// Config.RevocationURL is RevocationOff. Config is checked in New, every
// problem reported at once.
//
// # What it does not do
//
// It keeps no sessions and knows no framework: the application opens its
// own session in Open (and should confirm the task with the user before
// acting: the handoff form is cross-site by design). Binding stops login
// CSRF and the use of a token leaked before use by another client; it
// does not stop a client that holds both the token and the browser's
// binding cookie. The embedded memory
// store protects one process only, and refuses tokens issued before it
// started. It trusts one issuer (token.Verifier trusts several, each with
// its own keys). It does not rotate pinned Config.Keys.
//
// The files: relyingparty.go (Config, RelyingParty, Refresh), sources.go
// (the key and revocation sources it verifies with), discovery.go
// (Metadata, Discover), binding.go (Binding, StartHandler, the binding
// cookie and Origin checks), http.go (HandoffHandler, Middleware, WriteError,
// Problem), errors.go (Error, ErrorFor and the public wording of each
// reason).
//
// # The engine
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
//   - [github.com/handoffbroker/handoff/broker/fetch]: the one Fetcher of
//     the issuer's documents (keys, revocation list, discovery) and the URL
//     Policy every fetch obeys.
//   - [github.com/handoffbroker/handoff/broker/brokertest]: the test kit for
//     relying services: an issuer on httptest and a settable Clock.
//
// The subpackages are the only code in this module that touches JOSE
// (go-jose v4); none of this module's broker code knows an HTTP framework
// (SERVER2 mounts these net/http handlers in echo with a thin adapter of
// its own). token imports neither keys nor revocation: it declares the
// interfaces it consumes (KeySource, Signer, ReplayStore,
// RevocationChecker) and the other packages implement them.
package broker
