package shared

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeTestCert writes a self-signed certificate for 127.0.0.1 and its key
// into dir.
func writeTestCert(t testing.TB, dir string) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600))
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	roots = x509.NewCertPool()
	roots.AddCert(cert)
	return certFile, keyFile, roots
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
