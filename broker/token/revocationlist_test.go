package token_test

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/broker/brokertest"
	"github.com/handoffbroker/handoff/broker/internal/fixture"
	"github.com/handoffbroker/handoff/broker/keys"
	"github.com/handoffbroker/handoff/broker/token"
)

func TestRevocationList_roundTrip(t *testing.T) {
	clock := brokertest.NewClock(fixture.Now.Add(400 * time.Millisecond))
	ring, m := fixture.NewRevocationIssuer(t, clock)
	give := token.RevocationList{
		Tokens: []token.RevokedToken{
			{ID: "jti-live", ExpiresAt: fixture.Now.Add(time.Minute)},
			{ID: "jti-gone", ExpiresAt: fixture.Now.Add(-time.Second)},
		},
		Subjects: []token.RevokedSubject{
			{Subject: "alice", NotBefore: fixture.Now.Add(-time.Minute + 300*time.Millisecond), ExpiresAt: fixture.Now.Add(11 * time.Minute)},
		},
		Keys: []token.RevokedKey{{KeyID: "kid-compromised", ExpiresAt: fixture.Now.Add(24 * time.Hour)}},
	}
	tok := fixture.SignList(t, m, give)

	got, err := fixture.NewListVerifier(t, token.RevocationListVerifierConfig{
		Issuers: []token.TrustedIssuer{{Issuer: fixture.Issuer, Keys: ring}}, Now: clock.Now,
	}).Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	want := &token.RevocationList{
		Issuer:    fixture.Issuer,
		IssuedAt:  fixture.Now,
		ExpiresAt: fixture.Now.Add(token.DefaultRevocationListTTL),
		Tokens:    []token.RevokedToken{{ID: "jti-live", ExpiresAt: fixture.Now.Add(time.Minute)}},
		// Times are whole seconds, rounded up so no revocation shrinks.
		Subjects: []token.RevokedSubject{{Subject: "alice", NotBefore: fixture.Now.Add(-time.Minute + time.Second), ExpiresAt: fixture.Now.Add(11 * time.Minute)}},
		Keys:     []token.RevokedKey{{KeyID: "kid-compromised", ExpiresAt: fixture.Now.Add(24 * time.Hour)}},
	}
	normalize := func(l *token.RevocationList) {
		l.IssuedAt, l.ExpiresAt = l.IssuedAt.UTC(), l.ExpiresAt.UTC()
		for i := range l.Tokens {
			l.Tokens[i].ExpiresAt = l.Tokens[i].ExpiresAt.UTC()
		}
		for i := range l.Subjects {
			l.Subjects[i].NotBefore, l.Subjects[i].ExpiresAt = l.Subjects[i].NotBefore.UTC(), l.Subjects[i].ExpiresAt.UTC()
		}
		for i := range l.Keys {
			l.Keys[i].ExpiresAt = l.Keys[i].ExpiresAt.UTC()
		}
	}
	normalize(got)
	normalize(want)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}
}

// TestRevocationList_profilesDoNotMix checks RFC 8725 §3.12: a handoff token
// is no revocation list and a revocation list is no handoff token, though
// one issuer signs both with one key.
func TestRevocationList_profilesDoNotMix(t *testing.T) {
	clock := brokertest.NewClock(fixture.Now)
	ring, m := fixture.NewRevocationIssuer(t, clock)
	minted, err := m.Mint(fixture.MintRequest())
	if err != nil {
		t.Fatal(err)
	}
	list := fixture.SignList(t, m, token.RevocationList{})

	t.Run("fail/handoff_token_as_list", func(t *testing.T) {
		_, err := fixture.NewListVerifier(t, token.RevocationListVerifierConfig{
			Issuers: []token.TrustedIssuer{{Issuer: fixture.Issuer, Keys: ring}}, Now: clock.Now,
		}).Verify(context.Background(), minted.Token)
		fixture.WantReason(t, err, token.ReasonBadType)
	})
	t.Run("fail/list_as_handoff_token", func(t *testing.T) {
		cfg := fixture.VerifierConfig(t, ring.PublishedKeys()...)
		cfg.Now = clock.Now
		_, err := fixture.NewVerifier(t, cfg).Verify(context.Background(), list, token.Expect{AnyTask: true})
		fixture.WantReason(t, err, token.ReasonBadType)
	})
}

func TestRevocationList_verify(t *testing.T) {
	k := fixture.NewKey(t, token.EdDSA)
	iat := fixture.Now.Add(-10 * time.Second).Unix()
	header := func() map[string]any {
		return map[string]any{"alg": string(k.Alg), "kid": k.Pub.KeyID, "typ": token.RevocationListType}
	}
	valid := func() map[string]any {
		return map[string]any{
			"iss":      fixture.Issuer,
			"iat":      iat,
			"exp":      iat + 300,
			"jtis":     []any{map[string]any{"jti": "jti-1", "exp": iat + 60}},
			"subjects": []any{map[string]any{"sub": "alice", "nbf": iat, "exp": iat + 720}},
			"kids":     []any{map[string]any{"kid": "old-kid", "exp": iat + 3600}},
		}
	}
	tests := []struct {
		name       string
		giveClaims func(c map[string]any)
		giveRaw    string // replaces the payload when set
		giveHeader func(h map[string]any)
		giveConfig func(cfg *token.RevocationListVerifierConfig)
		wantReason token.Reason
	}{
		{name: "ok/valid"},
		{name: "ok/no_entries", giveClaims: func(c map[string]any) { delete(c, "jtis"); delete(c, "subjects"); delete(c, "kids") }},
		{name: "ok/application_prefixed_typ", giveHeader: func(h map[string]any) { h["typ"] = "application/revocation+jwt" }},
		{name: "fail/handoff_typ", giveHeader: func(h map[string]any) { h["typ"] = token.HandoffTokenType }, wantReason: token.ReasonBadType},
		{name: "fail/no_typ", giveHeader: func(h map[string]any) { delete(h, "typ") }, wantReason: token.ReasonBadType},
		{name: "fail/untrusted_issuer", giveClaims: setClaim("iss", "https://evil.test"), wantReason: token.ReasonWrongIssuer},
		{name: "fail/expired", giveClaims: func(c map[string]any) { c["iat"], c["exp"] = iat-400, iat-100 }, wantReason: token.ReasonExpired},
		{name: "ok/expired_within_leeway", giveClaims: func(c map[string]any) { c["iat"], c["exp"] = iat-300, iat }},
		{name: "fail/issued_in_future", giveClaims: func(c map[string]any) { c["iat"], c["exp"] = iat+120, iat+300 }, wantReason: token.ReasonIssuedInFuture},
		{name: "fail/lifetime_too_long", giveClaims: func(c map[string]any) { c["exp"] = iat + 7200 }, wantReason: token.ReasonLifetimeTooLong},
		{name: "fail/missing_iss", giveClaims: dropClaim("iss"), wantReason: token.ReasonMissingClaim},
		{name: "fail/missing_exp", giveClaims: dropClaim("exp"), wantReason: token.ReasonMissingClaim},
		{name: "fail/string_exp", giveClaims: setClaim("exp", "1772366700"), wantReason: token.ReasonInvalidClaim},
		{name: "fail/jtis_not_array", giveClaims: setClaim("jtis", map[string]any{"jti": "x"}), wantReason: token.ReasonInvalidClaim},
		{name: "fail/entry_jti_not_string", giveClaims: setClaim("jtis", []any{map[string]any{"jti": 7, "exp": iat + 60}}), wantReason: token.ReasonInvalidClaim},
		{name: "fail/entry_without_jti", giveClaims: setClaim("jtis", []any{map[string]any{"exp": iat + 60}}), wantReason: token.ReasonMissingClaim},
		{name: "fail/entry_without_exp", giveClaims: setClaim("kids", []any{map[string]any{"kid": "k"}}), wantReason: token.ReasonMissingClaim},
		{name: "fail/entry_fractional_exp", giveClaims: setClaim("jtis", []any{map[string]any{"jti": "j", "exp": 1.5}}), wantReason: token.ReasonInvalidClaim},
		{name: "fail/entry_empty_subject", giveClaims: setClaim("subjects", []any{map[string]any{"sub": "", "nbf": iat, "exp": iat + 60}}), wantReason: token.ReasonInvalidClaim},
		{name: "fail/subject_expires_before_nbf", giveClaims: setClaim("subjects", []any{map[string]any{"sub": "bob", "nbf": iat, "exp": iat - 1}}), wantReason: token.ReasonInvalidClaim},
		{name: "fail/overlong_jti", giveClaims: setClaim("jtis", []any{map[string]any{"jti": strings.Repeat("j", 129), "exp": iat + 60}}), wantReason: token.ReasonInvalidClaim},
		{
			name:       "fail/duplicate_member",
			giveRaw:    `{"iss":"` + fixture.Issuer + `","iat":1772366390,"exp":1772366690,"jtis":[],"jtis":[{"jti":"x","exp":1772366450}]}`,
			wantReason: token.ReasonMalformed,
		},
		{
			name:       "fail/duplicate_member_in_entry",
			giveRaw:    `{"iss":"` + fixture.Issuer + `","iat":1772366390,"exp":1772366690,"subjects":[{"sub":"alice","sub":"bob","nbf":1772366390,"exp":1772366990}]}`,
			wantReason: token.ReasonMalformed,
		},
		{
			name:       "fail/too_many_entries",
			giveConfig: func(cfg *token.RevocationListVerifierConfig) { cfg.MaxEntries = 2 },
			wantReason: token.ReasonTooLarge,
		},
		{
			name:       "fail/too_large",
			giveConfig: func(cfg *token.RevocationListVerifierConfig) { cfg.MaxSize = 100 },
			wantReason: token.ReasonTooLarge,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, c := header(), valid()
			if tt.giveHeader != nil {
				tt.giveHeader(h)
			}
			if tt.giveClaims != nil {
				tt.giveClaims(c)
			}
			payload := fixture.MustJSON(t, c)
			if tt.giveRaw != "" {
				payload = tt.giveRaw
			}
			tok := k.SignRaw(t, fixture.MustJSON(t, h), payload)
			trusted, err := keys.NewStatic(k.Pub)
			if err != nil {
				t.Fatal(err)
			}
			cfg := token.RevocationListVerifierConfig{
				Issuers: []token.TrustedIssuer{{Issuer: fixture.Issuer, Keys: trusted}}, Now: func() time.Time { return fixture.Now },
			}
			if tt.giveConfig != nil {
				tt.giveConfig(&cfg)
			}
			_, err = fixture.NewListVerifier(t, cfg).Verify(context.Background(), tok)
			fixture.WantReason(t, err, tt.wantReason)
		})
	}
}

func TestRevocationList_sign(t *testing.T) {
	clock := brokertest.NewClock(fixture.Now)
	_, m := fixture.NewRevocationIssuer(t, clock)
	tests := []struct {
		name    string
		giveTTL time.Duration
		giveIn  token.RevocationList
		wantErr bool
	}{
		{name: "ok/default_ttl"},
		{name: "ok/own_issuer", giveIn: token.RevocationList{Issuer: fixture.Issuer}},
		{name: "fail/other_issuer", giveIn: token.RevocationList{Issuer: "https://other.test"}, wantErr: true},
		{name: "fail/ttl_too_long", giveTTL: 2 * time.Hour, wantErr: true},
		{name: "fail/empty_jti", giveIn: token.RevocationList{Tokens: []token.RevokedToken{{ExpiresAt: fixture.Now.Add(time.Minute)}}}, wantErr: true},
		{name: "fail/subject_without_nbf", giveIn: token.RevocationList{Subjects: []token.RevokedSubject{{Subject: "alice", ExpiresAt: fixture.Now.Add(time.Minute)}}}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := m.SignRevocationList(tt.giveIn, tt.giveTTL)
			if (err != nil) != tt.wantErr {
				t.Fatalf("SignRevocationList error = %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

func TestNewRevocationListVerifier_config(t *testing.T) {
	_, err := token.NewRevocationListVerifier(token.RevocationListVerifierConfig{
		Issuers: []token.TrustedIssuer{{Issuer: ""}}, Leeway: time.Hour, MaxSize: 2 << 20, Algorithms: []token.Algorithm{"HS256"},
	})
	// Issuers, Keys, Leeway, MaxSize and the algorithm, all at once.
	if got := len(fixture.JoinedErrors(err)); got != 5 {
		t.Fatalf("got %d problems (%v), want 5", got, err)
	}
}
