package fetch_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/broker/brokertest"
	"github.com/handoffbroker/handoff/broker/fetch"
	"github.com/handoffbroker/handoff/broker/internal/fixture"
	"github.com/handoffbroker/handoff/broker/keys"
	"github.com/handoffbroker/handoff/broker/revocation"
	"github.com/handoffbroker/handoff/broker/token"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNewURLPolicy(t *testing.T) {
	tests := []struct {
		name         string
		give         fetch.PolicyConfig
		wantProblems int
	}{
		{name: "ok/https_issuer", give: fetch.PolicyConfig{Issuer: "https://issuer.test"}},
		{name: "ok/http_issuer_with_path", give: fetch.PolicyConfig{Issuer: "http://localhost:8081/tenant"}},
		{name: "ok/allowed_hosts", give: fetch.PolicyConfig{Issuer: "https://issuer.test", AllowedHosts: []string{"keys.test", "cdn.test:8443", "[::1]:9000", "10.0.0.7"}}},
		{name: "fail/missing_issuer", give: fetch.PolicyConfig{}, wantProblems: 1},
		{name: "fail/relative_issuer", give: fetch.PolicyConfig{Issuer: "issuer.test"}, wantProblems: 1},
		{name: "fail/ftp_issuer", give: fetch.PolicyConfig{Issuer: "ftp://issuer.test"}, wantProblems: 1},
		{name: "fail/credentials_in_issuer", give: fetch.PolicyConfig{Issuer: "https://user:pw@issuer.test"}, wantProblems: 1},
		{name: "fail/allowed_host_with_scheme", give: fetch.PolicyConfig{Issuer: "https://issuer.test", AllowedHosts: []string{"https://keys.test"}}, wantProblems: 1},
		{name: "fail/allowed_host_with_path", give: fetch.PolicyConfig{Issuer: "https://issuer.test", AllowedHosts: []string{"keys.test/jwks"}}, wantProblems: 1},
		{name: "fail/allowed_host_bad_port", give: fetch.PolicyConfig{Issuer: "https://issuer.test", AllowedHosts: []string{"keys.test:http"}}, wantProblems: 1},
		{name: "fail/allowed_host_empty", give: fetch.PolicyConfig{Issuer: "https://issuer.test", AllowedHosts: []string{""}}, wantProblems: 1},
		{
			name:         "fail/every_problem_reported",
			give:         fetch.PolicyConfig{Issuer: "/issuer", AllowedHosts: []string{"a@b", "c:0"}},
			wantProblems: 3,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := fetch.NewPolicy(tt.give)

			if tt.wantProblems == 0 {
				require.NoError(t, err)
				assert.Equal(t, tt.give.Issuer, p.Issuer())
				return
			}
			require.Error(t, err)
			assert.Len(t, fixture.JoinedErrors(err), tt.wantProblems, "%v", err)
			assert.NotContains(t, err.Error(), "pw", "a URL may hold a password")
		})
	}
}

func TestURLPolicyCheck(t *testing.T) {
	tests := []struct {
		name        string
		giveIssuer  string
		giveAllowed []string
		giveURL     string
		wantReason  fetch.URLReason
	}{
		{name: "ok/issuer_host", giveIssuer: "https://issuer.test", giveURL: "https://issuer.test/.well-known/jwks.json"},
		{name: "ok/default_port_written", giveIssuer: "https://issuer.test", giveURL: "https://issuer.test:443/jwks"},
		{name: "ok/default_port_written_in_issuer", giveIssuer: "https://issuer.test:443", giveURL: "https://issuer.test/jwks"},
		{name: "ok/host_case_insensitive", giveIssuer: "https://issuer.test", giveURL: "https://ISSUER.test/jwks"},
		{name: "ok/issuer_port", giveIssuer: "https://issuer.test:8443", giveURL: "https://issuer.test:8443/jwks"},
		{name: "ok/allowed_host", giveIssuer: "https://issuer.test", giveAllowed: []string{"keys.test"}, giveURL: "https://keys.test/jwks"},
		{name: "ok/allowed_host_and_port", giveIssuer: "https://issuer.test", giveAllowed: []string{"keys.test:8443"}, giveURL: "https://keys.test:8443/jwks"},
		{name: "ok/allowed_host_default_port_written", giveIssuer: "https://issuer.test", giveAllowed: []string{"keys.test:443"}, giveURL: "https://keys.test/jwks"},
		{name: "ok/allowed_ipv6", giveIssuer: "https://issuer.test", giveAllowed: []string{"[::1]:9000"}, giveURL: "https://[::1]:9000/jwks"},
		{name: "ok/http_issuer_http", giveIssuer: "http://localhost:8081", giveURL: "http://localhost:8081/revocations"},
		{name: "ok/http_issuer_https_upgrade", giveIssuer: "http://issuer.test", giveURL: "https://issuer.test/jwks"},
		{name: "fail/https_issuer_http_url", giveIssuer: "https://issuer.test", giveURL: "http://issuer.test/jwks", wantReason: fetch.URLNotHTTPS},
		{name: "fail/https_issuer_http_allowed_host", giveIssuer: "https://issuer.test", giveAllowed: []string{"keys.test"}, giveURL: "http://keys.test/jwks", wantReason: fetch.URLNotHTTPS},
		{name: "fail/other_host", giveIssuer: "https://issuer.test", giveURL: "https://evil.test/jwks", wantReason: fetch.URLOtherHost},
		{name: "fail/subdomain", giveIssuer: "https://issuer.test", giveURL: "https://keys.issuer.test/jwks", wantReason: fetch.URLOtherHost},
		{name: "fail/other_port", giveIssuer: "https://issuer.test", giveURL: "https://issuer.test:8443/jwks", wantReason: fetch.URLOtherHost},
		{name: "fail/allowed_host_other_port", giveIssuer: "https://issuer.test", giveAllowed: []string{"keys.test"}, giveURL: "https://keys.test:8443/jwks", wantReason: fetch.URLOtherHost},
		{name: "fail/http_issuer_other_host", giveIssuer: "http://localhost:8081", giveURL: "http://127.0.0.1:8081/jwks", wantReason: fetch.URLOtherHost},
		{name: "fail/userinfo_host_trick", giveIssuer: "https://issuer.test", giveURL: "https://issuer.test@evil.test/jwks", wantReason: fetch.URLCredentials},
		{name: "fail/relative", giveIssuer: "https://issuer.test", giveURL: "/jwks", wantReason: fetch.URLInvalid},
		{name: "fail/scheme_relative", giveIssuer: "https://issuer.test", giveURL: "//issuer.test/jwks", wantReason: fetch.URLInvalid},
		{name: "fail/file", giveIssuer: "https://issuer.test", giveURL: "file:///etc/jwks.json", wantReason: fetch.URLInvalid},
		{name: "fail/unparseable", giveIssuer: "https://issuer.test", giveURL: "https://issuer.test/%zz", wantReason: fetch.URLInvalid},
		{name: "fail/empty", giveIssuer: "https://issuer.test", giveURL: "", wantReason: fetch.URLInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := fetch.NewPolicy(fetch.PolicyConfig{Issuer: tt.giveIssuer, AllowedHosts: tt.giveAllowed})
			require.NoError(t, err)

			err = p.Check(tt.giveURL)

			if tt.wantReason == "" {
				require.NoError(t, err)
				return
			}
			wantURLReason(t, err, tt.wantReason)
			assert.True(t, errors.Is(err, &fetch.URLError{Reason: tt.wantReason}))
		})
	}
}

func wantURLReason(t testing.TB, err error, want fetch.URLReason) {
	t.Helper()
	var ue *fetch.URLError
	require.ErrorAs(t, err, &ue, "want a *fetch.URLError %s", want)
	assert.Equal(t, want, ue.Reason, "%v", err)
}

// fetchHosts are three hosts serving an issuer's JWK Set (/jwks) and
// revocation list (/list) under httptest: the issuer's own (https), another
// https host and a plain http one. Each also answers /redirect?to=URL with a
// 302 to URL and /loop with a redirect to itself.
type fetchHosts struct {
	issuer, other, plain *countingServer
	ring                 *keys.Keyring
	clock                *brokertest.Clock
}

type countingServer struct {
	*httptest.Server
	hits atomic.Int64
}

func (s *countingServer) host() string {
	return strings.TrimPrefix(strings.TrimPrefix(s.URL, "https://"), "http://")
}

func newFetchHosts(t testing.TB) *fetchHosts {
	t.Helper()
	clock := brokertest.NewClock(fixture.Now)
	ring, minter := fixture.NewRevocationIssuer(t, clock)
	state, err := revocation.NewState(revocation.StateConfig{Now: clock.Now})
	require.NoError(t, err)
	pub, err := revocation.NewPublisher(state, minter, time.Minute)
	require.NoError(t, err)
	h := &fetchHosts{ring: ring, clock: clock}
	mux := http.NewServeMux()
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, _ *http.Request) {
		body, err := ring.JWKS()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Write(body)
	})
	mux.HandleFunc("/list", func(w http.ResponseWriter, _ *http.Request) {
		list, _, err := pub.Current()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", token.RevocationListMediaType)
		w.Write([]byte(list))
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
	})
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/loop", http.StatusFound)
	})
	start := func(tls bool) *countingServer {
		s := &countingServer{}
		handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.hits.Add(1)
			mux.ServeHTTP(w, r)
		})
		if tls {
			s.Server = httptest.NewTLSServer(handler)
		} else {
			s.Server = httptest.NewServer(handler)
		}
		t.Cleanup(s.Close)
		return s
	}
	h.issuer, h.other, h.plain = start(true), start(true), start(false)
	return h
}

// client trusts the httptest certificate, which every TLS host shares.
func (h *fetchHosts) client() *http.Client { return h.issuer.Client() }

// fetcher is one of the remote fetches a URLPolicy governs, reduced to
// "build with this URL and policy, fetch once".
type fetcher struct {
	name  string
	path  string
	fetch func(t testing.TB, h *fetchHosts, rawURL string, p *fetch.Policy) error
}

var fetchers = []fetcher{
	{name: "jwks", path: "/jwks", fetch: func(t testing.TB, h *fetchHosts, rawURL string, p *fetch.Policy) error {
		rk, err := keys.NewRemote(keys.RemoteConfig{URL: rawURL, Policy: p, Client: h.client(), Now: h.clock.Now})
		require.NoError(t, err)
		return rk.Refresh(t.Context())
	}},
	{name: "revocations", path: "/list", fetch: func(t testing.TB, h *fetchHosts, rawURL string, p *fetch.Policy) error {
		rr, err := revocation.NewRemote(revocation.RemoteConfig{
			URL: rawURL, Policy: p, Client: h.client(), Keys: h.ring, Issuer: fixture.Issuer, Now: h.clock.Now,
		})
		require.NoError(t, err)
		return rr.Refresh(t.Context())
	}},
}

// TestURLPolicyRedirects follows every redirect case through both remote
// fetches, with the issuer's policy and with the default one (the policy of
// an issuer at the configured URL). A refused redirect is never requested.
func TestURLPolicyRedirects(t *testing.T) {
	tests := []struct {
		name string
		// giveAllowed, when not nil, builds a policy for the issuer host
		// with these hosts allowed; nil uses the default policy.
		giveAllowed func(*fetchHosts) []string
		giveTarget  func(*fetchHosts) *countingServer
		giveLoop    bool
		wantReason  fetch.URLReason
	}{
		{name: "ok/same_host", giveTarget: func(h *fetchHosts) *countingServer { return h.issuer }},
		{name: "ok/same_host_issuer_policy", giveAllowed: allowNone, giveTarget: func(h *fetchHosts) *countingServer { return h.issuer }},
		{
			name:        "ok/allowed_host",
			giveAllowed: func(h *fetchHosts) []string { return []string{h.other.host()} },
			giveTarget:  func(h *fetchHosts) *countingServer { return h.other },
		},
		{
			name:       "fail/other_host",
			giveTarget: func(h *fetchHosts) *countingServer { return h.other },
			wantReason: fetch.URLOtherHost,
		},
		{
			name:        "fail/other_host_issuer_policy",
			giveAllowed: allowNone,
			giveTarget:  func(h *fetchHosts) *countingServer { return h.other },
			wantReason:  fetch.URLOtherHost,
		},
		{
			name:       "fail/to_http",
			giveTarget: func(h *fetchHosts) *countingServer { return h.plain },
			wantReason: fetch.URLNotHTTPS,
		},
		{
			// The http host is allowed: only the downgrade refuses it.
			name:        "fail/to_http_allowed_host",
			giveAllowed: func(h *fetchHosts) []string { return []string{h.plain.host()} },
			giveTarget:  func(h *fetchHosts) *countingServer { return h.plain },
			wantReason:  fetch.URLNotHTTPS,
		},
		{name: "fail/loop", giveLoop: true, wantReason: fetch.URLTooManyRedirects},
	}
	for _, tt := range tests {
		for _, f := range fetchers {
			t.Run(tt.name+"/"+f.name, func(t *testing.T) {
				h := newFetchHosts(t)
				var policy *fetch.Policy
				if tt.giveAllowed != nil {
					var err error
					policy, err = fetch.NewPolicy(fetch.PolicyConfig{Issuer: h.issuer.URL, AllowedHosts: tt.giveAllowed(h)})
					require.NoError(t, err)
				}
				start := h.issuer.URL + "/loop"
				var target *countingServer
				if !tt.giveLoop {
					target = tt.giveTarget(h)
					start = h.issuer.URL + "/redirect?to=" + url.QueryEscape(target.URL+f.path)
				}

				err := f.fetch(t, h, start, policy)

				if tt.wantReason == "" {
					require.NoError(t, err)
					return
				}
				wantURLReason(t, err, tt.wantReason)
				if target != nil && target != h.issuer {
					assert.Zero(t, target.hits.Load(), "the refused URL was requested")
				}
			})
		}
	}
}

func allowNone(*fetchHosts) []string { return nil }

// TestURLPolicyConfiguredURL checks that the configured URL of each fetch
// must pass the policy it is given: refused at construction, with the
// policy's reason.
func TestURLPolicyConfiguredURL(t *testing.T) {
	policy, err := fetch.NewPolicy(fetch.PolicyConfig{Issuer: "https://issuer.test", AllowedHosts: []string{"keys.test"}})
	require.NoError(t, err)
	ring, _ := fixture.NewRevocationIssuer(t, brokertest.NewClock(fixture.Now))
	tests := []struct {
		name       string
		giveURL    string
		wantReason fetch.URLReason
	}{
		{name: "ok/issuer_host", giveURL: "https://issuer.test/jwks"},
		{name: "ok/allowed_host", giveURL: "https://keys.test/jwks"},
		{name: "fail/http", giveURL: "http://issuer.test/jwks", wantReason: fetch.URLNotHTTPS},
		{name: "fail/other_host", giveURL: "https://evil.test/jwks", wantReason: fetch.URLOtherHost},
		{name: "fail/credentials", giveURL: "https://user:pw@issuer.test/jwks", wantReason: fetch.URLCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, keysErr := keys.NewRemote(keys.RemoteConfig{URL: tt.giveURL, Policy: policy})
			_, listErr := revocation.NewRemote(revocation.RemoteConfig{URL: tt.giveURL, Policy: policy, Keys: ring, Issuer: fixture.Issuer})

			for _, err := range []error{keysErr, listErr} {
				if tt.wantReason == "" {
					require.NoError(t, err)
					continue
				}
				wantURLReason(t, err, tt.wantReason)
				assert.NotContains(t, err.Error(), "pw")
			}
		})
	}
}
