package shared

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

// Check is one readiness condition: nil when satisfied.
type Check struct {
	Name  string
	Check func(ctx context.Context) error
}

// Readyz serves the readiness of the server: 200 with "ok" per check when
// every check passes, 503 with the failing checks named otherwise. Checks
// get 2 seconds in all. Failure detail is not shown, only the check's name.
func Readyz(checks ...Check) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
		defer cancel()
		status := http.StatusOK
		body := map[string]string{}
		for _, ch := range checks {
			if err := ch.Check(ctx); err != nil {
				status = http.StatusServiceUnavailable
				body[ch.Name] = "fail"
				continue
			}
			body[ch.Name] = "ok"
		}
		return c.JSON(status, body)
	}
}
