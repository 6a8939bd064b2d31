package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/broker"
	"github.com/handoffbroker/handoff/broker/brokertest"
	"github.com/handoffbroker/handoff/broker/fetch"
	"github.com/handoffbroker/handoff/broker/token"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tlsIssuer is an https test issuer (brokertest.Issuer) whose handoff
// configuration the test chooses, served from three hosts of its own: own
// (https, the issuer's URL), other (https, another host) and plain (http).
// A fetch refused on other or plain is refused by SERVER2's policy, not for
// lack of a document.
type tlsIssuer struct {
	URL               string
	kit               *brokertest.Issuer
	own, other, plain *fetchHost
	metadata          func(*tlsIssuer) map[string]string
}

// fetchHost is one host of a tlsIssuer, counting the requests it gets.
// When redirectMetadata is set, the host redirects its metadata requests
// there.
type fetchHost struct {
	srv              *httptest.Server
	hits             atomic.Int64
	redirectMetadata atomic.Pointer[string]
}

func (h *fetchHost) url(path string) string { return h.srv.URL + path }

func (h *fetchHost) host() string { return strings.SplitN(h.srv.URL, "://", 2)[1] }

// newTLSIssuer starts the issuer. metadata edits its default handoff
// configuration (jwks_uri and revocation_endpoint on the issuer's own host),
// and may be nil.
func newTLSIssuer(t testing.TB, metadata func(*tlsIssuer, map[string]string)) *tlsIssuer {
	t.Helper()
	iss := &tlsIssuer{}
	iss.metadata = func(iss *tlsIssuer) map[string]string {
		md := map[string]string{
			"issuer":              iss.URL,
			"jwks_uri":            iss.own.url("/.well-known/jwks.json"),
			"revocation_endpoint": iss.own.url("/revocations"),
		}
		if metadata != nil {
			metadata(iss, md)
		}
		return md
	}
	var documents atomic.Pointer[http.Handler]
	mux := http.NewServeMux()
	mux.HandleFunc("GET /mirror"+broker.MetadataPath, func(w http.ResponseWriter, r *http.Request) {
		r.URL.Path = broker.MetadataPath
		(*documents.Load()).ServeHTTP(w, r)
	})
	mux.HandleFunc("GET /redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { (*documents.Load()).ServeHTTP(w, r) })
	start := func(tls bool) *fetchHost {
		h := &fetchHost{}
		handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.hits.Add(1)
			if to := h.redirectMetadata.Load(); to != nil && r.URL.Path == broker.MetadataPath {
				http.Redirect(w, r, *to, http.StatusFound)
				return
			}
			mux.ServeHTTP(w, r)
		})
		if tls {
			h.srv = httptest.NewTLSServer(handler)
		} else {
			h.srv = httptest.NewServer(handler)
		}
		t.Cleanup(h.srv.Close)
		return h
	}
	iss.own, iss.other, iss.plain = start(true), start(true), start(false)
	iss.URL = iss.own.srv.URL
	iss.kit = brokertest.StartIssuer(t, brokertest.WithTLS(), brokertest.WithIssuer(iss.URL),
		brokertest.WithDiscovery(func(doc map[string]any) {
			clear(doc)
			for k, v := range iss.metadata(iss) {
				doc[k] = v
			}
		}))
	h := iss.kit.Handler()
	documents.Store(&h)
	return iss
}

// transport trusts the httptest certificate, which every TLS host shares.
func (iss *tlsIssuer) transport() http.RoundTripper { return iss.own.srv.Client().Transport }

func (iss *tlsIssuer) policy(t testing.TB, allowed ...string) *fetch.Policy {
	t.Helper()
	p, err := fetch.NewPolicy(fetch.PolicyConfig{Issuer: iss.URL, AllowedHosts: allowed})
	require.NoError(t, err)
	return p
}

func wantURLReason(t testing.TB, err error, want fetch.URLReason) {
	t.Helper()
	var ue *fetch.URLError
	require.ErrorAs(t, err, &ue, "want a *fetch.URLError %s", want)
	assert.Equal(t, want, ue.Reason, "%v", err)
}

// refusedMetadata are handoff configurations naming a URL the fetch policy
// refuses: discovery refuses each (TestDiscoverMetadata), and SERVER2 stays
// not ready on it (TestDiscovery_RefusedURLsKeepServer2NotReady).
var refusedMetadata = []struct {
	name         string
	giveMetadata func(*tlsIssuer, map[string]string)
	wantReason   fetch.URLReason
}{
	{
		name:         "fail/http_jwks_uri",
		giveMetadata: func(iss *tlsIssuer, md map[string]string) { md["jwks_uri"] = iss.plain.url("/.well-known/jwks.json") },
		wantReason:   fetch.URLNotHTTPS,
	},
	{
		name:         "fail/http_revocation_endpoint",
		giveMetadata: func(iss *tlsIssuer, md map[string]string) { md["revocation_endpoint"] = iss.plain.url("/revocations") },
		wantReason:   fetch.URLNotHTTPS,
	},
	{
		name:         "fail/other_host_jwks_uri",
		giveMetadata: func(iss *tlsIssuer, md map[string]string) { md["jwks_uri"] = iss.other.url("/.well-known/jwks.json") },
		wantReason:   fetch.URLOtherHost,
	},
	{
		name:         "fail/other_host_revocation_endpoint",
		giveMetadata: func(iss *tlsIssuer, md map[string]string) { md["revocation_endpoint"] = iss.other.url("/revocations") },
		wantReason:   fetch.URLOtherHost,
	},
}

func TestDiscoverMetadata(t *testing.T) {
	tests := []struct {
		name         string
		giveMetadata func(*tlsIssuer, map[string]string)
		giveAllowed  func(*tlsIssuer) []string
		wantReason   fetch.URLReason
		wantErr      bool
	}{
		{name: "ok/issuer_host"},
		{
			name:         "ok/no_revocation_endpoint",
			giveMetadata: func(_ *tlsIssuer, md map[string]string) { delete(md, "revocation_endpoint") },
		},
		{
			name:         "ok/allowed_other_host",
			giveMetadata: func(iss *tlsIssuer, md map[string]string) { md["jwks_uri"] = iss.other.url("/.well-known/jwks.json") },
			giveAllowed:  func(iss *tlsIssuer) []string { return []string{iss.other.host()} },
		},
		{
			// Allowing the host does not allow the downgrade.
			name:         "fail/http_jwks_uri_allowed_host",
			giveMetadata: func(iss *tlsIssuer, md map[string]string) { md["jwks_uri"] = iss.plain.url("/.well-known/jwks.json") },
			giveAllowed:  func(iss *tlsIssuer) []string { return []string{iss.plain.host()} },
			wantReason:   fetch.URLNotHTTPS,
		},
		{
			name: "fail/http_jwks_uri_on_issuer_host",
			giveMetadata: func(iss *tlsIssuer, md map[string]string) {
				md["jwks_uri"] = "http" + strings.TrimPrefix(iss.URL, "https") + "/jwks"
			},
			wantReason: fetch.URLNotHTTPS,
		},
		{
			name: "fail/credentials_in_jwks_uri",
			giveMetadata: func(iss *tlsIssuer, md map[string]string) {
				md["jwks_uri"] = "https://user:pw@" + iss.own.host() + "/jwks"
			},
			wantReason: fetch.URLCredentials,
		},
		{
			name:         "fail/relative_jwks_uri",
			giveMetadata: func(_ *tlsIssuer, md map[string]string) { md["jwks_uri"] = "/jwks.json" },
			wantReason:   fetch.URLInvalid,
		},
		{
			name:         "fail/no_jwks_uri",
			giveMetadata: func(_ *tlsIssuer, md map[string]string) { delete(md, "jwks_uri") },
			wantReason:   fetch.URLInvalid,
		},
		{
			name:         "fail/other_issuer",
			giveMetadata: func(iss *tlsIssuer, md map[string]string) { md["issuer"] = iss.other.srv.URL },
			wantErr:      true,
		},
	}
	for _, r := range refusedMetadata {
		tests = append(tests, struct {
			name         string
			giveMetadata func(*tlsIssuer, map[string]string)
			giveAllowed  func(*tlsIssuer) []string
			wantReason   fetch.URLReason
			wantErr      bool
		}{name: r.name, giveMetadata: r.giveMetadata, wantReason: r.wantReason})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iss := newTLSIssuer(t, tt.giveMetadata)
			var allowed []string
			if tt.giveAllowed != nil {
				allowed = tt.giveAllowed(iss)
			}
			policy := iss.policy(t, allowed...)

			got, err := broker.Discover(t.Context(), policy, &http.Client{Timeout: time.Second, Transport: iss.transport()})

			switch {
			case tt.wantReason != "":
				wantURLReason(t, err, tt.wantReason)
				assert.NotContains(t, err.Error(), "pw")
			case tt.wantErr:
				require.Error(t, err)
			default:
				require.NoError(t, err)
				assert.Equal(t, iss.metadata(iss)["jwks_uri"], got.JWKSURI)
			}
			assert.Zero(t, iss.plain.hits.Load()+iss.other.hits.Load(), "discovery fetches the metadata only")
		})
	}
}

func TestDiscoverMetadata_Redirects(t *testing.T) {
	tests := []struct {
		name       string
		giveTo     func(*tlsIssuer) *fetchHost
		wantReason fetch.URLReason
	}{
		{name: "ok/same_host", giveTo: func(iss *tlsIssuer) *fetchHost { return iss.own }},
		{name: "fail/to_http", giveTo: func(iss *tlsIssuer) *fetchHost { return iss.plain }, wantReason: fetch.URLNotHTTPS},
		{name: "fail/to_other_host", giveTo: func(iss *tlsIssuer) *fetchHost { return iss.other }, wantReason: fetch.URLOtherHost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iss := newTLSIssuer(t, nil)
			target := tt.giveTo(iss)
			to := target.url("/mirror" + broker.MetadataPath)
			iss.own.redirectMetadata.Store(&to)
			policy := iss.policy(t)

			md, err := broker.Discover(t.Context(), policy, &http.Client{Timeout: time.Second, Transport: iss.transport()})

			if tt.wantReason == "" {
				require.NoError(t, err)
				assert.Equal(t, iss.URL, md.Issuer)
				return
			}
			wantURLReason(t, err, tt.wantReason)
			assert.Zero(t, target.hits.Load(), "the refused URL was requested")
		})
	}
}

// TestDiscovery_RefusedURLsKeepServer2NotReady runs SERVER2 against an https
// issuer whose handoff configuration, or a redirect on the way, points
// somewhere the fetch policy refuses. SERVER2 must never fetch there and
// stay not ready (handoffs 503), whatever the documents served there.
func TestDiscovery_RefusedURLsKeepServer2NotReady(t *testing.T) {
	tests := []struct {
		name         string
		giveMetadata func(*tlsIssuer, map[string]string)
		giveAllowed  func(*tlsIssuer) string
		// wantReason is the refusal discovery logs, or, with wantFetch, the
		// one a JWKS or revocation list fetch returns.
		wantReason fetch.URLReason
		wantFetch  func(context.Context, *App) error
	}{
		{
			name: "fail/jwks_redirect_to_http",
			giveMetadata: func(iss *tlsIssuer, md map[string]string) {
				md["jwks_uri"] = iss.own.url("/redirect?to=" + url.QueryEscape(iss.plain.url("/.well-known/jwks.json")))
			},
			giveAllowed: func(iss *tlsIssuer) string { return iss.plain.host() },
			wantReason:  fetch.URLNotHTTPS,
			wantFetch:   func(ctx context.Context, a *App) error { return a.rp.Refresh(ctx) },
		},
		{
			name: "fail/jwks_redirect_to_other_host",
			giveMetadata: func(iss *tlsIssuer, md map[string]string) {
				md["jwks_uri"] = iss.own.url("/redirect?to=" + url.QueryEscape(iss.other.url("/.well-known/jwks.json")))
			},
			wantReason: fetch.URLOtherHost,
			wantFetch:  func(ctx context.Context, a *App) error { return a.rp.Refresh(ctx) },
		},
		{
			name: "fail/revocations_redirect_to_other_host",
			giveMetadata: func(iss *tlsIssuer, md map[string]string) {
				md["revocation_endpoint"] = iss.own.url("/redirect?to=" + url.QueryEscape(iss.other.url("/revocations")))
			},
			wantReason: fetch.URLOtherHost,
			wantFetch:  func(ctx context.Context, a *App) error { return a.rp.Refresh(ctx) },
		},
	}
	for _, r := range refusedMetadata {
		tests = append(tests, struct {
			name         string
			giveMetadata func(*tlsIssuer, map[string]string)
			giveAllowed  func(*tlsIssuer) string
			wantReason   fetch.URLReason
			wantFetch    func(context.Context, *App) error
		}{name: r.name, giveMetadata: r.giveMetadata, wantReason: r.wantReason})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iss := newTLSIssuer(t, tt.giveMetadata)
			ta := newTestApp(t, func(c *Config, o *Options) {
				c.TrustedIssuer, c.JWKSURL, c.RevocationURL = iss.URL, "", ""
				if tt.giveAllowed != nil {
					c.FetchAllowedHosts = []string{tt.giveAllowed(iss)}
				}
				o.Transport = iss.transport()
			})
			ta.app.Start(t.Context())

			if tt.wantFetch == nil {
				require.Eventually(t, func() bool {
					return strings.Contains(ta.logs.String(), `"reason":"`+string(tt.wantReason)+`"`)
				}, 5*time.Second, 5*time.Millisecond, "discovery never refused the metadata:\n%s", ta.logs.String())
			} else {
				require.Eventually(t, func() bool {
					st := ta.app.rp.Status()
					return st.JWKSURL != "" && st.RevocationURL != ""
				}, 5*time.Second, 5*time.Millisecond, "discovery never succeeded:\n%s", ta.logs.String())
				wantURLReason(t, tt.wantFetch(t.Context(), ta.app), tt.wantReason)
			}
			ready := ta.newBrowser().Get("/readyz")
			handoff := ta.newBrowser().handoff(mintTLS(t, iss))

			assert.Equal(t, http.StatusServiceUnavailable, ready.StatusCode, ready.Body)
			assert.Equal(t, http.StatusServiceUnavailable, handoff.StatusCode)
			assert.Equal(t, string(token.ReasonUnavailable), pageReason(t, handoff))
			assert.Zero(t, iss.plain.hits.Load(), "SERVER2 fetched over http")
			assert.Zero(t, iss.other.hits.Load(), "SERVER2 fetched from another host")
		})
	}
}

func TestDiscovery_AllowedHostsAreUsed(t *testing.T) {
	tests := []struct {
		name         string
		giveMetadata func(*tlsIssuer, map[string]string)
		giveAllowed  bool
	}{
		{name: "ok/issuer_host"},
		{
			name: "ok/allowed_other_host",
			giveMetadata: func(iss *tlsIssuer, md map[string]string) {
				md["jwks_uri"] = iss.other.url("/.well-known/jwks.json")
				md["revocation_endpoint"] = iss.own.url("/redirect?to=" + url.QueryEscape(iss.other.url("/revocations")))
			},
			giveAllowed: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iss := newTLSIssuer(t, tt.giveMetadata)
			ta := newTestApp(t, func(c *Config, o *Options) {
				c.TrustedIssuer, c.JWKSURL, c.RevocationURL = iss.URL, "", ""
				if tt.giveAllowed {
					c.FetchAllowedHosts = []string{iss.other.host()}
				}
				o.Transport = iss.transport()
			})
			ta.app.Start(t.Context())

			waitReady(t, ta)
			got := ta.newBrowser().handoff(mintTLS(t, iss))

			assert.Equal(t, http.StatusSeeOther, got.StatusCode, got.Body)
			assert.Zero(t, iss.plain.hits.Load())
		})
	}
}

// TestConfig_FetchPolicy checks the configured (not discovered) URLs
// against the same policy: SERVER2 refuses to start.
func TestConfig_FetchPolicy(t *testing.T) {
	tests := []struct {
		name       string
		giveEdit   func(*Config)
		wantReason fetch.URLReason
		wantErr    string
	}{
		{name: "ok/issuer_host", giveEdit: func(c *Config) {
			c.JWKSURL, c.RevocationURL = "https://issuer.test/jwks", "https://issuer.test/revocations"
		}},
		{
			name: "ok/allowed_host",
			giveEdit: func(c *Config) {
				c.JWKSURL, c.RevocationURL = "https://keys.test/jwks", "https://keys.test/revocations"
				c.FetchAllowedHosts = []string{"keys.test"}
			},
		},
		{name: "fail/http_jwks_url", giveEdit: func(c *Config) { c.JWKSURL = "http://issuer.test/jwks" }, wantReason: fetch.URLNotHTTPS, wantErr: "jwks-url"},
		{name: "fail/http_revocation_url", giveEdit: func(c *Config) { c.RevocationURL = "http://issuer.test/revocations" }, wantReason: fetch.URLNotHTTPS, wantErr: "revocation-url"},
		{name: "fail/other_host_jwks_url", giveEdit: func(c *Config) { c.JWKSURL = "https://keys.test/jwks" }, wantReason: fetch.URLOtherHost, wantErr: "jwks-url"},
		{name: "fail/other_host_revocation_url", giveEdit: func(c *Config) { c.RevocationURL = "https://keys.test/revocations" }, wantReason: fetch.URLOtherHost, wantErr: "revocation-url"},
		{name: "fail/bad_allowed_host", giveEdit: func(c *Config) { c.FetchAllowedHosts = []string{"https://keys.test"} }, wantErr: "fetch-allowed-hosts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.TrustedIssuer = "https://issuer.test"
			tt.giveEdit(&cfg)

			err := cfg.validate()

			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			assert.ErrorContains(t, err, tt.wantErr)
			_, appErr := NewApp(cfg, Options{})
			require.Error(t, appErr, "SERVER2 must refuse to start")
			if tt.wantReason != "" {
				wantURLReason(t, err, tt.wantReason)
				wantURLReason(t, appErr, tt.wantReason)
			}
		})
	}
}

func TestParseConfig_FetchAllowedHosts(t *testing.T) {
	t.Setenv("SERVER2_FETCH_ALLOWED_HOSTS", "keys.test, cdn.test:8443")

	fromEnv, _, err := parseConfig("server2", nil, io.Discard, nil)
	require.NoError(t, err)
	fromFlags, _, err := parseConfig("server2", []string{"--fetch-allowed-hosts", "a.test", "--fetch-allowed-hosts", "b.test,c.test"}, io.Discard, nil)
	require.NoError(t, err)

	assert.Equal(t, []string{"keys.test", "cdn.test:8443"}, fromEnv.FetchAllowedHosts)
	assert.Equal(t, []string{"a.test", "b.test", "c.test"}, fromFlags.FetchAllowedHosts, "the flag wins over the environment")
}

func mintTLS(t testing.TB, iss *tlsIssuer) string {
	t.Helper()
	return iss.kit.Mint(t, demoRequest())
}
