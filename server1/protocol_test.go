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

// TestProtocolDocListsEveryRoute: docs/PROTOCOL.md's SERVER1 table lists
// exactly the routes SERVER1's router serves.
func TestProtocolDocListsEveryRoute(t *testing.T) {
	ts := newTestServer(t, testConfig(t))
	sharedtest.MatchRoutes(t, "SERVER1",
		sharedtest.DocumentedRoutes(t, protocolDoc, "### SERVER1 (issuer)"),
		sharedtest.EchoRoutes(ts.app.echo))
}

// TestProtocolDocDiscoveryMembers: the discovery document has exactly the
// members docs/PROTOCOL.md lists.
func TestProtocolDocDiscoveryMembers(t *testing.T) {
	ts := newTestServer(t, testConfig(t))
	var doc map[string]json.RawMessage
	getJSON(t, ts.srv.URL+"/.well-known/handoff-configuration", &doc)
	var want []string
	for _, row := range sharedtest.DocTable(t, protocolDoc, "`GET /.well-known/handoff-configuration`: the discovery document") {
		want = append(want, row[0])
	}
	assert.ElementsMatch(t, want, slices.Collect(maps.Keys(doc)))
}

// TestProtocolDocReadyzMembers: /readyz names exactly the checks
// docs/PROTOCOL.md lists for SERVER1.
func TestProtocolDocReadyzMembers(t *testing.T) {
	ts := newTestServer(t, testConfig(t))
	var body map[string]string
	getJSON(t, ts.srv.URL+"/readyz", &body)
	var want []string
	for _, row := range sharedtest.DocTable(t, protocolDoc, "### Readiness") {
		if row[0] == "SERVER1" {
			want = append(want, row[1])
		}
	}
	require.NotEmpty(t, want)
	assert.ElementsMatch(t, want, slices.Collect(maps.Keys(body)))
}

func getJSON(t testing.TB, url string, v any) {
	t.Helper()
	res, err := http.Get(url)
	require.NoError(t, err)
	defer res.Body.Close()
	require.NoError(t, json.NewDecoder(res.Body).Decode(v))
}
