package fetch

// The results a Fetcher reports to its OnFetch callback, one per fetch
// attempt; keys.Remote and revocation.Remote pass them on to theirs.
const (
	// ResultOK: a document was fetched and replaced the one held.
	ResultOK = "ok"
	// ResultNotModified: the issuer answered 304 to the previous ETag; the
	// held document is unchanged and counts as freshly fetched.
	ResultNotModified = "not_modified"
	// ResultError: the fetch failed; the last good document stays held.
	ResultError = "error"
)
