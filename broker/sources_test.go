package broker

import (
	"context"
	"testing"

	"github.com/handoffbroker/handoff/broker/token"
	"github.com/stretchr/testify/assert"
)

func TestIssuerKeys_UnavailableBeforeDiscovery(t *testing.T) {
	var k issuerKeys

	_, err := k.LookupKey(context.Background(), "any-kid")

	assert.Equal(t, token.ReasonUnavailable, token.ReasonOf(err))
	assert.False(t, k.Ready())
}
