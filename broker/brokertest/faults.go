package brokertest

import (
	"context"
	"errors"
	"time"

	"github.com/handoffbroker/handoff/broker/token"
)

// ErrUnavailable is the error FailingKeys and FailingReplayStore return.
var ErrUnavailable = errors.New("brokertest: unavailable")

// FailingKeys is a token.KeySource that cannot answer, like a JWKS endpoint
// that is down. A verifier using it must refuse every token as
// token.ReasonUnavailable.
type FailingKeys struct{}

// LookupKey returns ErrUnavailable.
func (FailingKeys) LookupKey(context.Context, string) (token.PublicKey, error) {
	return token.PublicKey{}, ErrUnavailable
}

// FailingReplayStore is a token.ReplayStore that cannot answer, like a
// Redis that is down. A verifier using it must refuse every token as
// token.ReasonUnavailable.
type FailingReplayStore struct{}

// Consume returns ErrUnavailable.
func (FailingReplayStore) Consume(context.Context, string, time.Time) error {
	return ErrUnavailable
}
