package main

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMetricsAreServer1s: SERVER1's /metrics carries the common HTTP series
// and the issuer's own, none of SERVER2's (it used to show SERVER2's replay
// store histogram, at zero).
func TestMetricsAreServer1s(t *testing.T) {
	ts := newTestServer(t, testConfig(t))
	b := ts.browser(t)
	csrf := b.signIn("alice", "alice-demo-pw")
	require.Equal(t, http.StatusOK, b.PostForm("/handoffs", url.Values{csrfField: {csrf}, "audience": {payments}, "task_id": {"transfer-123"}}, nil).StatusCode)
	require.Equal(t, http.StatusOK, b.Get("/.well-known/jwks.json").StatusCode)

	families, err := ts.app.metrics.Registry.Gather()
	require.NoError(t, err)
	var names []string
	for _, f := range families {
		if strings.HasPrefix(f.GetName(), "handoff_") {
			names = append(names, f.GetName())
		}
	}
	assert.Equal(t, []string{"handoff_http_requests_total", "handoff_jwks_served_total", "handoff_tokens_minted_total"}, slices.Sorted(slices.Values(names)))

	page := b.Get("/metrics")
	require.Equal(t, http.StatusOK, page.StatusCode)
	assert.Contains(t, page.Body, `handoff_tokens_minted_total{audience="`+payments+`"} 1`)
	for _, theirs := range []string{"handoff_verifications_total", "handoff_jwks_fetches_total", "handoff_replay_store", "handoff_revocation_"} {
		assert.False(t, strings.Contains(page.Body, theirs), "/metrics shows %s", theirs)
	}
}
