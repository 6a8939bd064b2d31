package token_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/handoffbroker/handoff/broker/brokertest"
	"github.com/handoffbroker/handoff/broker/internal/fixture"
	"github.com/handoffbroker/handoff/broker/token"
)

func TestMint_roundTrip(t *testing.T) {
	for _, alg := range token.Algorithms() {
		t.Run(string(alg), func(t *testing.T) {
			ring := fixture.EphemeralRing(t, alg)
			clock := brokertest.NewClock(fixture.Now.Add(700 * time.Millisecond))
			m := fixture.NewMinter(t, ring, clock)
			req := fixture.MintRequest()
			req.Task.Params = map[string]string{"amount": "10.00", "currency": "EUR"}
			req.Actor = &token.Actor{Subject: "payments-service"}

			minted, err := m.Mint(req)
			if err != nil {
				t.Fatal(err)
			}
			if minted.ID != "jti-0001" || minted.Algorithm != alg || minted.KeyID != ring.Keys()[0].ID {
				t.Errorf("minted = %+v", minted)
			}
			if !minted.IssuedAt.Equal(fixture.Now) || !minted.ExpiresAt.Equal(fixture.Now.Add(token.DefaultTTL)) {
				t.Errorf("iat %v exp %v, want %v and %v later", minted.IssuedAt, minted.ExpiresAt, fixture.Now, token.DefaultTTL)
			}

			clock.Advance(5 * time.Second)
			v := fixture.NewVerifier(t, token.VerifierConfig{
				Issuers: []token.TrustedIssuer{{Issuer: fixture.Issuer, Keys: ring}}, Audience: fixture.Audience,
				Replay: fixture.NewStore(t, brokertest.NewClock(fixture.Now.Add(-time.Hour)), token.MemoryReplayConfig{}),
				Now:    clock.Now,
			})
			want := token.Task{ID: "transfer-42", Action: "approve", ParamsDigest: token.DigestParams(req.Task.Params)}
			got, err := v.Verify(context.Background(), minted.Token, token.Expect{Task: &want})
			if err != nil {
				t.Fatal(err)
			}
			c := got.Claims()
			if c.Subject != "alice" || c.ID != minted.ID || c.KeyID != minted.KeyID || c.Actor == nil || c.Actor.Subject != "payments-service" {
				t.Errorf("claims = %+v", c)
			}
			if c.Task.Params["amount"] != "10.00" || c.Task.ParamsDigest != want.ParamsDigest {
				t.Errorf("task = %+v", c.Task)
			}
			if !c.IssuedAt.Equal(minted.IssuedAt) || !c.NotBefore.Equal(minted.IssuedAt) || !c.ExpiresAt.Equal(minted.ExpiresAt) {
				t.Errorf("times = %v %v %v", c.IssuedAt, c.NotBefore, c.ExpiresAt)
			}
		})
	}
}

func TestMint_ttl(t *testing.T) {
	ring := fixture.EphemeralRing(t, token.EdDSA)
	tests := []struct {
		name        string
		giveMaxTTL  time.Duration
		giveTTL     time.Duration
		wantTTL     time.Duration
		wantErr     bool
		wantTooLong bool
	}{
		{name: "ok/default", wantTTL: token.DefaultTTL},
		{name: "ok/explicit", giveTTL: 30 * time.Second, wantTTL: 30 * time.Second},
		{name: "ok/fraction_truncated", giveTTL: 30*time.Second + 900*time.Millisecond, wantTTL: 30 * time.Second},
		{name: "ok/at_default_max", giveTTL: token.DefaultMaxTTL, wantTTL: token.DefaultMaxTTL},
		{name: "fail/above_default_max", giveTTL: token.DefaultMaxTTL + time.Second, wantErr: true, wantTooLong: true},
		{name: "fail/above_custom_max", giveMaxTTL: 2 * time.Minute, giveTTL: 3 * time.Minute, wantErr: true, wantTooLong: true},
		{name: "fail/below_one_second", giveTTL: 999 * time.Millisecond, wantErr: true},
		{name: "fail/negative", giveTTL: -time.Minute, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := token.NewMinter(token.MinterConfig{Issuer: fixture.Issuer, Keys: ring, MaxTTL: tt.giveMaxTTL})
			if err != nil {
				t.Fatal(err)
			}
			req := fixture.MintRequest()
			req.TTL = tt.giveTTL
			minted, err := m.Mint(req)
			if errors.Is(err, token.ErrTTLTooLong) != tt.wantTooLong {
				t.Errorf("errors.Is(%v, ErrTTLTooLong) = %v, want %v", err, !tt.wantTooLong, tt.wantTooLong)
			}
			if tt.wantErr {
				if err == nil {
					t.Fatal("Mint succeeded")
				}
				if minted.Token != "" {
					t.Error("failed Mint returned a token")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := minted.ExpiresAt.Sub(minted.IssuedAt); got != tt.wantTTL {
				t.Errorf("lifetime = %v, want %v", got, tt.wantTTL)
			}
		})
	}
}

func TestMint_request(t *testing.T) {
	ring := fixture.EphemeralRing(t, token.EdDSA)
	m, err := token.NewMinter(token.MinterConfig{Issuer: fixture.Issuer, Keys: ring})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		give      func(r *token.MintRequest)
		wantCount int // problems reported together
	}{
		{name: "ok/valid", give: func(*token.MintRequest) {}},
		{name: "fail/every_field_missing", give: func(r *token.MintRequest) { *r = token.MintRequest{} }, wantCount: 3},
		{name: "fail/long_subject", give: func(r *token.MintRequest) { r.Subject = strings.Repeat("s", 257) }, wantCount: 1},
		{name: "fail/task_without_action", give: func(r *token.MintRequest) { r.Task.Action = "" }, wantCount: 1},
		{name: "fail/empty_actor", give: func(r *token.MintRequest) { r.Actor = &token.Actor{} }, wantCount: 1},
		{name: "ok/nonce", give: func(r *token.MintRequest) { r.Nonce = token.BindingNonce([]byte("secret")) }},
		{name: "fail/long_nonce", give: func(r *token.MintRequest) { r.Nonce = strings.Repeat("n", 257) }, wantCount: 1},
		{name: "fail/params_digest_mismatch", give: func(r *token.MintRequest) {
			r.Task.Params = map[string]string{"amount": "10"}
			r.Task.ParamsDigest = token.DigestParams(map[string]string{"amount": "1000"})
		}, wantCount: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := fixture.MintRequest()
			tt.give(&req)
			_, err := m.Mint(req)
			if tt.wantCount == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if got := len(fixture.JoinedErrors(err)); got != tt.wantCount {
				t.Fatalf("got %d problems (%v), want %d", got, err, tt.wantCount)
			}
			var bad *token.RequestError
			if !errors.As(err, &bad) || strings.Contains(bad.Err.Error(), "broker:") {
				t.Fatalf("Mint's refusal is a *RequestError whose Err holds the problems alone, got %T %v", err, err)
			}
		})
	}
}

func TestMint_badID(t *testing.T) {
	ring := fixture.EphemeralRing(t, token.EdDSA)
	for _, id := range []string{"", strings.Repeat("j", 129)} {
		m, err := token.NewMinter(token.MinterConfig{Issuer: fixture.Issuer, Keys: ring, NewID: func() string { return id }})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Mint(fixture.MintRequest()); err == nil {
			t.Errorf("Mint accepted jti of %d bytes", len(id))
		}
	}
}

func TestMint_uniqueIDs(t *testing.T) {
	ring := fixture.EphemeralRing(t, token.EdDSA)
	m, err := token.NewMinter(token.MinterConfig{Issuer: fixture.Issuer, Keys: ring})
	if err != nil {
		t.Fatal(err)
	}
	seen := make(map[string]bool)
	for range 1000 {
		minted, err := m.Mint(fixture.MintRequest())
		if err != nil {
			t.Fatal(err)
		}
		if seen[minted.ID] {
			t.Fatalf("jti %q minted twice", minted.ID)
		}
		seen[minted.ID] = true
	}
}

func TestNewMinter_config(t *testing.T) {
	ring := fixture.EphemeralRing(t, token.EdDSA)
	tests := []struct {
		name     string
		give     token.MinterConfig
		wantErrs []string // the config fields the error must name
	}{
		{name: "ok/defaults", give: token.MinterConfig{Issuer: fixture.Issuer, Keys: ring}},
		{name: "fail/empty_config_lists_every_problem", wantErrs: []string{"Issuer", "Keys"}},
		{name: "fail/default_ttl_above_max", give: token.MinterConfig{Issuer: fixture.Issuer, Keys: ring, DefaultTTL: 5 * time.Minute, MaxTTL: time.Minute}, wantErrs: []string{"DefaultTTL"}},
		{name: "fail/default_ttl_below_1s", give: token.MinterConfig{Issuer: fixture.Issuer, Keys: ring, DefaultTTL: time.Millisecond}, wantErrs: []string{"DefaultTTL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := token.NewMinter(tt.give)
			if len(tt.wantErrs) == 0 {
				if err != nil || m == nil {
					t.Fatalf("NewMinter: %v", err)
				}
				return
			}
			if got := len(fixture.JoinedErrors(err)); got != len(tt.wantErrs) {
				t.Fatalf("got %d problems (%v), want %d", got, err, len(tt.wantErrs))
			}
			for _, field := range tt.wantErrs {
				if !strings.Contains(err.Error(), field) {
					t.Errorf("error %q does not name %s", err, field)
				}
			}
		})
	}
}

func TestDigestParams(t *testing.T) {
	a := token.DigestParams(map[string]string{"amount": "10", "currency": "EUR"})
	b := token.DigestParams(map[string]string{"currency": "EUR", "amount": "10"})
	c := token.DigestParams(map[string]string{"amount": "100", "currency": "EUR"})
	if a != b {
		t.Errorf("digest depends on map order: %s != %s", a, b)
	}
	if a == c {
		t.Errorf("different parameters give the same digest %s", a)
	}
	if !strings.HasPrefix(a, "sha256:") || len(a) != len("sha256:")+43 {
		t.Errorf("digest %q is not sha256: and 43 base64url characters", a)
	}
}

// TestMint_invalidUTF8Params checks that parameters that are not UTF-8 (a
// form value such as %FF) get an error, not a panic, from DigestParams and
// Mint.
func TestMint_invalidUTF8Params(t *testing.T) {
	params := map[string]string{"payee": "bob\xff"}
	if d := token.DigestParams(params); d == token.DigestParams(map[string]string{"payee": "bob"}) {
		t.Errorf("invalid byte dropped from the digest: %s", d)
	}
	ring := fixture.EphemeralRing(t, token.EdDSA)
	m := fixture.NewMinter(t, ring, brokertest.NewClock(fixture.Now))
	req := fixture.MintRequest()
	req.Task.Params = params
	if minted, err := m.Mint(req); err == nil {
		t.Fatalf("Mint signed parameters that are not UTF-8 (%d-byte token)", len(minted.Token))
	}
}

// TestVerify_binding mints a bound token and checks that a refused binding
// consumes nothing: the same token still verifies in the browser that holds
// the secret.
func TestVerify_binding(t *testing.T) {
	ring := fixture.EphemeralRing(t, token.EdDSA)
	clock := brokertest.NewClock(fixture.Now)
	m := fixture.NewMinter(t, ring, clock)
	secret := []byte("0123456789abcdef0123456789abcdef")
	nonce := token.BindingNonce(secret)
	if len(nonce) != 43 {
		t.Fatalf("nonce is %d characters, want 43", len(nonce))
	}
	req := fixture.MintRequest()
	req.Nonce = nonce
	minted := fixture.Must(m.Mint(req))
	v := fixture.NewVerifier(t, token.VerifierConfig{
		Issuers: []token.TrustedIssuer{{Issuer: fixture.Issuer, Keys: ring}}, Audience: fixture.Audience,
		Replay: fixture.NewStore(t, brokertest.NewClock(fixture.Now.Add(-time.Hour)), token.MemoryReplayConfig{}),
		Now:    clock.Now,
	})
	other := token.BindingNonce([]byte("another browser's secret"))
	_, err := v.Verify(context.Background(), minted.Token, token.Expect{AnyTask: true, Binding: &token.Binding{Nonces: []string{other}}})
	fixture.WantReason(t, err, token.ReasonUnboundHandoff)

	got, err := v.Verify(context.Background(), minted.Token, token.Expect{AnyTask: true, Binding: &token.Binding{Nonces: []string{other, nonce}}})
	if err != nil {
		t.Fatalf("bound token refused after a refused binding: %v", err)
	}
	if got.Claims().Nonce != nonce {
		t.Errorf("nonce = %q, want %q", got.Claims().Nonce, nonce)
	}
}

// TestMint_interoperates checks what Mint and SignRevocationList serialize
// by hand against an independent JOSE implementation (go-jose): the compact
// JWS parses, its protected header is exactly alg, kid and typ, and the
// signature verifies under the issuer's published key.
func TestMint_interoperates(t *testing.T) {
	for _, alg := range token.Algorithms() {
		t.Run(string(alg), func(t *testing.T) {
			ring := fixture.EphemeralRing(t, alg)
			m := fixture.NewMinter(t, ring, brokertest.NewClock(fixture.Now))
			minted, err := m.Mint(fixture.MintRequest())
			if err != nil {
				t.Fatal(err)
			}
			list, err := m.SignRevocationList(token.RevocationList{}, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, tt := range []struct {
				name    string
				give    string
				wantTyp string
			}{
				{name: "handoff_token", give: minted.Token, wantTyp: token.HandoffTokenType},
				{name: "revocation_list", give: list, wantTyp: token.RevocationListType},
			} {
				jws, err := jose.ParseSignedCompact(tt.give, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
				if err != nil {
					t.Fatalf("%s: go-jose parse: %v", tt.name, err)
				}
				h := jws.Signatures[0].Protected
				if h.Algorithm != string(alg) || h.KeyID != minted.KeyID || h.ExtraHeaders[jose.HeaderType] != tt.wantTyp || len(h.ExtraHeaders) != 1 {
					t.Errorf("%s: protected header = %+v", tt.name, h)
				}
				pub, err := ring.LookupKey(context.Background(), minted.KeyID)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := jws.Verify(pub.Key); err != nil {
					t.Errorf("%s: go-jose verify: %v", tt.name, err)
				}
			}
		})
	}
}
