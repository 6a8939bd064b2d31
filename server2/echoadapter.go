package main

import (
	"context"
	"net/http"

	"github.com/handoffbroker/handoff/broker"
	"github.com/handoffbroker/handoff/shared"
	"github.com/labstack/echo/v4"
)

// The echo adapter: SERVER2 mounts the broker's net/http handlers in echo,
// so their refusals reach echo's one error handler (the HTML page or
// problem+json, logged with the request id) and their callbacks see the
// echo context.

// echoCall is one request through a broker handler: its echo context,
// the refusal the broker handed to echoRefused, and the session room
// reserveSession took for openSession.
type echoCall struct {
	c    echo.Context
	err  error
	room *shared.Reservation[session]
}

type echoCallKey struct{}

func callOf(r *http.Request) *echoCall { return r.Context().Value(echoCallKey{}).(*echoCall) }

// echoHandler runs h as an echo handler and returns the refusal h gave
// echoRefused, for echo's error handler to render.
func echoHandler(h http.Handler) echo.HandlerFunc {
	return func(c echo.Context) error {
		call := &echoCall{c: c}
		r := c.Request()
		r = r.WithContext(context.WithValue(r.Context(), echoCallKey{}, call))
		c.SetRequest(r)
		h.ServeHTTP(c.Response(), r)
		return call.err
	}
}

// echoBehind runs h behind the net/http middleware mw.
func echoBehind(mw func(http.Handler) http.Handler, h echo.HandlerFunc) echo.HandlerFunc {
	return echoHandler(mw(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		call := callOf(r)
		call.err = h(echoContext(r))
	})))
}

// echoContext returns the echo context of a request passed through
// echoHandler, its request set to r (which may carry new context values).
func echoContext(r *http.Request) echo.Context {
	c := callOf(r).c
	c.SetRequest(r)
	return c
}

// echoRefused is the broker.ErrorFunc of handlers under echoHandler: it
// leaves the rendering to echo's error handler.
func echoRefused(_ http.ResponseWriter, r *http.Request, e *broker.Error) { callOf(r).err = e }
