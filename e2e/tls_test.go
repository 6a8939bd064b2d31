package e2e

import (
	"crypto/tls"
	"net/http"

	"github.com/handoffbroker/handoff/shared/sharedtest"
)

// suiteCert is the self-signed certificate for localhost and 127.0.0.1 that
// the suite makes at start, for clusters that serve https: Go clients trust
// it through testTransport, the servers through SSL_CERT_FILE, Chromium
// through trustSuiteCert.
var suiteCert = func() *sharedtest.Cert {
	c, err := sharedtest.NewCert()
	if err != nil {
		panic(err)
	}
	return c
}()

// testTransport is http.DefaultTransport trusting suiteCert too.
func testTransport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: suiteCert.Roots, MinVersion: tls.VersionTLS12}
	return tr
}
