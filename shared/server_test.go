package shared

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net/http"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/handoffbroker/handoff/shared/sharedtest"
)

// writeTestCert writes a self-signed certificate for 127.0.0.1 and its key
// into dir.
func writeTestCert(t testing.TB, dir string) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	c, err := sharedtest.NewCert()
	require.NoError(t, err)
	certFile, keyFile = c.WriteFiles(t, dir)
	return certFile, keyFile, c.Roots
}

func TestServeTLS(t *testing.T) {
	certFile, keyFile, roots := writeTestCert(t, t.TempDir())
	e := echo.New()
	e.GET("/", func(c echo.Context) error { return c.String(http.StatusOK, "hello") })
	ctx, cancel := context.WithCancel(context.Background())
	bound := make(chan string, 1)
	done := make(chan error, 1)
	cfg := ServerConfig{Addr: "127.0.0.1:0", TLSCertFile: certFile, TLSKeyFile: keyFile}
	assert.Equal(t, "https", cfg.Scheme())
	go func() {
		done <- Serve(ctx, e, cfg, slog.New(slog.DiscardHandler), func(addr string) { bound <- addr })
	}()
	addr := <-bound
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}}
	resp, err := client.Get("https://" + addr + "/")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, "hello", string(body))
	cancel()
	require.NoError(t, <-done)
}

func TestServeTLSConfigErrors(t *testing.T) {
	certFile, keyFile, _ := writeTestCert(t, t.TempDir())
	for _, tt := range []struct {
		name      string
		give      ServerConfig
		wantError string
	}{
		{name: "fail/cert_without_key", give: ServerConfig{Addr: "127.0.0.1:0", TLSCertFile: certFile}, wantError: "set together"},
		{name: "fail/key_without_cert", give: ServerConfig{Addr: "127.0.0.1:0", TLSKeyFile: keyFile}, wantError: "set together"},
		{name: "fail/key_is_not_a_key", give: ServerConfig{Addr: "127.0.0.1:0", TLSCertFile: certFile, TLSKeyFile: certFile}, wantError: "tls certificate"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := Serve(context.Background(), echo.New(), tt.give, slog.New(slog.DiscardHandler), func(string) {
				t.Error("the server listened despite a bad TLS configuration")
			})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantError)
		})
	}
}
