// Package shared holds what SERVER1 and SERVER2 both need that is not
// cryptography: configuration from flags and environment variables, the
// echo instance with its middleware (request ids, structured request logs,
// security headers, body limits, metrics), the single error handler that
// renders failures as an HTML page for browsers or RFC 9457 problem+json for
// APIs, health endpoints, page rendering (with a link back to the portal
// that sent the user, Renderer.SetPortal), the words both servers use for a
// task (DescribeTask), the in-memory session store
// (Sessions: random ids kept only as their SHA-256, total and per-owner
// bounds, reservations taken before an irreversible step), and the server
// lifecycle with timeouts and graceful shutdown. Metrics holds the series
// every server has; each server registers its own beside them.
//
// It never sees a token's contents: handlers pass broker errors to FromBroker,
// which keeps only the stable reason code.
package shared
