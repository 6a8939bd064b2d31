// Package e2e tests SERVER1 and SERVER2 as black boxes: it builds the real
// binaries once per test run, starts them as processes on loopback ports
// with their own key and data directories, and drives them through HTTP
// (net/http with a cookie jar, doing what a browser does) and through a real
// headless Chromium (chromedp).
//
// SERVER1 runs on localhost and SERVER2 on 127.0.0.1, so cookies and
// origins are really cross-site, as in a deployment. The tests check the
// behaviour the protocol promises (docs/PROTOCOL.md): one task per token,
// one use per token, tokens only in form POST bodies, the reason code on
// every rejection, and a bounded load on the issuer's JWKS endpoint.
//
// The package holds only tests; see README.md for how to run them.
package e2e
