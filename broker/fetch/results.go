package fetch

import (
	"math/rand/v2"
	"time"
)

// The results a remote-document fetcher (keys.Remote, revocation.Remote)
// reports to its OnFetch callback, one per fetch attempt.
const (
	// ResultOK: a document was fetched and replaced the one held.
	ResultOK = "ok"
	// ResultNotModified: the issuer answered 304 to the previous ETag; the
	// held document is unchanged and counts as freshly fetched.
	ResultNotModified = "not_modified"
	// ResultError: the fetch failed; the last good document stays in use.
	ResultError = "error"
)

// Jitter spreads d by ±10%, so replicas polling one issuer do not fetch in
// step.
func Jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	spread := int64(d) / 5
	return d - time.Duration(spread/2) + time.Duration(rand.Int64N(spread+1))
}
