package shared

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

// ServerConfig bounds how long a client may hold a connection.
type ServerConfig struct {
	// Addr is the listen address. Required.
	Addr string
	// ReadHeaderTimeout default 5s (slowloris).
	ReadHeaderTimeout time.Duration
	// ReadTimeout default 10s.
	ReadTimeout time.Duration
	// WriteTimeout default 15s.
	WriteTimeout time.Duration
	// IdleTimeout default 60s.
	IdleTimeout time.Duration
	// ShutdownTimeout is how long in-flight requests get after the stop
	// signal. Default 10s.
	ShutdownTimeout time.Duration
	// MaxHeaderBytes default 16 KiB.
	MaxHeaderBytes int
	// TLSCertFile and TLSKeyFile, both set, make the server speak https
	// with that PEM certificate chain and key. Default: both empty, plain
	// http (behind a TLS-terminating proxy, or the local demo).
	TLSCertFile, TLSKeyFile string
}

// TLS reports whether the server speaks https.
func (c ServerConfig) TLS() bool { return c.TLSCertFile != "" }

// Scheme is "https" when the server speaks TLS, else "http".
func (c ServerConfig) Scheme() string {
	if c.TLS() {
		return "https"
	}
	return "http"
}

func (c *ServerConfig) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.ReadHeaderTimeout, 5*time.Second)
	def(&c.ReadTimeout, 10*time.Second)
	def(&c.WriteTimeout, 15*time.Second)
	def(&c.IdleTimeout, 60*time.Second)
	def(&c.ShutdownTimeout, 10*time.Second)
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = 16 << 10
	}
}

// Serve runs e on cfg.Addr until ctx is done (wire it to SIGTERM with
// signal.NotifyContext), then shuts down gracefully, logging "shutting
// down" and, once every request has finished, "stopped". ready, if not nil, is
// called with the bound address once the listener is open.
func Serve(ctx context.Context, e *echo.Echo, cfg ServerConfig, log *slog.Logger, ready func(addr string)) error {
	if cfg.Addr == "" {
		return errors.New("shared: ServerConfig.Addr is required")
	}
	if (cfg.TLSCertFile == "") != (cfg.TLSKeyFile == "") {
		return errors.New("shared: ServerConfig.TLSCertFile and TLSKeyFile are set together or not at all")
	}
	cfg.defaults()
	var tlsCfg *tls.Config
	if cfg.TLS() {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			return fmt.Errorf("tls certificate: %w", err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Addr, err)
	}
	srv := &http.Server{
		Handler:           e,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		TLSConfig:         tlsCfg,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("listening", "addr", ln.Addr().String())
	if ready != nil {
		ready(ln.Addr().String())
	}
	errc := make(chan error, 1)
	go func() {
		if cfg.TLS() {
			errc <- srv.ServeTLS(ln, "", "")
			return
		}
		errc <- srv.Serve(ln)
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}
