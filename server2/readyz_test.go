package main

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/broker"
	"github.com/handoffbroker/handoff/broker/brokertest"
	"github.com/handoffbroker/handoff/broker/fetch"
	"github.com/handoffbroker/handoff/broker/token"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// waitReady polls /readyz until it answers 200. It allows 15 s: under
// -race on a loaded 2-core CI machine the first discovery, JWKS and
// revocation fetches over TLS have taken longer than 5 s. On failure it
// shows SERVER2's log, which says which fetch did not succeed.
func waitReady(t testing.TB, ta *testApp) {
	t.Helper()
	b := ta.newBrowser()
	var last string
	if !assert.Eventually(t, func() bool {
		res := b.Get("/readyz")
		last = res.Body
		return res.StatusCode == http.StatusOK
	}, 15*time.Second, 5*time.Millisecond) {
		t.Fatalf("never ready; last /readyz: %s\nlog:\n%s", last, ta.logs.String())
	}
}

func TestReadyz(t *testing.T) {
	tests := []struct {
		name      string
		giveSetup func(*Config, *Options)
	}{
		{name: "ok/configured_jwks_url"},
		{name: "ok/discovered_jwks_url", giveSetup: func(c *Config, _ *Options) { c.JWKSURL = "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ta := newTestApp(t, tt.giveSetup)
			before := ta.newBrowser().Get("/readyz")
			ta.app.Start(t.Context())

			waitReady(t, ta)

			assert.Equal(t, http.StatusServiceUnavailable, before.StatusCode)
			assert.Equal(t, http.StatusSeeOther, ta.newBrowser().handoff(ta.issuer.Mint(t, demoRequest())).StatusCode)
		})
	}
}

func TestPostHandoff_RecoversWhenJWKSComesBack(t *testing.T) {
	ta := newTestApp(t, func(c *Config, _ *Options) { c.JWKSURL = "" })
	ta.issuer.SetDown(brokertest.JWKSPath, true)
	ta.app.Start(t.Context())

	first := ta.newBrowser().handoff(ta.issuer.Mint(t, demoRequest()))
	ta.issuer.SetDown(brokertest.JWKSPath, false)
	ta.clock.Advance(time.Minute) // past the unknown-kid cool-down

	require.Equal(t, http.StatusServiceUnavailable, first.StatusCode)
	assert.Equal(t, string(token.ReasonUnavailable), pageReason(t, first))
	require.Eventually(t, func() bool {
		return ta.newBrowser().handoff(ta.issuer.Mint(t, demoRequest())).StatusCode == http.StatusSeeOther
	}, 5*time.Second, 10*time.Millisecond)
	waitReady(t, ta)
}

func TestDiscoverJWKSURL(t *testing.T) {
	tests := []struct {
		name     string
		giveBody func(issuer string) string
		wantURL  func(issuer string) string
		wantErr  bool
	}{
		{
			name:     "ok/matching_issuer",
			giveBody: func(iss string) string { return `{"issuer":"` + iss + `","jwks_uri":"` + iss + `/jwks.json"}` },
			wantURL:  func(iss string) string { return iss + "/jwks.json" },
		},
		{
			name:     "fail/other_issuer",
			giveBody: func(string) string { return `{"issuer":"http://evil.test","jwks_uri":"http://evil.test/jwks.json"}` },
			wantErr:  true,
		},
		{
			name:     "fail/relative_jwks_uri",
			giveBody: func(iss string) string { return `{"issuer":"` + iss + `","jwks_uri":"/jwks.json"}` },
			wantErr:  true,
		},
		{
			name:     "fail/no_jwks_uri",
			giveBody: func(iss string) string { return `{"issuer":"` + iss + `"}` },
			wantErr:  true,
		},
		{
			name:     "fail/not_json",
			giveBody: func(string) string { return `<html>` },
			wantErr:  true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var issuer string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != broker.MetadataPath {
					http.NotFound(w, r)
					return
				}
				_, _ = w.Write([]byte(tt.giveBody(issuer)))
			}))
			t.Cleanup(srv.Close)
			issuer = srv.URL

			policy, err := fetch.NewPolicy(fetch.PolicyConfig{Issuer: issuer})
			require.NoError(t, err)

			md, err := broker.Discover(context.Background(), policy, &http.Client{Timeout: time.Second})
			got := md.JWKSURI

			if tt.wantErr {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.wantURL(issuer), got)
		})
	}
}

func TestMetrics(t *testing.T) {
	ta := newTestApp(t, nil)
	m := ta.app.Metrics()
	b := ta.newBrowser()
	tok := ta.issuer.Mint(t, demoRequest())

	b.handoff(tok)
	b.handoff(tok)
	b.handoff("garbage")

	assert.Equal(t, 1.0, testutil.ToFloat64(m.Verifications.WithLabelValues("accepted", "ok")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.Verifications.WithLabelValues("rejected", string(token.ReasonReplayed))))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.Verifications.WithLabelValues("rejected", string(token.ReasonMalformed))))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.JWKSFetches.WithLabelValues(fetch.ResultOK)))
	assert.Equal(t, 0.0, testutil.ToFloat64(m.ReplayErrors.WithLabelValues("other")))
	assert.Equal(t, 1, testutil.CollectAndCount(m.ReplayLatency, "handoff_replay_store_seconds"))
	assert.Equal(t, uint64(2), histogramCount(t, ta))

	ta.clock.Advance(42 * time.Second)
	age := gaugeValue(t, ta, "handoff_jwks_age_seconds")
	assert.InDelta(t, 42, age, 0.001)

	metricsPage := b.Get("/metrics")
	assert.Contains(t, metricsPage.Body, `handoff_verifications_total{reason="replayed",result="rejected"} 1`)
	assert.Contains(t, metricsPage.Body, `handoff_jwks_fetches_total{result="ok"} 1`)
}

func TestMetrics_ReplayErrorsAndJWKSFailures(t *testing.T) {
	ta := newTestApp(t, func(c *Config, o *Options) { o.ReplayStore = brokertest.FailingReplayStore{} })
	m := ta.app.Metrics()
	assert.True(t, math.IsInf(gaugeValue(t, ta, "handoff_jwks_age_seconds"), 1), "no fetch yet")

	ta.newBrowser().handoff(ta.issuer.Mint(t, demoRequest()))

	assert.Equal(t, 1.0, testutil.ToFloat64(m.ReplayErrors.WithLabelValues("other")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.Verifications.WithLabelValues("rejected", string(token.ReasonUnavailable))))

	ta.issuer.SetDown(brokertest.JWKSPath, true)
	require.Error(t, ta.app.rp.Refresh(context.Background()))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.JWKSFetches.WithLabelValues(fetch.ResultError)))
}

func histogramCount(t testing.TB, ta *testApp) uint64 {
	t.Helper()
	mfs, err := ta.app.Metrics().Registry.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == "handoff_replay_store_seconds" {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	t.Fatal("no replay latency histogram")
	return 0
}

func gaugeValue(t testing.TB, ta *testApp, name string) float64 {
	t.Helper()
	mfs, err := ta.app.Metrics().Registry.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
