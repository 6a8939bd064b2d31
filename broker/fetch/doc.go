// Package fetch governs what a relying service fetches from an issuer: its
// metadata, its JWK Set and its revocation list.
//
// Every remote fetch (keys.Remote, revocation.Remote, and a caller's
// discovery of the issuer's metadata) goes through one Policy: the URL and
// every redirect must be absolute http or https without credentials, https
// when the issuer is, on the issuer's host or one the caller allowed, and
// redirects are capped at 3 and may not leave https. It stops a downgrade
// and keeps fetches on hosts the operator chose (SSRF). A refusal is a
// *URLError with a stable URLReason.
//
// # What it does not do
//
// It does not resolve names or filter addresses: an allowed host that
// resolves to an internal address is fetched. The fetching itself (timeouts,
// size caps, conditional requests, caching) is still done by each fetcher;
// the result codes they report are ResultOK, ResultNotModified and
// ResultError.
//
// The files: urlpolicy.go, results.go.
package fetch
