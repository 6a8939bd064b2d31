package revocation

import (
	"fmt"

	"github.com/handoffbroker/handoff/broker/token"
)

// revoked is the rejection of a token that a live entry covers.
func revoked(claim, format string, args ...any) *token.Error {
	return &token.Error{Reason: token.ReasonRevoked, Claim: claim, Detail: fmt.Sprintf(format, args...)}
}

// unavailable is the rejection of a token whose revocation status cannot be
// told: the verifier fails closed.
func unavailable(claim, format string, args ...any) *token.Error {
	return &token.Error{Reason: token.ReasonUnavailable, Claim: claim, Detail: fmt.Sprintf(format, args...)}
}

func unavailableErr(err error) *token.Error {
	return &token.Error{Reason: token.ReasonUnavailable, Err: err}
}
