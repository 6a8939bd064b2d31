package main

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"

	"github.com/handoffbroker/handoff/broker/fetch"
	"github.com/handoffbroker/handoff/broker/revocation"
	"github.com/handoffbroker/handoff/broker/token"
	"github.com/handoffbroker/handoff/shared"
)

// issuerRevocations is the RevocationChecker SERVER2 verifies with: the
// issuer's polled revocation list once its URL is known, or nothing when
// revocation is off (revocation-url=off). Until it is one or the other,
// every check fails closed with ReasonUnavailable.
type issuerRevocations struct {
	remote atomic.Pointer[revocation.Remote]
	off    atomic.Bool
	// failOpen keeps the service ready with a stale list, as it then
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

// HeldRevocation returns a ReasonRevoked error when the held list names
// the token t: its key, its jti, or its subject ("sign out everywhere")
// since after t was issued. It returns nil when revocation is off or no
// list is held yet.
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

// check is the /readyz condition: a fresh list is held (or fail-open).
// When revocation is off it reports shared.ErrCheckOff, so /readyz says
// "off" rather than "ok".
func (r *issuerRevocations) check(context.Context) error {
	if rr := r.remote.Load(); rr != nil {
		if !rr.Ready() && !r.failOpen {
			return errors.New("no revocation list fetched within revocation-max-stale")
		}
		return nil
	}
	if r.off.Load() {
		return shared.ErrCheckOff
	}
	return errors.New("the issuer's revocation list is not discovered yet")
}

// listKeys is the KeySource that verifies revocation lists: the issuer's
// keys, except that a list signed by a key not cached yet makes SERVER2
// refetch the JWKS at once instead of waiting out the unknown-kid
// cool-down, which exists for tokens. After `server1 keys revoke` the list
// naming the revoked key is signed by its brand-new replacement; the
// cool-down would otherwise delay that revocation by up to 10s. Lists come
// only from the configured URL, once per poll, so this costs at most one
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

// newRemoteRevocations builds the poller of the issuer's list at listURL,
// verified with the issuer's keys. With a replay store that replicas share
// (Redis), each replica records the revocations it learns there.
func (a *App) newRemoteRevocations(listURL string) (*revocation.Remote, error) {
	c := a.cfg
	rc := revocation.RemoteConfig{
		URL:      listURL,
		Policy:   a.fetch,
		Client:   &http.Client{Timeout: c.JWKSTimeout, Transport: a.opts.Transport},
		Keys:     listKeys{a.keys},
		Issuer:   c.TrustedIssuer,
		Interval: c.RevocationInterval,
		MaxStale: c.RevocationMaxStale,
		FailOpen: c.RevocationFailOpen,
		Timeout:  c.JWKSTimeout,
		Leeway:   c.Leeway,
		Now:      a.opts.Now,
		OnFetch:  a.onRevocationFetch,
	}
	if sh, ok := a.replay.Store.(revocation.Sharer); ok {
		rc.Shared = sh
	}
	return revocation.NewRemote(rc)
}

func (a *App) revocationListAge() float64 {
	at := a.revocations.Status().FetchedAt
	if at.IsZero() {
		return -1
	}
	return a.opts.Now().Sub(at).Seconds()
}

// onRevocationFetch counts a poll and, when it brought a new list, marks
// the sessions it names as revoked. An entry leaves the list when the
// token could no longer verify (a jti's at exp + 2m), but a session lasts
// session-ttl from the handoff: marking it when the entry is seen ends it
// however late its next request comes.
func (a *App) onRevocationFetch(result string) {
	a.metrics.RevocationFetches.WithLabelValues(result).Inc()
	if result != fetch.ResultOK {
		return
	}
	n := a.sessions.Update(func(sess *session) bool {
		if sess.Revoked != "" {
			return false
		}
		sess.Revoked = a.heldRevocation(*sess)
		return sess.Revoked != ""
	})
	if n > 0 {
		a.log.Info("sessions revoked", "count", n)
	}
}
