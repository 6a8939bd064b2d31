package brokertest_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/broker/brokertest"
	"github.com/handoffbroker/handoff/broker/keys"
	"github.com/handoffbroker/handoff/broker/revocation"
	"github.com/handoffbroker/handoff/broker/token"
)

const testAudience = "https://relying.test"

var testTask = token.Task{ID: "transfer-42", Action: "approve"}

func testRequest(sub string) token.MintRequest {
	return token.MintRequest{Subject: sub, Audience: testAudience, Task: testTask}
}

// relying is what a relying service builds against the issuer: remote keys,
// a remote revocation list and a verifier over both, on clock.
type relying struct {
	keys        *keys.Remote
	revocations *revocation.Remote
	verifier    *token.Verifier
}

func newRelying(t *testing.T, is *brokertest.Issuer, clock *brokertest.Clock) *relying {
	t.Helper()
	r := &relying{}
	var err error
	if r.keys, err = keys.NewRemote(keys.RemoteConfig{URL: is.JWKSURL, Now: clock.Now, Client: is.Client()}); err != nil {
		t.Fatal(err)
	}
	if r.revocations, err = revocation.NewRemote(revocation.RemoteConfig{
		URL: is.RevocationURL, Keys: r.keys, Issuer: is.URL, Now: clock.Now, Client: is.Client(),
	}); err != nil {
		t.Fatal(err)
	}
	replay, err := token.NewMemoryReplayStore(token.MemoryReplayConfig{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { replay.Close() })
	if r.verifier, err = token.NewVerifier(token.VerifierConfig{
		Issuers: []token.TrustedIssuer{{Issuer: is.URL, Keys: r.keys}}, Audience: testAudience, Replay: replay,
		Revocation: r.revocations, Now: clock.Now,
	}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	return r
}

// verify polls the revocation list, then verifies tok.
func (r *relying) verify(t *testing.T, tok string) token.Reason {
	t.Helper()
	if err := r.revocations.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, err := r.verifier.Verify(context.Background(), tok, token.Expect{Task: &testTask})
	if err == nil {
		return ""
	}
	var te *token.Error
	if !errors.As(err, &te) {
		t.Fatalf("got %v, want a *token.Error", err)
	}
	return te.Reason
}

func TestIssuer_Verify(t *testing.T) {
	tests := []struct {
		name       string
		giveOpts   []brokertest.Option
		giveToken  func(t *testing.T, is *brokertest.Issuer, clock *brokertest.Clock) string
		wantReason token.Reason
	}{
		{
			name: "ok/minted",
			giveToken: func(t *testing.T, is *brokertest.Issuer, _ *brokertest.Clock) string {
				return is.Mint(t, testRequest("alice"))
			},
		},
		{
			name:     "ok/es256_over_tls",
			giveOpts: []brokertest.Option{brokertest.WithAlgorithm(token.ES256), brokertest.WithTLS()},
			giveToken: func(t *testing.T, is *brokertest.Issuer, _ *brokertest.Clock) string {
				m := is.MintFull(t, testRequest("alice"))
				if m.Algorithm != token.ES256 {
					t.Errorf("signed with %s, want ES256", m.Algorithm)
				}
				return m.Token
			},
		},
		{
			name:     "ok/named_issuer_signs_tokens_and_lists",
			giveOpts: []brokertest.Option{brokertest.WithIssuer("https://issuer.example")},
			giveToken: func(t *testing.T, is *brokertest.Issuer, _ *brokertest.Clock) string {
				if is.URL != "https://issuer.example" || discovery(t, is)["issuer"] != is.URL {
					t.Errorf("URL %s, discovery issuer %v: want the named issuer", is.URL, discovery(t, is)["issuer"])
				}
				return is.Mint(t, testRequest("alice"))
			},
		},
		{
			name: "ok/rotated_key_signs_after_publish_for",
			giveToken: func(t *testing.T, is *brokertest.Issuer, clock *brokertest.Clock) string {
				next := is.Rotate(t, token.EdDSA, time.Minute)
				clock.Advance(time.Minute)
				m := is.MintFull(t, testRequest("alice"))
				if m.KeyID != next.ID {
					t.Errorf("signed with %s, want the rotated key %s", m.KeyID, next.ID)
				}
				return m.Token
			},
		},
		{
			name: "ok/other_subject_not_signed_out",
			giveToken: func(t *testing.T, is *brokertest.Issuer, _ *brokertest.Clock) string {
				is.RevokeSubject(t, "bob")
				return is.Mint(t, testRequest("alice"))
			},
		},
		{
			name: "fail/jti_revoked",
			giveToken: func(t *testing.T, is *brokertest.Issuer, _ *brokertest.Clock) string {
				m := is.MintFull(t, testRequest("alice"))
				is.RevokeToken(t, m.ID, m.ExpiresAt)
				return m.Token
			},
			wantReason: token.ReasonRevoked,
		},
		{
			name: "fail/subject_signed_out",
			giveToken: func(t *testing.T, is *brokertest.Issuer, _ *brokertest.Clock) string {
				tok := is.Mint(t, testRequest("alice"))
				is.RevokeSubject(t, "alice")
				return tok
			},
			wantReason: token.ReasonRevoked,
		},
		{
			name: "fail/key_revoked",
			giveToken: func(t *testing.T, is *brokertest.Issuer, _ *brokertest.Clock) string {
				m := is.MintFull(t, testRequest("alice"))
				is.RevokeKey(t, m.KeyID)
				return m.Token
			},
			wantReason: token.ReasonRevoked,
		},
		{
			name: "fail/key_replaced",
			giveToken: func(t *testing.T, is *brokertest.Issuer, _ *brokertest.Clock) string {
				m := is.MintFull(t, testRequest("alice"))
				if next := is.ReplaceKey(t, m.KeyID); next == nil || next.ID == m.KeyID {
					t.Fatalf("replacement %+v, want a new current key", next)
				}
				return m.Token
			},
			wantReason: token.ReasonUnknownKey,
		},
		{
			name: "fail/expired_on_the_clock",
			giveToken: func(t *testing.T, is *brokertest.Issuer, clock *brokertest.Clock) string {
				tok := is.Mint(t, testRequest("alice"))
				clock.Advance(5 * time.Minute)
				return tok
			},
			wantReason: token.ReasonExpired,
		},
		{
			name: "fail/other_issuer_name",
			giveToken: func(t *testing.T, is *brokertest.Issuer, _ *brokertest.Clock) string {
				m := is.NewMinter(t, func(c *token.MinterConfig) { c.Issuer = "https://evil.test" })
				return is.MintWith(t, m, testRequest("alice"))
			},
			wantReason: token.ReasonWrongIssuer,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := brokertest.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
			is := brokertest.StartIssuer(t, append([]brokertest.Option{brokertest.WithNow(clock.Now)}, tt.giveOpts...)...)
			r := newRelying(t, is, clock)

			tok := tt.giveToken(t, is, clock)

			if got := r.verify(t, tok); got != tt.wantReason {
				t.Errorf("got reason %q, want %q", got, tt.wantReason)
			}
		})
	}
}

func get(t *testing.T, is *brokertest.Issuer, url string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := is.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

func discovery(t *testing.T, is *brokertest.Issuer) map[string]any {
	t.Helper()
	resp, body := get(t, is, is.DiscoveryURL, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("discovery: %s", resp.Status)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

func TestIssuer_Discovery(t *testing.T) {
	is := brokertest.StartIssuer(t,
		brokertest.WithHandoffEndpoint(testAudience, testAudience+"/handoff"),
		brokertest.WithDiscovery(func(doc map[string]any) { doc["an_extension"] = true }))

	doc := discovery(t, is)

	members := slices.Sorted(func(yield func(string) bool) {
		for k := range doc {
			if !yield(k) {
				return
			}
		}
	})
	want := []string{"an_extension", "bound_handoff_endpoint", "display_name", "handoff_endpoints", "handoff_origins", "homepage_uri", "issuer", "jwks_uri", "revocation_endpoint",
		"signing_alg_values_supported", "token_types_supported"}
	if !slices.Equal(members, want) {
		t.Errorf("members %v, want %v (SERVER1's and the edit's)", members, want)
	}
	for member, want := range map[string]string{"issuer": is.URL, "jwks_uri": is.JWKSURL, "revocation_endpoint": is.RevocationURL,
		"bound_handoff_endpoint": is.URL + brokertest.BoundHandoffPath, "display_name": brokertest.DisplayName, "homepage_uri": is.URL + "/"} {
		if doc[member] != want {
			t.Errorf("%s = %v, want %s", member, doc[member], want)
		}
	}
	if got := doc["handoff_endpoints"].(map[string]any)[testAudience]; got != testAudience+"/handoff" {
		t.Errorf("handoff endpoint %v", got)
	}
}

func TestIssuer_RevocationsUnpublished(t *testing.T) {
	is := brokertest.StartIssuer(t, brokertest.WithoutRevocations())
	if _, ok := discovery(t, is)["revocation_endpoint"]; ok {
		t.Error("an unpublished list is advertised")
	}
	if resp, _ := get(t, is, is.RevocationURL, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unpublished list: %s, want 404", resp.Status)
	}

	is.PublishRevocations(true)

	if _, ok := discovery(t, is)["revocation_endpoint"]; !ok {
		t.Error("a published list is not advertised")
	}
	resp, body := get(t, is, is.RevocationURL, nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != token.RevocationListMediaType || body == "" {
		t.Fatalf("published list: %s %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	resp, _ = get(t, is, is.RevocationURL, http.Header{"If-None-Match": {resp.Header.Get("ETag")}})
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("unchanged list with its ETag: %s, want 304", resp.Status)
	}
}

func TestIssuer_SetDown(t *testing.T) {
	for _, path := range []string{brokertest.JWKSPath, brokertest.DiscoveryPath, brokertest.RevocationsPath} {
		t.Run(strings.Trim(path, "/"), func(t *testing.T) {
			is := brokertest.StartIssuer(t)
			is.SetDown(path, true)
			if resp, _ := get(t, is, is.URL+path, nil); resp.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("down: %s, want 503", resp.Status)
			}
			is.SetDown(path, false)
			if resp, _ := get(t, is, is.URL+path, nil); resp.StatusCode != http.StatusOK {
				t.Errorf("up again: %s, want 200", resp.Status)
			}
		})
	}
}

func TestIssuer_Leaked(t *testing.T) {
	is := brokertest.StartIssuer(t)
	tok := is.Mint(t, testRequest("alice"))
	other := brokertest.StartIssuer(t).Mint(t, testRequest("alice"))
	sig := tok[strings.LastIndexByte(tok, '.')+1:]

	tests := []struct {
		name string
		give string
		want bool
	}{
		{name: "ok/clean", give: "handoff accepted for alice"},
		{name: "ok/another_issuers_token", give: other},
		{name: "fail/whole_token", give: "token=" + tok, want: true},
		{name: "fail/signature_alone", give: `"sig":"` + sig + `"`, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := is.Leaked(tt.give); got != tt.want {
				t.Errorf("Leaked = %v, want %v", got, tt.want)
			}
		})
	}
	if got := is.Tokens(); !slices.Equal(got, []string{tok}) {
		t.Errorf("Tokens() has %d tokens, want the one minted", len(got))
	}
}

func TestClock(t *testing.T) {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	c := brokertest.NewClock(start)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				c.Advance(time.Second)
				_ = c.Now()
			}
		})
	}
	wg.Wait()
	if got, want := c.Now(), start.Add(800*time.Second); !got.Equal(want) {
		t.Errorf("after 800 advances of 1s: %v, want %v", got, want)
	}
	c.Set(start)
	if !c.Now().Equal(start) {
		t.Errorf("after Set: %v, want %v", c.Now(), start)
	}
}

func TestFaults(t *testing.T) {
	if _, err := (brokertest.FailingKeys{}).LookupKey(context.Background(), "kid"); !errors.Is(err, brokertest.ErrUnavailable) {
		t.Errorf("FailingKeys: %v", err)
	}
	if err := (brokertest.FailingReplayStore{}).Consume(context.Background(), "k", time.Now()); !errors.Is(err, brokertest.ErrUnavailable) {
		t.Errorf("FailingReplayStore: %v", err)
	}
}
