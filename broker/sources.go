package broker

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/handoffbroker/handoff/broker/keys"
	"github.com/handoffbroker/handoff/broker/revocation"
	"github.com/handoffbroker/handoff/broker/token"
)

// issuerKeys is the KeySource a RelyingParty verifies with: the keys given
// in Config.Keys, or else the issuer's remote JWKS once its URL is known.
// Until then every lookup fails closed with ReasonUnavailable. The URL comes only from configuration or from the
// trusted issuer's metadata, never from a token (a "jku" in a token would
// let its author choose the keys that verify it).
type issuerKeys struct {
	static token.KeySource
	remote atomic.Pointer[remoteKeys]
}

// remoteKeys is a remote JWKS with the URL it was built for.
type remoteKeys struct {
	url string
	*keys.Remote
}

// LookupKey implements token.KeySource.
func (k *issuerKeys) LookupKey(ctx context.Context, kid string) (token.PublicKey, error) {
	if k.static != nil {
		return k.static.LookupKey(ctx, kid)
	}
	rk := k.remote.Load()
	if rk == nil {
		return token.PublicKey{}, &token.Error{Reason: token.ReasonUnavailable, Claim: "kid", Detail: "the issuer's JWKS URL is not discovered yet"}
	}
	return rk.LookupKey(ctx, kid)
}

// Ready reports whether usable keys are cached.
func (k *issuerKeys) Ready() bool {
	if k.static != nil {
		return true
	}
	rk := k.remote.Load()
	return rk != nil && rk.Ready()
}

// Status describes the cached keys; zero before discovery.
func (k *issuerKeys) Status() keys.RemoteStatus {
	if rk := k.remote.Load(); rk != nil {
		return rk.Status()
	}
	return keys.RemoteStatus{}
}

// listKeys is the KeySource that verifies revocation lists: the issuer's
// keys, except that a list signed by a key not cached yet makes the relying
// party refetch the JWKS at once instead of waiting out the unknown-kid
// cool-down, which exists for tokens. After a key is revoked, the list
// naming it is signed by its brand-new replacement; the cool-down would
// otherwise delay that revocation by up to 10s. Lists come only from the
// configured or discovered URL, once per poll, so this costs at most one
// fetch per poll.
type listKeys struct{ keys *issuerKeys }

// LookupKey implements token.KeySource.
func (l listKeys) LookupKey(ctx context.Context, kid string) (token.PublicKey, error) {
	k, err := l.keys.LookupKey(ctx, kid)
	rk := l.keys.remote.Load()
	if token.ReasonOf(err) != token.ReasonUnknownKey || rk == nil {
		return k, err
	}
	if rk.Refresh(ctx) != nil {
		return k, err
	}
	return rk.LookupKey(ctx, kid)
}

// revokedKeys is Explain's KeySource: the issuer's keys, except that a kid
// the issuer no longer publishes but its held list names as revoked is
// reported as revoked rather than unknown. Revoking a key removes it from
// the JWKS at once, so a freshly fetched JWKS never holds it; the list says
// why. The kid is unverified here, which is safe: it can only turn one
// refusal into another.
type revokedKeys struct {
	keys   *issuerKeys
	list   *issuerRevocations
	issuer string
}

// LookupKey implements token.KeySource.
func (k revokedKeys) LookupKey(ctx context.Context, kid string) (token.PublicKey, error) {
	key, err := k.keys.LookupKey(ctx, kid)
	if token.ReasonOf(err) != token.ReasonUnknownKey {
		return key, err
	}
	// A reference naming only the key: the list's jti and subject entries
	// are never empty, so only a kid entry can match.
	if token.ReasonOf(k.list.HeldRevocation(token.TokenRef{Issuer: k.issuer, KeyID: kid})) == token.ReasonRevoked {
		return token.PublicKey{}, &token.Error{Reason: token.ReasonRevoked, Claim: "kid", Detail: "the signing key was revoked; the issuer no longer publishes it"}
	}
	return key, err
}

// issuerRevocations is the RevocationChecker a RelyingParty verifies with:
// the issuer's polled revocation list once its URL is known, or nothing
// when revocation is off (RevocationOff). Until it is one or the other,
// every check fails closed with ReasonUnavailable.
type issuerRevocations struct {
	remote atomic.Pointer[remoteList]
	off    atomic.Bool
	// failOpen keeps the relying party ready with a stale list, as it then
	// still accepts tokens (Config.RevocationFailOpen).
	failOpen bool
}

// CheckRevoked implements token.RevocationChecker.
func (r *issuerRevocations) CheckRevoked(ctx context.Context, t token.TokenRef) error {
	if rr := r.remote.Load(); rr != nil {
		return rr.CheckRevoked(ctx, t)
	}
	if r.off.Load() {
		return nil
	}
	return &token.Error{Reason: token.ReasonUnavailable, Detail: "the issuer's revocation list is not discovered yet"}
}

// exceptShared is the RevocationChecker of a verifier whose replay store
// asks the shared revocation mark in its consume (revocation.GuardedReplay):
// the issuer's revocations without the question to the Sharer.
type exceptShared struct{ *issuerRevocations }

// CheckRevoked implements token.RevocationChecker.
func (r exceptShared) CheckRevoked(ctx context.Context, t token.TokenRef) error {
	if rr := r.remote.Load(); rr != nil {
		return rr.CheckRevokedExceptShared(ctx, t)
	}
	return r.issuerRevocations.CheckRevoked(ctx, t)
}

// remoteList is a polled revocation list with the URL it was built for.
type remoteList struct {
	url string
	*revocation.Remote
}

// HeldRevocation returns a ReasonRevoked error when the held list names
// the token t. It returns nil when revocation is off or no list is held.
func (r *issuerRevocations) HeldRevocation(t token.TokenRef) error {
	if rr := r.remote.Load(); rr != nil {
		return rr.HeldRevocation(t)
	}
	return nil
}

// Status describes the held list; zero when there is none.
func (r *issuerRevocations) Status() revocation.RemoteStatus {
	if rr := r.remote.Load(); rr != nil {
		return rr.Status()
	}
	return revocation.RemoteStatus{}
}

// check is the readiness condition: a fresh list is held (or fail-open).
// When revocation is off it reports ErrRevocationOff.
func (r *issuerRevocations) check(context.Context) error {
	if rr := r.remote.Load(); rr != nil {
		if !rr.Ready() && !r.failOpen {
			return errors.New("no revocation list fetched within RevocationMaxStale")
		}
		return nil
	}
	if r.off.Load() {
		return ErrRevocationOff
	}
	return errors.New("the issuer's revocation list is not discovered yet")
}
