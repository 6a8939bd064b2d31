// Package revocation withdraws handoff tokens before they expire: by jti,
// by subject since a not-before time ("sign out everywhere"), or by signing
// key.
//
// On the issuer, State records the withdrawals (in memory, or one file per
// entry in a directory several processes share) and answers
// token.RevocationChecker; Publisher serves its live entries as a signed
// list, "revocation+jwt" (token.Minter.SignRevocationList), re-signed only
// when the entries or the signing key change or half the list's lifetime
// has passed. On the relying service, Remote polls that list through a
// fetch.Fetcher, verifies it with its own validation profile (so a list is
// never accepted as a handoff token nor the reverse, RFC 8725 §3.12),
// refuses a list older than the one held (rollback) and a 304 for an
// expired one, and fails closed once no poll has succeeded for MaxStale.
// A Sharer (the Redis replay store) spreads revoked jtis among replicas;
// a ConsumeGuard is a Sharer that is also the replay store and asks a
// token's mark in the same atomic step as its consume (GuardedReplay), so a
// relying party pays one store round trip per token, not two.
//
// # What it does not do
//
// It does not revoke keys in the JWKS (keys.Keyring.RevokeAndReplace does;
// revocation.State.RevokeKey makes verifiers refuse the key's tokens within
// one poll) and it does not end sessions: a relying service asks
// Remote.HeldRevocation or SubjectNotBefore for the sessions it made. A 304
// answer is trusted only while the held list is itself unexpired.
//
// The files: state.go (State and its index), publisher.go, remote.go,
// shared.go (Sharer, ConsumeGuard), errors.go (the rejections it returns,
// as *token.Error).
package revocation
