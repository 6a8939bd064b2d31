package broker

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/handoffbroker/handoff/broker/brokertest"
	"github.com/handoffbroker/handoff/broker/token"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// newBindingCookie returns a binding cookie as StartHandler sets it, and
// the nonce a token bound to it carries.
func newBindingCookie(t testing.TB) (*http.Cookie, string) {
	t.Helper()
	secret, id := make([]byte, bindingSecretBytes), make([]byte, 8)
	_, _ = rand.Read(secret)
	_, _ = rand.Read(id)
	return &http.Cookie{Name: bindingCookiePrefix + hex.EncodeToString(id), Value: base64.RawURLEncoding.EncodeToString(secret)}, token.BindingNonce(secret)
}

func mintBound(t testing.TB, is *brokertest.Issuer, task token.Task, nonce string) token.Minted {
	t.Helper()
	return is.MintFull(t, token.MintRequest{Subject: "alice", Audience: testAudience, Task: task, Nonce: nonce})
}

func TestHandoffHandler_binding(t *testing.T) {
	tests := []struct {
		name        string
		giveBinding Binding
		giveOrigin  []string // nil: no Origin header
		giveCookies int      // binding cookies the browser holds; the token is bound to the last
		giveNonce   func(own string) string
		wantStatus  int
		wantCode    string
	}{
		{name: "ok/bound", giveCookies: 1, wantStatus: http.StatusSeeOther},
		{name: "ok/issuer_origin", giveCookies: 1, giveOrigin: []string{"ISSUER"}, wantStatus: http.StatusSeeOther},
		{name: "ok/parallel_tabs", giveCookies: 3, wantStatus: http.StatusSeeOther},
		{name: "ok/binding_off_accepts_unbound", giveBinding: BindingOff, giveNonce: func(string) string { return "" }, wantStatus: http.StatusSeeOther},
		{name: "ok/binding_off_ignores_origin", giveBinding: BindingOff, giveOrigin: []string{"null"}, giveNonce: func(string) string { return "" }, wantStatus: http.StatusSeeOther},
		{name: "fail/mismatch", giveCookies: 1, giveNonce: func(string) string { return token.BindingNonce([]byte("attacker's secret")) },
			wantStatus: http.StatusForbidden, wantCode: string(token.ReasonUnboundHandoff)},
		{name: "fail/missing_cookie", giveCookies: 0, wantStatus: http.StatusForbidden, wantCode: string(token.ReasonUnboundHandoff)},
		{name: "fail/unbound_token", giveCookies: 1, giveNonce: func(string) string { return "" },
			wantStatus: http.StatusForbidden, wantCode: string(token.ReasonUnboundHandoff)},
		{name: "fail/other_origin", giveCookies: 1, giveOrigin: []string{"http://attacker.test"}, wantStatus: http.StatusForbidden, wantCode: CodeWrongOrigin},
		{name: "fail/null_origin", giveCookies: 1, giveOrigin: []string{"null"}, wantStatus: http.StatusForbidden, wantCode: CodeWrongOrigin},
		{name: "fail/two_origins", giveCookies: 1, giveOrigin: []string{"ISSUER", "http://attacker.test"}, wantStatus: http.StatusForbidden, wantCode: CodeWrongOrigin},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, is, rp := newReadyRP(t, func(c *Config) { c.Binding = tt.giveBinding })
			opened := 0
			h := rp.HandoffHandler(HandoffConfig{Open: func(w http.ResponseWriter, r *http.Request, c *token.Claims) error {
				opened++
				http.Redirect(w, r, "/tasks/"+c.Task.ID, http.StatusSeeOther)
				return nil
			}})
			var cookies []*http.Cookie
			nonce := ""
			for range tt.giveCookies {
				c, n := newBindingCookie(t)
				cookies, nonce = append(cookies, c), n
			}
			if tt.giveCookies == 0 {
				_, nonce = newBindingCookie(t)
			}
			if tt.giveNonce != nil {
				nonce = tt.giveNonce(nonce)
			}
			tok := mintBound(t, is, demoTask, nonce).Token
			req := httptest.NewRequest(http.MethodPost, "/handoff", strings.NewReader(url.Values{"token": {tok}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Accept", "text/html")
			for _, o := range tt.giveOrigin {
				req.Header.Add("Origin", strings.ReplaceAll(o, "ISSUER", is.URL))
			}
			for _, c := range cookies {
				req.AddCookie(c)
			}
			rec := httptest.NewRecorder()

			h.ServeHTTP(rec, req)

			require.Equal(t, tt.wantStatus, rec.Code, rec.Body.String())
			if tt.wantCode == "" {
				assert.Equal(t, 1, opened)
				if len(cookies) > 0 {
					deleted := rec.Result().Cookies()
					require.Len(t, deleted, 1, "only the matching binding cookie is deleted")
					assert.Equal(t, cookies[len(cookies)-1].Name, deleted[0].Name)
					assert.Equal(t, -1, deleted[0].MaxAge)
				}
				return
			}
			assert.Zero(t, opened)
			assert.Empty(t, rec.Result().Cookies(), "a refusal changes no cookie")
			assert.Contains(t, rec.Body.String(), `<code id="reason">`+tt.wantCode+`</code>`)
			assert.Contains(t, rec.Body.String(), `<a id="retry" href="`+is.URL+`/">`, "the refusal links back to the issuer")
			assert.NotContains(t, rec.Body.String(), tok)
			if nonce != "" {
				_, err := rp.Verify(t.Context(), tok, token.Expect{AnyTask: true, Binding: &token.Binding{Nonces: []string{nonce}}})
				assert.NoError(t, err, "a refused handoff leaves the token unconsumed")
			}
		})
	}
}

func TestStartHandler(t *testing.T) {
	tests := []struct {
		name       string
		giveQuery  string
		giveMethod string
		giveHTTP   bool // an http audience, served over plain http
		giveTLS    bool
		wantStatus int
		wantCode   string
		wantPrefix string
	}{
		{name: "ok/http", giveHTTP: true, giveQuery: "?task_id=transfer-1", wantStatus: http.StatusSeeOther, wantPrefix: bindingCookiePrefix},
		{name: "ok/https_audience_host_prefix", giveQuery: "?task_id=transfer-1", wantStatus: http.StatusSeeOther, wantPrefix: secureBindingCookiePrefix},
		{name: "ok/tls_request_host_prefix", giveHTTP: true, giveTLS: true, giveQuery: "?task_id=transfer-1", wantStatus: http.StatusSeeOther, wantPrefix: secureBindingCookiePrefix},
		{name: "ok/longest_task_id", giveHTTP: true, giveQuery: "?task_id=" + strings.Repeat("t", 128), wantStatus: http.StatusSeeOther, wantPrefix: bindingCookiePrefix},
		{name: "fail/missing_task_id", wantStatus: http.StatusBadRequest, wantCode: CodeInvalidRequest},
		{name: "fail/long_task_id", giveQuery: "?task_id=" + strings.Repeat("t", 129), wantStatus: http.StatusBadRequest, wantCode: CodeInvalidRequest},
		{name: "fail/post", giveMethod: http.MethodPost, giveQuery: "?task_id=transfer-1", wantStatus: http.StatusMethodNotAllowed, wantCode: "method_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			audience := testAudience
			if tt.giveHTTP {
				audience = "http://relying.test"
			}
			_, is, rp := newReadyRP(t, func(c *Config) { c.Audience = audience })
			method := cmpOrString(tt.giveMethod, http.MethodGet)
			target := "http://rp.test/handoff/start" + tt.giveQuery
			if tt.giveTLS {
				target = "https://rp.test/handoff/start" + tt.giveQuery
			}
			req := httptest.NewRequest(method, target, nil)
			req.Header.Set("Accept", "text/html")
			rec := httptest.NewRecorder()

			rp.StartHandler(nil).ServeHTTP(rec, req)

			require.Equal(t, tt.wantStatus, rec.Code, rec.Body.String())
			if tt.wantCode != "" {
				assert.Contains(t, rec.Body.String(), `<code id="reason">`+tt.wantCode+`</code>`)
				assert.Empty(t, rec.Result().Cookies())
				return
			}
			assert.Equal(t, "no-store", rec.Header().Get("Cache-Control"))
			assert.Equal(t, "no-referrer", rec.Header().Get("Referrer-Policy"))
			cookies := rec.Result().Cookies()
			require.Len(t, cookies, 1)
			c := cookies[0]
			assert.True(t, strings.HasPrefix(c.Name, tt.wantPrefix), c.Name)
			assert.Regexp(t, `^[0-9a-f]{16}$`, strings.TrimPrefix(c.Name, tt.wantPrefix))
			assert.True(t, c.HttpOnly && c.Secure)
			assert.Equal(t, http.SameSiteNoneMode, c.SameSite)
			assert.Equal(t, "/", c.Path)
			assert.Empty(t, c.Domain)
			assert.Equal(t, int(DefaultBindingTTL.Seconds()), c.MaxAge)
			secret, err := base64.RawURLEncoding.DecodeString(c.Value)
			require.NoError(t, err)
			assert.Len(t, secret, 32)

			loc, err := url.Parse(rec.Header().Get("Location"))
			require.NoError(t, err)
			assert.Equal(t, is.URL+brokertest.BoundHandoffPath, loc.Scheme+"://"+loc.Host+loc.Path)
			q := loc.Query()
			assert.Equal(t, audience, q.Get("audience"))
			assert.Equal(t, req.URL.Query().Get("task_id"), q.Get("task_id"))
			assert.Equal(t, token.BindingNonce(secret), q.Get("nonce"), "the nonce is the secret's digest")
			assert.Len(t, q.Get("nonce"), 43)
			assert.NotContains(t, rec.Header().Get("Location"), c.Value, "the secret never leaves for the issuer")
		})
	}
}

func TestStartHandler_secretsDiffer(t *testing.T) {
	_, _, rp := newReadyRP(t, nil)
	seen := map[string]bool{}
	for range 3 {
		rec := httptest.NewRecorder()
		rp.StartHandler(nil).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/handoff/start?task_id=t", nil))
		c := rec.Result().Cookies()[0]
		assert.False(t, seen[c.Name] || seen[c.Value], "each start has its own cookie and secret")
		seen[c.Name], seen[c.Value] = true, true
	}
}

func TestParseMetadata_binding(t *testing.T) {
	tests := []struct {
		name    string
		giveDoc func(d map[string]any)
		wantErr bool
	}{
		{name: "ok/as_published", giveDoc: func(map[string]any) {}},
		{name: "ok/no_binding_members", giveDoc: func(d map[string]any) { delete(d, "bound_handoff_endpoint"); delete(d, "handoff_origins") }},
		{name: "fail/bound_endpoint_other_host", giveDoc: func(d map[string]any) { d["bound_handoff_endpoint"] = "http://attacker.test/handoffs/bound" }, wantErr: true},
		{name: "fail/origin_with_path", giveDoc: func(d map[string]any) { d["handoff_origins"] = []string{"http://127.0.0.1:8081/x"} }, wantErr: true},
		{name: "fail/origin_null", giveDoc: func(d map[string]any) { d["handoff_origins"] = []string{"null"} }, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := brokertest.StartIssuer(t, brokertest.WithDiscovery(tt.giveDoc))
			policy, err := Config{Issuer: is.URL, Audience: testAudience}.validate(nil)
			require.NoError(t, err)
			md, err := Discover(t.Context(), policy, nil)
			if tt.wantErr {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			if tt.name == "ok/as_published" {
				assert.Equal(t, is.URL+brokertest.BoundHandoffPath, md.BoundHandoffEndpoint)
				assert.Equal(t, []string{is.URL}, md.HandoffOrigins)
			}
		})
	}
}

// TestParseMetadata_display: the display members label a link back to the
// issuer, so one unfit to show is dropped instead of failing discovery.
func TestParseMetadata_display(t *testing.T) {
	tests := []struct {
		name         string
		giveTLS      bool
		giveDoc      func(d map[string]any)
		wantName     string
		wantHomepage func(is *brokertest.Issuer) string
	}{
		{name: "ok/as_published", giveDoc: func(map[string]any) {},
			wantName: brokertest.DisplayName, wantHomepage: func(is *brokertest.Issuer) string { return is.URL + "/" }},
		{name: "ok/homepage_on_another_host", giveDoc: func(d map[string]any) { d["homepage_uri"] = "https://www.example.com/portal" },
			wantName: brokertest.DisplayName, wantHomepage: func(*brokertest.Issuer) string { return "https://www.example.com/portal" }},
		{name: "ok/absent", giveDoc: func(d map[string]any) { delete(d, "display_name"); delete(d, "homepage_uri") }},
		{name: "fail/script_homepage_dropped", giveDoc: func(d map[string]any) { d["homepage_uri"] = "javascript:alert(1)" },
			wantName: brokertest.DisplayName},
		{name: "fail/relative_homepage_dropped", giveDoc: func(d map[string]any) { d["homepage_uri"] = "/home" },
			wantName: brokertest.DisplayName},
		{name: "fail/credentials_in_homepage_dropped", giveDoc: func(d map[string]any) { d["homepage_uri"] = "https://user:pw@portal.example/" },
			wantName: brokertest.DisplayName},
		{name: "fail/http_homepage_of_https_issuer_dropped", giveTLS: true, giveDoc: func(d map[string]any) { d["homepage_uri"] = "http://portal.example/" },
			wantName: brokertest.DisplayName},
		{name: "fail/control_characters_dropped", giveDoc: func(d map[string]any) { d["display_name"] = "Portal\nCall 555-0100" },
			wantHomepage: func(is *brokertest.Issuer) string { return is.URL + "/" }},
		{name: "fail/blank_name_dropped", giveDoc: func(d map[string]any) { d["display_name"] = "  " },
			wantHomepage: func(is *brokertest.Issuer) string { return is.URL + "/" }},
		{name: "fail/long_name_dropped", giveDoc: func(d map[string]any) { d["display_name"] = strings.Repeat("x", maxDisplayNameRunes+1) },
			wantHomepage: func(is *brokertest.Issuer) string { return is.URL + "/" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := []brokertest.Option{brokertest.WithDiscovery(tt.giveDoc)}
			if tt.giveTLS {
				opts = append(opts, brokertest.WithTLS())
			}
			is := brokertest.StartIssuer(t, opts...)
			policy, err := Config{Issuer: is.URL, Audience: testAudience}.validate(nil)
			require.NoError(t, err)

			md, err := Discover(t.Context(), policy, is.Client())

			require.NoError(t, err, "display members never fail discovery")
			assert.Equal(t, tt.wantName, md.DisplayName)
			var want string
			if tt.wantHomepage != nil {
				want = tt.wantHomepage(is)
			}
			assert.Equal(t, want, md.HomepageURI)
		})
	}
}

func TestRelyingParty_Metadata(t *testing.T) {
	_, is, rp := newReadyRP(t, nil)
	configured, err := New(Config{Issuer: is.URL, Audience: testAudience, JWKSURL: is.JWKSURL, RevocationURL: RevocationOff})
	require.NoError(t, err)
	t.Cleanup(func() { _ = configured.Close() })

	md, ok := rp.Metadata()
	_, configuredOK := configured.Metadata()

	require.True(t, ok, "discovered")
	assert.Equal(t, brokertest.DisplayName, md.DisplayName)
	assert.Equal(t, is.URL+"/", md.HomepageURI)
	assert.False(t, configuredOK, "nothing to discover with every URL configured")
}

func cmpOrString(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// TestStartHandler_configuredBoundURL: a configured BoundHandoffURL is
// used as it is, without the issuer's metadata.
func TestStartHandler_configuredBoundURL(t *testing.T) {
	_, is, rp := newReadyRP(t, nil)
	rp2, err := New(Config{Issuer: is.URL, Audience: testAudience, JWKSURL: is.JWKSURL, RevocationURL: RevocationOff,
		BoundHandoffURL: is.URL + "/other/bound"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = rp2.Close() })
	for name, tt := range map[string]struct {
		rp   *RelyingParty
		want string
	}{
		"ok/discovered": {rp: rp, want: is.URL + brokertest.BoundHandoffPath},
		"ok/configured": {rp: rp2, want: is.URL + "/other/bound"},
	} {
		t.Run(name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			tt.rp.StartHandler(nil).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/handoff/start?task_id=t", nil))
			require.Equal(t, http.StatusSeeOther, rec.Code, rec.Body.String())
			loc, err := url.Parse(rec.Header().Get("Location"))
			require.NoError(t, err)
			assert.Equal(t, tt.want, loc.Scheme+"://"+loc.Host+loc.Path)
		})
	}
	_, err = New(Config{Issuer: is.URL, Audience: testAudience, BoundHandoffURL: "http://attacker.test/bound"})
	assert.ErrorContains(t, err, "BoundHandoffURL", "a bound URL on another host is refused")
}

// failingReader fails after n bytes.
type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("entropy source failed")
	}
	k := min(len(p), f.n)
	f.n -= k
	return k, nil
}

// TestStartHandler_randomnessFails: a failing source refuses the start
// (500) and sets no cookie, whichever read fails.
func TestStartHandler_randomnessFails(t *testing.T) {
	for _, n := range []int{0, bindingSecretBytes} {
		_, _, rp := newReadyRP(t, func(c *Config) { c.Rand = &failingReader{n: n} })
		rec := httptest.NewRecorder()
		rp.StartHandler(nil).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/handoff/start?task_id=t", nil))
		assert.Equal(t, http.StatusInternalServerError, rec.Code, "failing after %d bytes", n)
		assert.Empty(t, rec.Result().Cookies())
	}
}
