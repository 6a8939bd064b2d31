// Package brokertest is a test kit for services that accept handoff
// tokens: a whole issuer on httptest and a settable clock, cleaned up with
// t.Cleanup. It is for tests only.
//
// StartIssuer serves, like SERVER1, the issuer's JSON Web Key Set
// (/.well-known/jwks.json, RFC 7517 §5), its handoff configuration
// (/.well-known/handoff-configuration, with the members SERVER1 serves:
// issuer, jwks_uri, revocation_endpoint, token_types_supported,
// signing_alg_values_supported, handoff_endpoints) and its signed revocation
// list (/revocations, "revocation+jwt", with ETag and If-None-Match). Point
// the service under test at Issuer.URL and mint tokens with Issuer.Mint;
// revoke them, their subject or their key with the Revoke methods; rotate or
// replace keys; take an endpoint down with SetDown to test outages.
//
// Clock gives every component in a test the same settable "now" (pass
// Clock.Now to WithNow and to the service's own Now fields), so tests move
// time with Advance instead of sleeping.
//
// PublicJWKS checks that a published JWK Set holds no private key member.
//
// FailingKeys and FailingReplayStore stand in for a key source or replay
// store that cannot answer, so a test can check that the service refuses the
// token rather than accepting it unchecked.
//
// # What it does not do
//
// It is not an issuer to run in production: keys live in a temporary
// directory removed when the test ends, the revocation state is not
// persisted, and the servers listen on loopback only. It does not
// authenticate users or render SERVER1's pages, and it builds only on the
// public API of broker/token, broker/keys and broker/revocation, so what it
// can do a test can do by hand.
//
// Its functions take a T, the part of testing.TB they use, so that an
// Example can run them too; pass the test's t.
//
// The files: clock.go, issuer.go (StartIssuer and its options), jwks.go,
// faults.go.
package brokertest
