package main

import (
	"github.com/handoffbroker/handoff/broker/fetch"
)

func (a *App) revocationListAge() float64 {
	at := a.rp.Status().Revocation.FetchedAt
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
