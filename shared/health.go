package shared

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

// Check is one readiness condition: nil when satisfied.
type Check struct {
	Name  string
	Check func(ctx context.Context) error
}

// ErrCheckOff is what a Check returns, possibly wrapped, for a condition
// that configuration turned off explicitly (SERVER2 with
// revocation-url=off): Readyz reports it as "off" rather than "ok", so the
// choice shows wherever readiness is watched, and it does not make the
// server unready.
var ErrCheckOff = errors.New("turned off by configuration")

// Readyz serves the readiness of the server: 200 when every check passes
// or is off, with "ok" or "off" per check; 503 otherwise, with the failing
// checks named "fail". Checks get 2 seconds in all. Failure detail is not
// shown, only the check's name.
func Readyz(checks ...Check) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
		defer cancel()
		status := http.StatusOK
		body := map[string]string{}
		for _, ch := range checks {
			err := ch.Check(ctx)
			switch {
			case err == nil:
				body[ch.Name] = "ok"
			case errors.Is(err, ErrCheckOff):
				body[ch.Name] = "off"
			default:
				status = http.StatusServiceUnavailable
				body[ch.Name] = "fail"
			}
		}
		return c.JSON(status, body)
	}
}
