package broker_test

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/broker"
)

// newRevocationIssuer returns a keyring with one current EdDSA key and a
// minter for testIssuer, both on clock.
func newRevocationIssuer(t testing.TB, clock *fakeClock) (*broker.Keyring, *broker.Minter) {
	t.Helper()
	ring := openTestKeyring(t, t.TempDir(), clock)
	generate(t, ring, broker.EdDSA, time.Time{})
	return ring, newTestMinter(t, ring, clock)
}

func newTestListVerifier(t testing.TB, cfg broker.RevocationListVerifierConfig) *broker.RevocationListVerifier {
	t.Helper()
	v, err := broker.NewRevocationListVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func signList(t testing.TB, m *broker.Minter, l broker.RevocationList) string {
	t.Helper()
	token, err := m.SignRevocationList(l, 0)
	if err != nil {
		t.Fatal(err)
	}
	return token
}

func TestRevocationList_roundTrip(t *testing.T) {
	clock := newClock(testNow.Add(400 * time.Millisecond))
	ring, m := newRevocationIssuer(t, clock)
	give := broker.RevocationList{
		Tokens: []broker.RevokedToken{
			{ID: "jti-live", ExpiresAt: testNow.Add(time.Minute)},
			{ID: "jti-gone", ExpiresAt: testNow.Add(-time.Second)},
		},
		Subjects: []broker.RevokedSubject{
			{Subject: "alice", NotBefore: testNow.Add(-time.Minute + 300*time.Millisecond), ExpiresAt: testNow.Add(11 * time.Minute)},
		},
		Keys: []broker.RevokedKey{{KeyID: "kid-compromised", ExpiresAt: testNow.Add(24 * time.Hour)}},
	}
	token := signList(t, m, give)

	got, err := newTestListVerifier(t, broker.RevocationListVerifierConfig{
		Issuers: []string{testIssuer}, Keys: ring, Now: clock.Now,
	}).Verify(context.Background(), token)
	if err != nil {
		t.Fatal(err)
	}
	want := &broker.RevocationList{
		Issuer:    testIssuer,
		IssuedAt:  testNow,
		ExpiresAt: testNow.Add(broker.DefaultRevocationListTTL),
		Tokens:    []broker.RevokedToken{{ID: "jti-live", ExpiresAt: testNow.Add(time.Minute)}},
		// Times are whole seconds, rounded up so no revocation shrinks.
		Subjects: []broker.RevokedSubject{{Subject: "alice", NotBefore: testNow.Add(-time.Minute + time.Second), ExpiresAt: testNow.Add(11 * time.Minute)}},
		Keys:     []broker.RevokedKey{{KeyID: "kid-compromised", ExpiresAt: testNow.Add(24 * time.Hour)}},
	}
	normalize := func(l *broker.RevocationList) {
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
	clock := newClock(testNow)
	ring, m := newRevocationIssuer(t, clock)
	minted, err := m.Mint(testMintRequest())
	if err != nil {
		t.Fatal(err)
	}
	list := signList(t, m, broker.RevocationList{})

	t.Run("fail/handoff_token_as_list", func(t *testing.T) {
		_, err := newTestListVerifier(t, broker.RevocationListVerifierConfig{
			Issuers: []string{testIssuer}, Keys: ring, Now: clock.Now,
		}).Verify(context.Background(), minted.Token)
		wantReason(t, err, broker.ReasonBadType)
	})
	t.Run("fail/list_as_handoff_token", func(t *testing.T) {
		cfg := testVerifierConfig(t, ring.PublishedKeys()...)
		cfg.Now = clock.Now
		_, err := newTestVerifier(t, cfg).Verify(context.Background(), list, broker.Expect{})
		wantReason(t, err, broker.ReasonBadType)
	})
}

func TestRevocationList_verify(t *testing.T) {
	k := newTestKey(t, broker.EdDSA)
	iat := testNow.Add(-10 * time.Second).Unix()
	header := func() map[string]any {
		return map[string]any{"alg": string(k.alg), "kid": k.pub.KeyID, "typ": broker.RevocationListType}
	}
	valid := func() map[string]any {
		return map[string]any{
			"iss":      testIssuer,
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
		giveConfig func(cfg *broker.RevocationListVerifierConfig)
		wantReason broker.Reason
	}{
		{name: "ok/valid"},
		{name: "ok/no_entries", giveClaims: func(c map[string]any) { delete(c, "jtis"); delete(c, "subjects"); delete(c, "kids") }},
		{name: "ok/application_prefixed_typ", giveHeader: func(h map[string]any) { h["typ"] = "application/revocation+jwt" }},
		{name: "fail/handoff_typ", giveHeader: func(h map[string]any) { h["typ"] = broker.HandoffTokenType }, wantReason: broker.ReasonBadType},
		{name: "fail/no_typ", giveHeader: func(h map[string]any) { delete(h, "typ") }, wantReason: broker.ReasonBadType},
		{name: "fail/untrusted_issuer", giveClaims: setClaim("iss", "https://evil.test"), wantReason: broker.ReasonWrongIssuer},
		{name: "fail/expired", giveClaims: func(c map[string]any) { c["iat"], c["exp"] = iat-400, iat-100 }, wantReason: broker.ReasonExpired},
		{name: "ok/expired_within_leeway", giveClaims: func(c map[string]any) { c["iat"], c["exp"] = iat-300, iat }},
		{name: "fail/issued_in_future", giveClaims: func(c map[string]any) { c["iat"], c["exp"] = iat+120, iat+300 }, wantReason: broker.ReasonIssuedInFuture},
		{name: "fail/lifetime_too_long", giveClaims: func(c map[string]any) { c["exp"] = iat + 7200 }, wantReason: broker.ReasonLifetimeTooLong},
		{name: "fail/missing_iss", giveClaims: dropClaim("iss"), wantReason: broker.ReasonMissingClaim},
		{name: "fail/missing_exp", giveClaims: dropClaim("exp"), wantReason: broker.ReasonMissingClaim},
		{name: "fail/string_exp", giveClaims: setClaim("exp", "1772366700"), wantReason: broker.ReasonInvalidClaim},
		{name: "fail/jtis_not_array", giveClaims: setClaim("jtis", map[string]any{"jti": "x"}), wantReason: broker.ReasonInvalidClaim},
		{name: "fail/entry_jti_not_string", giveClaims: setClaim("jtis", []any{map[string]any{"jti": 7, "exp": iat + 60}}), wantReason: broker.ReasonInvalidClaim},
		{name: "fail/entry_without_jti", giveClaims: setClaim("jtis", []any{map[string]any{"exp": iat + 60}}), wantReason: broker.ReasonMissingClaim},
		{name: "fail/entry_without_exp", giveClaims: setClaim("kids", []any{map[string]any{"kid": "k"}}), wantReason: broker.ReasonMissingClaim},
		{name: "fail/entry_fractional_exp", giveClaims: setClaim("jtis", []any{map[string]any{"jti": "j", "exp": 1.5}}), wantReason: broker.ReasonInvalidClaim},
		{name: "fail/entry_empty_subject", giveClaims: setClaim("subjects", []any{map[string]any{"sub": "", "nbf": iat, "exp": iat + 60}}), wantReason: broker.ReasonInvalidClaim},
		{name: "fail/subject_expires_before_nbf", giveClaims: setClaim("subjects", []any{map[string]any{"sub": "bob", "nbf": iat, "exp": iat - 1}}), wantReason: broker.ReasonInvalidClaim},
		{name: "fail/overlong_jti", giveClaims: setClaim("jtis", []any{map[string]any{"jti": strings.Repeat("j", 129), "exp": iat + 60}}), wantReason: broker.ReasonInvalidClaim},
		{
			name:       "fail/duplicate_member",
			giveRaw:    `{"iss":"` + testIssuer + `","iat":1772366390,"exp":1772366690,"jtis":[],"jtis":[{"jti":"x","exp":1772366450}]}`,
			wantReason: broker.ReasonMalformed,
		},
		{
			name:       "fail/duplicate_member_in_entry",
			giveRaw:    `{"iss":"` + testIssuer + `","iat":1772366390,"exp":1772366690,"subjects":[{"sub":"alice","sub":"bob","nbf":1772366390,"exp":1772366990}]}`,
			wantReason: broker.ReasonMalformed,
		},
		{
			name:       "fail/too_many_entries",
			giveConfig: func(cfg *broker.RevocationListVerifierConfig) { cfg.MaxEntries = 2 },
			wantReason: broker.ReasonTooLarge,
		},
		{
			name:       "fail/too_large",
			giveConfig: func(cfg *broker.RevocationListVerifierConfig) { cfg.MaxSize = 100 },
			wantReason: broker.ReasonTooLarge,
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
			payload := mustJSON(t, c)
			if tt.giveRaw != "" {
				payload = tt.giveRaw
			}
			token := k.signRaw(t, mustJSON(t, h), payload)
			keys, err := broker.NewStaticKeys(k.pub)
			if err != nil {
				t.Fatal(err)
			}
			cfg := broker.RevocationListVerifierConfig{
				Issuers: []string{testIssuer}, Keys: keys, Now: func() time.Time { return testNow },
			}
			if tt.giveConfig != nil {
				tt.giveConfig(&cfg)
			}
			_, err = newTestListVerifier(t, cfg).Verify(context.Background(), token)
			wantReason(t, err, tt.wantReason)
		})
	}
}

func TestRevocationList_sign(t *testing.T) {
	clock := newClock(testNow)
	_, m := newRevocationIssuer(t, clock)
	tests := []struct {
		name    string
		giveTTL time.Duration
		giveIn  broker.RevocationList
		wantErr bool
	}{
		{name: "ok/default_ttl"},
		{name: "ok/own_issuer", giveIn: broker.RevocationList{Issuer: testIssuer}},
		{name: "fail/other_issuer", giveIn: broker.RevocationList{Issuer: "https://other.test"}, wantErr: true},
		{name: "fail/ttl_too_long", giveTTL: 2 * time.Hour, wantErr: true},
		{name: "fail/empty_jti", giveIn: broker.RevocationList{Tokens: []broker.RevokedToken{{ExpiresAt: testNow.Add(time.Minute)}}}, wantErr: true},
		{name: "fail/subject_without_nbf", giveIn: broker.RevocationList{Subjects: []broker.RevokedSubject{{Subject: "alice", ExpiresAt: testNow.Add(time.Minute)}}}, wantErr: true},
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
	_, err := broker.NewRevocationListVerifier(broker.RevocationListVerifierConfig{
		Issuers: []string{""}, Leeway: time.Hour, MaxSize: 2 << 20, Algorithms: []broker.Algorithm{"HS256"},
	})
	// Issuers, Keys, Leeway, MaxSize and the algorithm, all at once.
	if got := len(joinedErrors(err)); got != 5 {
		t.Fatalf("got %d problems (%v), want 5", got, err)
	}
}
