package main

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMetricsAreServer2s: SERVER2's /metrics carries the common HTTP series
// and the relying service's own, none of SERVER1's (it used to show
// handoff_jwks_served_total, at zero).
func TestMetricsAreServer2s(t *testing.T) {
	ta := newTestApp(t, nil)
	b := ta.newBrowser()
	require.Equal(t, http.StatusSeeOther, b.handoff(ta.issuer.Mint(t, demoRequest())).StatusCode)

	families, err := ta.app.Metrics().Registry.Gather()
	require.NoError(t, err)
	var names []string
	for _, f := range families {
		if strings.HasPrefix(f.GetName(), "handoff_") {
			names = append(names, f.GetName())
		}
	}
	assert.Equal(t, []string{
		"handoff_http_requests_total", "handoff_jwks_age_seconds", "handoff_jwks_fetches_total",
		"handoff_replay_store_seconds", "handoff_revocation_list_age_seconds",
		"handoff_revocation_list_entries", "handoff_verifications_total",
	}, slices.Sorted(slices.Values(names)))

	page := b.Get("/metrics")
	require.Equal(t, http.StatusOK, page.StatusCode)
	for _, theirs := range []string{"handoff_tokens_minted_total", "handoff_jwks_served_total"} {
		assert.False(t, strings.Contains(page.Body, theirs), "/metrics shows %s", theirs)
	}
}
