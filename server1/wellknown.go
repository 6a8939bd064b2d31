package main

import (
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"
)

// handleJWKS publishes the keyring's public keys (next, current and
// retired), cacheable for Config.JWKSMaxAge.
func (a *app) handleJWKS(c echo.Context) error {
	body, err := a.keys.JWKS()
	if err != nil {
		return err
	}
	a.metrics.JWKSServed.Inc()
	c.Response().Header().Set("Cache-Control", a.publicCache())
	return c.Blob(http.StatusOK, "application/jwk-set+json", body)
}

// handleDiscovery serves the issuer's metadata: where its keys are and
// which services it hands off to.
func (a *app) handleDiscovery(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", a.publicCache())
	return c.JSONBlob(http.StatusOK, a.discovery)
}

func (a *app) publicCache() string {
	return fmt.Sprintf("public, max-age=%d", int64(a.cfg.JWKSMaxAge.Seconds()))
}
