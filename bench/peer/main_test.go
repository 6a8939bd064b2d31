package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	testIssuer   = "http://localhost:8081"
	testAudience = "http://127.0.0.1:8082"
)

// startPeer serves the peer's routes with a JWKS of one Ed25519 key and
// returns the key to sign with.
func startPeer(t *testing.T) (*httptest.Server, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{
			"kty": "OKP", "crv": "Ed25519", "kid": "k1", "alg": "EdDSA", "use": "sig",
			"x": base64.RawURLEncoding.EncodeToString(pub),
		}}})
	}))
	t.Cleanup(jwks.Close)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	e, closeStore, err := newServer(ctx, config{Issuer: testIssuer, Audience: testAudience, JWKSURL: jwks.URL}, io.Discard)
	require.NoError(t, err)
	t.Cleanup(closeStore)
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return srv, priv
}

func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	tok.Header["kid"] = "k1"
	s, err := tok.SignedString(key)
	require.NoError(t, err)
	return s
}

func validClaims(jti string) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"iss": testIssuer, "aud": testAudience, "sub": "alice", "jti": jti,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Minute).Unix(),
		"task": map[string]string{"id": "transfer-123", "action": "approve"},
	}
}

func post(t *testing.T, srv *httptest.Server, token string) *http.Response {
	t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.PostForm(srv.URL+"/handoff", url.Values{"token": {token}})
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestHandoff_AcceptsOnceThenRefusesReplay(t *testing.T) {
	srv, key := startPeer(t)
	tok := sign(t, jwt.SigningMethodEdDSA, key, validClaims("jti-1"))

	first := post(t, srv, tok)
	require.Equal(t, http.StatusSeeOther, first.StatusCode)
	assert.Equal(t, "/tasks/transfer-123", first.Header.Get("Location"))
	assert.Contains(t, first.Header.Get("Set-Cookie"), "peer_session=")

	second := post(t, srv, tok)
	assert.Equal(t, http.StatusConflict, second.StatusCode)
	body, err := io.ReadAll(second.Body)
	require.NoError(t, err)
	assert.JSONEq(t, `{"reason":"replayed"}`, string(body))
}

func TestHandoff_RefusesWhatThePeerChecks(t *testing.T) {
	_, other, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	with := func(k, v string) jwt.MapClaims {
		c := validClaims("jti-" + k)
		if v == "" {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	expired := validClaims("jti-expired")
	expired["iat"], expired["exp"] = time.Now().Add(-time.Hour).Unix(), time.Now().Add(-10*time.Minute).Unix()
	tests := []struct {
		name   string
		method jwt.SigningMethod
		key    func(ed25519.PrivateKey) any
		claims jwt.MapClaims
	}{
		{name: "fail/wrong_issuer", claims: with("iss", "http://evil.example")},
		{name: "fail/wrong_audience", claims: with("aud", "http://other.example")},
		{name: "fail/no_jti", claims: with("jti", "")},
		{name: "fail/no_exp", claims: with("exp", "")},
		{name: "fail/expired", claims: expired},
		{name: "fail/other_key", claims: validClaims("jti-other"), key: func(ed25519.PrivateKey) any { return other }},
		{name: "fail/alg_none", claims: validClaims("jti-none"), method: jwt.SigningMethodNone,
			key: func(ed25519.PrivateKey) any { return jwt.UnsafeAllowNoneSignatureType }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, key := startPeer(t)
			method, k := jwt.SigningMethod(jwt.SigningMethodEdDSA), any(key)
			if tt.method != nil {
				method = tt.method
			}
			if tt.key != nil {
				k = tt.key(key)
			}

			resp := post(t, srv, sign(t, method, k, tt.claims))

			assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
			assert.Empty(t, resp.Header.Get("Set-Cookie"))
		})
	}
}

func TestHandoff_RefusesGarbage(t *testing.T) {
	srv, _ := startPeer(t)

	resp := post(t, srv, strings.Repeat("a.", 2)+"a")

	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}
