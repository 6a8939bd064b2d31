package main

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"testing"

	"github.com/handoffbroker/handoff/shared/sharedtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const protocolDoc = "../docs/PROTOCOL.md"

// TestProtocolDocListsEveryRoute: docs/PROTOCOL.md's SERVER2 table lists
// exactly the routes SERVER2's router serves.
func TestProtocolDocListsEveryRoute(t *testing.T) {
	ta := newTestApp(t, nil)
	sharedtest.MatchRoutes(t, "SERVER2",
		sharedtest.DocumentedRoutes(t, protocolDoc, "### SERVER2 (relying service)"),
		sharedtest.EchoRoutes(ta.app.echo))
}

// TestProtocolDocReadyzMembers: /readyz names exactly the checks
// docs/PROTOCOL.md lists for SERVER2.
func TestProtocolDocReadyzMembers(t *testing.T) {
	ta := newTestApp(t, nil)
	res, err := http.Get(ta.srv.URL + "/readyz")
	require.NoError(t, err)
	defer res.Body.Close()
	var body map[string]string
	require.NoError(t, json.NewDecoder(res.Body).Decode(&body))
	var want []string
	for _, row := range sharedtest.DocTable(t, protocolDoc, "### Readiness") {
		if row[0] == "SERVER2" {
			want = append(want, row[1])
		}
	}
	require.NotEmpty(t, want)
	assert.ElementsMatch(t, want, slices.Collect(maps.Keys(body)))
}
