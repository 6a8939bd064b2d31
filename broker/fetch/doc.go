// Package fetch fetches what a relying service needs from an issuer: its
// metadata, its JWK Set and its revocation list, one Fetcher each, under
// one URL Policy.
//
// Every remote fetch (keys.Remote, revocation.Remote, and a caller's
// discovery of the issuer's metadata) goes through one Policy: the URL and
// every redirect must be absolute http or https without credentials, https
// when the issuer is, on the issuer's host or one the caller allowed, and
// redirects are capped at 3 and may not leave https. It stops a downgrade
// and keeps fetches on hosts the operator chose (SSRF). A refusal is a
// *URLError with a stable URLReason.
//
// A Fetcher holds the latest good copy of one document as an immutable
// Snapshot behind an atomic pointer. Each fetch is a GET bounded by a
// timeout and a body cap, conditional on the held ETag (a 304 confirms the
// held document, unless the caller's ConfirmNotModified refuses it); its
// next refresh is due at the response's Cache-Control max-age (RFC 9111
// §5.2.2.1) clamped to the caller's bounds. Concurrent refreshes share one
// request (singleflight), whose leader re-checks freshness first; Start
// keeps the document fresh with jitter and retries with Backoff. Each
// caller supplies a Parse function that validates its document and sees
// the held snapshot (to refuse a rollback, say), and an OnChange hook runs
// for each new document. Cooldown bounds the refreshes that lookups of
// unknown items (kids) may trigger. Each fetch reports ResultOK,
// ResultNotModified or ResultError to OnFetch.
//
// # What it does not do
//
// It does not resolve names or filter addresses: an allowed host that
// resolves to an internal address is fetched. It does not decide how long
// a held document may be served once fetches fail (keys.Remote's and
// revocation.Remote's MaxStale do), nor verify a document's signature
// (Parse does, through package token). It never fetches a URL named by a
// token.
//
// The files: fetcher.go (Fetcher, Config, Snapshot, Status), urlpolicy.go,
// backoff.go (Backoff, Cooldown, Sleep), cachecontrol.go (max-age),
// results.go.
package fetch
