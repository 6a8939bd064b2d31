package broker

import (
	"log/slog"
	"sync"
)

// revocationLog logs the polls of the issuer's revocation list. A poll
// comes every few seconds, so a routine one logs at debug; what an
// operator must see logs at warn: a poll that failed (once until its
// error changes) and the held list going stale, which refuses new tokens
// unless the relying party fails open. A recovery logs at info.
type revocationLog struct {
	log      *slog.Logger
	url      string
	failOpen bool

	mu      sync.Mutex
	lastErr string
	stale   bool
}

// polled records one poll: its fetch result, its error ("" when it
// succeeded) and whether a fresh list is held afterwards.
func (l *revocationLog) polled(result, pollErr string, fresh bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.log.Debug("revocation list polled", "url", l.url, "result", result)
	switch {
	case pollErr != "" && pollErr != l.lastErr:
		l.log.Warn("revocation list poll failed", "url", l.url, "error", pollErr)
	case pollErr == "" && l.lastErr != "":
		l.log.Info("revocation list poll works again", "url", l.url)
	}
	l.lastErr = pollErr
	switch {
	case !fresh && !l.stale && l.failOpen:
		l.log.Warn("revocation list is stale: tokens are checked against the last list held (fail open)", "url", l.url)
	case !fresh && !l.stale:
		l.log.Warn("revocation list is stale: tokens are refused until a poll succeeds", "url", l.url)
	case fresh && l.stale:
		l.log.Info("revocation list is fresh again", "url", l.url)
	}
	l.stale = !fresh
}
