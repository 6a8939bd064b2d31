package token_test

import (
	"context"
	"encoding/base64"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/broker/brokertest"
	"github.com/handoffbroker/handoff/broker/internal/fixture"
	"github.com/handoffbroker/handoff/broker/token"
)

const testJTI = "jti-0001"

var (
	testNonce  = token.BindingNonce([]byte("browser-secret-1"))
	otherNonce = token.BindingNonce([]byte("browser-secret-2"))
)

// verifyCase is one row of TestVerify. The token is k.sign(header, claims)
// after giveHeader and giveClaims mutate the defaults, unless giveToken
// builds it whole. k is the key under test; other is a trusted key of the
// other algorithm.
type verifyCase struct {
	name       string
	giveHeader func(h map[string]any)
	giveClaims func(c map[string]any)
	giveToken  func(t testing.TB, k, other fixture.Key) string
	giveConfig func(t testing.TB, cfg *token.VerifierConfig)
	giveExpect *token.Expect // nil: AnyTask
	wantReason token.Reason
}

func setClaim(name string, v any) func(map[string]any) {
	return func(c map[string]any) { c[name] = v }
}

func dropClaim(name string) func(map[string]any) {
	return func(c map[string]any) { delete(c, name) }
}

// setTimes sets iat, exp and nbf as offsets from testNow; a nil nbf drops it.
func setTimes(iat, exp time.Duration, nbf *time.Duration) func(map[string]any) {
	return func(c map[string]any) {
		c["iat"] = fixture.Now.Add(iat).Unix()
		c["exp"] = fixture.Now.Add(exp).Unix()
		delete(c, "nbf")
		if nbf != nil {
			c["nbf"] = fixture.Now.Add(*nbf).Unix()
		}
	}
}

// rawClaims replaces the payload with raw JSON, to send what a Go map
// cannot hold (duplicate or case-variant names, odd number spellings).
func rawClaims(payload string) func(t testing.TB, k, other fixture.Key) string {
	return func(t testing.TB, k, _ fixture.Key) string {
		return k.SignRaw(t, fixture.MustJSON(t, k.Header()), payload)
	}
}

// rawClaimsWith is rawClaims with "EXTRA" in payload replaced by the valid
// claims' JSON members, so a case adds members beside a valid set.
func rawClaimsWith(payload string) func(t testing.TB, k, other fixture.Key) string {
	return func(t testing.TB, k, _ fixture.Key) string {
		valid := fixture.MustJSON(t, fixture.ValidClaims(testJTI))
		return k.SignRaw(t, fixture.MustJSON(t, k.Header()), strings.Replace(payload, "EXTRA", valid[1:len(valid)-1], 1))
	}
}

func validToken(t testing.TB, k fixture.Key) string {
	t.Helper()
	return k.Sign(t, k.Header(), fixture.ValidClaims(testJTI))
}

// sizedToken returns a validly signed token of exactly size bytes, padded
// with an unknown claim and header whitespace (a base64url segment length
// is never 1 mod 4, so the payload alone cannot reach every size).
func sizedToken(t testing.TB, k fixture.Key, size int) string {
	t.Helper()
	hdr := fixture.MustJSON(t, k.Header())
	claims := fixture.ValidClaims(testJTI)
	claims["pad"] = ""
	base := len(fixture.MustJSON(t, claims))
	const sigLen = 86 // 64 signature bytes for both EdDSA and ES256
	for spaces := 0; spaces < 4; spaces++ {
		h := base64.RawURLEncoding.EncodedLen(len(hdr) + spaces)
		for fill := 0; h+base64.RawURLEncoding.EncodedLen(base+fill)+sigLen+2 <= size; fill++ {
			if h+base64.RawURLEncoding.EncodedLen(base+fill)+sigLen+2 == size {
				claims["pad"] = strings.Repeat("x", fill)
				tok := k.SignRaw(t, "{"+strings.Repeat(" ", spaces)+hdr[1:], fixture.MustJSON(t, claims))
				if len(tok) != size {
					t.Fatalf("sized token is %d bytes, want %d", len(tok), size)
				}
				return tok
			}
		}
	}
	t.Fatalf("cannot build a token of %d bytes", size)
	return ""
}

func durationPtr(d time.Duration) *time.Duration { return &d }

func verifyCases() []verifyCase {
	task := token.Task{ID: "transfer-42", Action: "approve"}
	return []verifyCase{
		{name: "ok/fresh_token"},
		{name: "ok/typ_with_application_prefix", giveHeader: func(h map[string]any) { h["typ"] = "application/handoff+jwt" }},
		{name: "ok/typ_other_case", giveHeader: func(h map[string]any) { h["typ"] = "Handoff+JWT" }},
		{name: "ok/no_nbf", giveClaims: dropClaim("nbf")},
		{name: "ok/with_actor", giveClaims: setClaim("act", map[string]any{"sub": "payments-service"})},
		{name: "ok/unknown_claim_ignored", giveClaims: setClaim("scope", "everything")},
		{name: "ok/expected_task", giveExpect: &token.Expect{Task: &task}},
		{name: "ok/task_with_params", giveClaims: setClaim("task", map[string]any{"id": "transfer-42", "action": "approve",
			"params": map[string]string{"amount": "10"}, "params_digest": token.DigestParams(map[string]string{"amount": "10"})})},
		{name: "ok/expired_within_leeway", giveClaims: setTimes(-89*time.Second, -29*time.Second, nil)},
		{name: "ok/issued_in_future_within_leeway", giveClaims: setTimes(29*time.Second, 89*time.Second, nil)},
		{name: "ok/lifetime_at_max", giveClaims: setTimes(-10*time.Second, 590*time.Second, nil)},
		{name: "ok/at_size_limit", giveToken: func(t testing.TB, k, _ fixture.Key) string { return sizedToken(t, k, token.DefaultMaxTokenSize) }},

		{name: "fail/too_large", wantReason: token.ReasonTooLarge,
			giveToken: func(t testing.TB, k, _ fixture.Key) string { return sizedToken(t, k, token.DefaultMaxTokenSize+1) }},
		{name: "fail/too_large_custom_limit", wantReason: token.ReasonTooLarge,
			giveConfig: func(_ testing.TB, cfg *token.VerifierConfig) { cfg.MaxTokenSize = 100 }},

		{name: "fail/malformed_empty", wantReason: token.ReasonMalformed,
			giveToken: func(testing.TB, fixture.Key, fixture.Key) string { return "" }},
		{name: "fail/malformed_two_segments", wantReason: token.ReasonMalformed,
			giveToken: func(t testing.TB, k, _ fixture.Key) string {
				tok := validToken(t, k)
				return tok[:strings.LastIndexByte(tok, '.')]
			}},
		{name: "fail/malformed_empty_signature", wantReason: token.ReasonMalformed,
			giveToken: func(t testing.TB, k, _ fixture.Key) string {
				tok := validToken(t, k)
				return tok[:strings.LastIndexByte(tok, '.')+1]
			}},
		{name: "fail/malformed_std_base64_alphabet", wantReason: token.ReasonMalformed,
			giveToken: func(t testing.TB, k, _ fixture.Key) string {
				return strings.NewReplacer("-", "+", "_", "/").Replace(validToken(t, k)) + "+/"
			}},
		{name: "fail/malformed_header_not_json", wantReason: token.ReasonMalformed,
			giveToken: func(t testing.TB, k, _ fixture.Key) string {
				return k.SignRaw(t, "alg=EdDSA", fixture.MustJSON(t, fixture.ValidClaims(testJTI)))
			}},
		{name: "fail/malformed_payload_not_json", wantReason: token.ReasonMalformed,
			giveToken: rawClaims(`iss=https://issuer.test`)},
		{name: "fail/malformed_payload_array", wantReason: token.ReasonMalformed,
			giveToken: rawClaims(`[{"iss":"https://issuer.test"}]`)},
		{name: "fail/malformed_trailing_data", wantReason: token.ReasonMalformed,
			giveToken: rawClaimsWith(`{EXTRA} {}`)},

		{name: "fail/unsupported_alg_hs256", wantReason: token.ReasonUnsupportedAlg,
			giveHeader: func(h map[string]any) { h["alg"] = "HS256" }},
		{name: "fail/unsupported_alg_rs256", wantReason: token.ReasonUnsupportedAlg,
			giveHeader: func(h map[string]any) { h["alg"] = "RS256" }},
		{name: "fail/unsupported_alg_es384", wantReason: token.ReasonUnsupportedAlg,
			giveHeader: func(h map[string]any) { h["alg"] = "ES384" }},
		{name: "fail/unsupported_alg_lowercase", wantReason: token.ReasonUnsupportedAlg,
			giveHeader: func(h map[string]any) { h["alg"] = strings.ToLower(h["alg"].(string)) }},
		{name: "fail/unsupported_alg_missing", wantReason: token.ReasonUnsupportedAlg,
			giveHeader: func(h map[string]any) { delete(h, "alg") }},
		{name: "fail/unsupported_alg_not_key_alg", wantReason: token.ReasonUnsupportedAlg,
			giveToken: func(t testing.TB, k, other fixture.Key) string {
				h := k.Header()
				h["alg"] = string(other.Alg)
				return other.Sign(t, h, fixture.ValidClaims(testJTI))
			}},
		{name: "fail/unsupported_alg_narrowed_allowlist", wantReason: token.ReasonUnsupportedAlg,
			giveHeader: func(h map[string]any) { h["alg"] = string(token.EdDSA) },
			giveConfig: func(_ testing.TB, cfg *token.VerifierConfig) { cfg.Algorithms = []token.Algorithm{token.ES256} }},

		{name: "fail/bad_type_jwt", wantReason: token.ReasonBadType, giveHeader: func(h map[string]any) { h["typ"] = "JWT" }},
		{name: "fail/bad_type_access_token", wantReason: token.ReasonBadType, giveHeader: func(h map[string]any) { h["typ"] = "at+jwt" }},
		{name: "fail/bad_type_missing", wantReason: token.ReasonBadType, giveHeader: func(h map[string]any) { delete(h, "typ") }},
		{name: "fail/malformed_typ_not_string", wantReason: token.ReasonMalformed, giveHeader: func(h map[string]any) { h["typ"] = 1 }},

		{name: "fail/bad_header_crit", wantReason: token.ReasonBadHeader, giveHeader: func(h map[string]any) { h["crit"] = []string{"exp"}; h["exp"] = 1 }},
		{name: "fail/bad_header_jku", wantReason: token.ReasonBadHeader, giveHeader: func(h map[string]any) { h["jku"] = "https://attacker.test/jwks" }},
		{name: "fail/bad_header_x5u", wantReason: token.ReasonBadHeader, giveHeader: func(h map[string]any) { h["x5u"] = "https://attacker.test/cert" }},
		{name: "fail/bad_header_x5c", wantReason: token.ReasonBadHeader, giveHeader: func(h map[string]any) { h["x5c"] = []string{"MIIB"} }},
		{name: "fail/bad_header_cty", wantReason: token.ReasonBadHeader, giveHeader: func(h map[string]any) { h["cty"] = "JWT" }},
		{name: "fail/bad_header_b64", wantReason: token.ReasonBadHeader, giveHeader: func(h map[string]any) { h["b64"] = false }},
		{name: "fail/bad_header_name_case_variant", wantReason: token.ReasonBadHeader, giveHeader: func(h map[string]any) { h["Kid"] = "other" }},
		{name: "fail/bad_header_before_member_types", wantReason: token.ReasonBadHeader, giveHeader: func(h map[string]any) { h["jwk"] = map[string]any{}; h["kid"] = 5 }},
		{name: "fail/malformed_kid_not_string", wantReason: token.ReasonMalformed, giveHeader: func(h map[string]any) { h["kid"] = 5 }},
		{name: "fail/malformed_alg_object", wantReason: token.ReasonMalformed, giveHeader: func(h map[string]any) { h["alg"] = map[string]any{"EdDSA": true} }},
		{name: "fail/bad_header_null_kid", wantReason: token.ReasonBadHeader, giveHeader: func(h map[string]any) { h["kid"] = nil }},
		{name: "fail/bad_header_missing_kid", wantReason: token.ReasonBadHeader, giveHeader: func(h map[string]any) { delete(h, "kid") }},
		{name: "fail/bad_header_empty_kid", wantReason: token.ReasonBadHeader, giveHeader: func(h map[string]any) { h["kid"] = "" }},
		{name: "fail/bad_header_long_kid", wantReason: token.ReasonBadHeader, giveHeader: func(h map[string]any) { h["kid"] = strings.Repeat("k", 129) }},

		{name: "fail/unknown_key", wantReason: token.ReasonUnknownKey, giveHeader: func(h map[string]any) { h["kid"] = "no-such-key" }},
		{name: "fail/unknown_key_path_traversal", wantReason: token.ReasonUnknownKey, giveHeader: func(h map[string]any) { h["kid"] = "../../../etc/passwd" }},

		{name: "fail/bad_signature_flipped_bit", wantReason: token.ReasonBadSignature,
			giveToken: func(t testing.TB, k, _ fixture.Key) string {
				tok := []byte(validToken(t, k))
				i := len(tok) - 10
				tok[i] = map[bool]byte{true: 'B', false: 'A'}[tok[i] == 'A']
				return string(tok)
			}},
		{name: "fail/bad_signature_other_key_same_kid", wantReason: token.ReasonBadSignature,
			giveToken: func(t testing.TB, k, _ fixture.Key) string {
				return fixture.NewKey(t, k.Alg).Sign(t, k.Header(), fixture.ValidClaims(testJTI))
			}},
		{name: "fail/bad_signature_swapped_payload", wantReason: token.ReasonBadSignature,
			giveToken: func(t testing.TB, k, _ fixture.Key) string {
				a := strings.Split(validToken(t, k), ".")
				c := fixture.ValidClaims(testJTI)
				c["sub"] = "mallory"
				b := strings.Split(k.Sign(t, k.Header(), c), ".")
				return a[0] + "." + b[1] + "." + a[2]
			}},
		{name: "fail/bad_signature_truncated", wantReason: token.ReasonBadSignature,
			giveToken: func(t testing.TB, k, _ fixture.Key) string {
				tok := validToken(t, k)
				return tok[:len(tok)-3]
			}},

		{name: "fail/missing_claim_iss", wantReason: token.ReasonMissingClaim, giveClaims: dropClaim("iss")},
		{name: "fail/missing_claim_sub", wantReason: token.ReasonMissingClaim, giveClaims: dropClaim("sub")},
		{name: "fail/missing_claim_aud", wantReason: token.ReasonMissingClaim, giveClaims: dropClaim("aud")},
		{name: "fail/missing_claim_exp", wantReason: token.ReasonMissingClaim, giveClaims: dropClaim("exp")},
		{name: "fail/missing_claim_iat", wantReason: token.ReasonMissingClaim, giveClaims: dropClaim("iat")},
		{name: "fail/missing_claim_jti", wantReason: token.ReasonMissingClaim, giveClaims: dropClaim("jti")},
		{name: "fail/missing_claim_task", wantReason: token.ReasonMissingClaim, giveClaims: dropClaim("task")},
		{name: "fail/invalid_claim_exp_null", wantReason: token.ReasonInvalidClaim, giveClaims: setClaim("exp", nil)},

		{name: "fail/invalid_claim_exp_string", wantReason: token.ReasonInvalidClaim, giveClaims: setClaim("exp", "1772366450")},
		{name: "fail/invalid_claim_iat_float", wantReason: token.ReasonInvalidClaim, giveClaims: setClaim("iat", 1772366390.5)},
		{name: "fail/invalid_claim_nbf_string", wantReason: token.ReasonInvalidClaim, giveClaims: setClaim("nbf", "now")},
		{name: "fail/invalid_claim_exp_before_iat", wantReason: token.ReasonInvalidClaim, giveClaims: setTimes(-10*time.Second, -11*time.Second, nil)},
		{name: "fail/invalid_claim_iss_number", wantReason: token.ReasonInvalidClaim, giveClaims: setClaim("iss", 7)},
		{name: "fail/invalid_claim_sub_empty", wantReason: token.ReasonInvalidClaim, giveClaims: setClaim("sub", "")},
		{name: "fail/invalid_claim_jti_empty", wantReason: token.ReasonInvalidClaim, giveClaims: setClaim("jti", "")},
		{name: "fail/invalid_claim_jti_too_long", wantReason: token.ReasonInvalidClaim, giveClaims: setClaim("jti", strings.Repeat("j", 129))},
		{name: "fail/invalid_claim_task_without_action", wantReason: token.ReasonInvalidClaim, giveClaims: setClaim("task", map[string]any{"id": "transfer-42"})},
		{name: "fail/invalid_claim_task_id_number", wantReason: token.ReasonInvalidClaim, giveClaims: setClaim("task", map[string]any{"id": 42, "action": "approve"})},
		{name: "fail/invalid_claim_params_digest_mismatch", wantReason: token.ReasonInvalidClaim,
			giveClaims: setClaim("task", map[string]any{"id": "transfer-42", "action": "approve",
				"params": map[string]string{"amount": "1000000"}, "params_digest": token.DigestParams(map[string]string{"amount": "10"})})},
		{name: "fail/invalid_claim_params_without_digest", wantReason: token.ReasonInvalidClaim,
			giveClaims: setClaim("task", map[string]any{"id": "transfer-42", "action": "approve", "params": map[string]string{"amount": "10"}})},
		{name: "fail/invalid_claim_actor_without_sub", wantReason: token.ReasonInvalidClaim, giveClaims: setClaim("act", map[string]any{})},

		{name: "fail/wrong_issuer", wantReason: token.ReasonWrongIssuer, giveClaims: setClaim("iss", "https://attacker.test")},
		{name: "fail/wrong_issuer_trailing_slash", wantReason: token.ReasonWrongIssuer, giveClaims: setClaim("iss", fixture.Issuer+"/")},
		{name: "fail/wrong_issuer_empty", wantReason: token.ReasonWrongIssuer, giveClaims: setClaim("iss", "")},

		{name: "fail/wrong_audience", wantReason: token.ReasonWrongAudience, giveClaims: setClaim("aud", "https://other.test")},
		{name: "fail/wrong_audience_array_of_one", wantReason: token.ReasonWrongAudience, giveClaims: setClaim("aud", []string{fixture.Audience})},
		{name: "fail/wrong_audience_number", wantReason: token.ReasonWrongAudience, giveClaims: setClaim("aud", 1)},

		{name: "fail/expired", wantReason: token.ReasonExpired, giveClaims: setTimes(-2*time.Hour, -time.Hour-59*time.Minute, nil)},
		{name: "fail/expired_at_leeway_edge", wantReason: token.ReasonExpired, giveClaims: setTimes(-90*time.Second, -30*time.Second, nil)},
		{name: "fail/expired_zero_leeway", wantReason: token.ReasonExpired, giveClaims: setTimes(-60*time.Second, -time.Second, nil),
			giveConfig: func(_ testing.TB, cfg *token.VerifierConfig) { cfg.Leeway = time.Nanosecond }},

		{name: "fail/not_yet_valid", wantReason: token.ReasonNotYetValid, giveClaims: setTimes(-10*time.Second, 50*time.Second, durationPtr(31*time.Second))},
		{name: "fail/issued_in_future", wantReason: token.ReasonIssuedInFuture, giveClaims: setTimes(31*time.Second, 91*time.Second, nil)},

		{name: "fail/lifetime_too_long", wantReason: token.ReasonLifetimeTooLong, giveClaims: setTimes(-10*time.Second, 591*time.Second, nil)},
		{name: "fail/lifetime_too_long_custom", wantReason: token.ReasonLifetimeTooLong,
			giveConfig: func(_ testing.TB, cfg *token.VerifierConfig) { cfg.MaxLifetime = 59 * time.Second }},

		{name: "fail/task_mismatch_id", wantReason: token.ReasonTaskMismatch,
			giveExpect: &token.Expect{Task: &token.Task{ID: "transfer-43", Action: "approve"}}},
		{name: "fail/task_mismatch_action", wantReason: token.ReasonTaskMismatch,
			giveExpect: &token.Expect{Task: &token.Task{ID: "transfer-42", Action: "cancel"}}},
		{name: "fail/task_mismatch_params", wantReason: token.ReasonTaskMismatch,
			giveExpect: &token.Expect{Task: &token.Task{ID: "transfer-42", Action: "approve", ParamsDigest: token.DigestParams(map[string]string{"amount": "10"})}}},

		{name: "fail/wrong_subject", wantReason: token.ReasonWrongSubject,
			giveExpect: &token.Expect{AnyTask: true, Subject: "bob"}},
		{name: "ok/expected_subject", giveExpect: &token.Expect{AnyTask: true, Subject: "alice"}},

		{name: "fail/invalid_expect_zero", wantReason: token.ReasonInvalidExpect, giveExpect: &token.Expect{}},
		{name: "fail/invalid_expect_task_and_any_task", wantReason: token.ReasonInvalidExpect,
			giveExpect: &token.Expect{Task: &task, AnyTask: true}},

		{name: "ok/binding_match", giveClaims: setClaim("nonce", testNonce),
			giveExpect: &token.Expect{AnyTask: true, Binding: &token.Binding{Nonces: []string{otherNonce, testNonce}}}},
		{name: "ok/nonce_without_binding_expectation", giveClaims: setClaim("nonce", testNonce)},
		{name: "fail/unbound_handoff_mismatch", wantReason: token.ReasonUnboundHandoff, giveClaims: setClaim("nonce", testNonce),
			giveExpect: &token.Expect{AnyTask: true, Binding: &token.Binding{Nonces: []string{otherNonce}}}},
		{name: "fail/unbound_handoff_missing_nonce", wantReason: token.ReasonUnboundHandoff,
			giveExpect: &token.Expect{AnyTask: true, Binding: &token.Binding{Nonces: []string{testNonce}}}},
		{name: "fail/unbound_handoff_no_secret_presented", wantReason: token.ReasonUnboundHandoff, giveClaims: setClaim("nonce", testNonce),
			giveExpect: &token.Expect{AnyTask: true, Binding: &token.Binding{}}},
		{name: "fail/unbound_handoff_empty_nonce", wantReason: token.ReasonUnboundHandoff, giveClaims: setClaim("nonce", ""),
			giveExpect: &token.Expect{AnyTask: true, Binding: &token.Binding{Nonces: []string{""}}}},
		{name: "fail/invalid_claim_nonce_not_string", wantReason: token.ReasonInvalidClaim, giveClaims: setClaim("nonce", 1)},
		{name: "fail/invalid_claim_nonce_too_long", wantReason: token.ReasonInvalidClaim, giveClaims: setClaim("nonce", strings.Repeat("n", 257))},

		{name: "fail/revoked", wantReason: token.ReasonRevoked,
			giveConfig: func(_ testing.TB, cfg *token.VerifierConfig) {
				cfg.Revocation = fixture.RevocationStub{Err: &token.Error{Reason: token.ReasonRevoked}}
			}},
		{name: "ok/not_revoked",
			giveConfig: func(_ testing.TB, cfg *token.VerifierConfig) { cfg.Revocation = fixture.RevocationStub{} }},

		{name: "fail/issued_before_restart", wantReason: token.ReasonIssuedBeforeRestart,
			giveConfig: func(t testing.TB, cfg *token.VerifierConfig) {
				cfg.Replay = fixture.NewStore(t, brokertest.NewClock(fixture.Now.Add(-5*time.Second)), token.MemoryReplayConfig{})
			}},

		{name: "fail/replayed", wantReason: token.ReasonReplayed,
			giveConfig: func(t testing.TB, cfg *token.VerifierConfig) {
				if err := cfg.Replay.Consume(context.Background(), fixture.Issuer+" "+testJTI, fixture.Now.Add(time.Hour)); err != nil {
					t.Fatal(err)
				}
			}},

		{name: "fail/unavailable_key_source", wantReason: token.ReasonUnavailable,
			giveConfig: func(_ testing.TB, cfg *token.VerifierConfig) { cfg.Issuers[0].Keys = brokertest.FailingKeys{} }},
		{name: "fail/unavailable_replay_store", wantReason: token.ReasonUnavailable,
			giveConfig: func(_ testing.TB, cfg *token.VerifierConfig) { cfg.Replay = brokertest.FailingReplayStore{} }},
		{name: "fail/unavailable_revocation", wantReason: token.ReasonUnavailable,
			giveConfig: func(_ testing.TB, cfg *token.VerifierConfig) {
				cfg.Revocation = fixture.RevocationStub{Err: errors.New("revocation list unreachable")}
			}},
	}
}

func TestVerify(t *testing.T) {
	covered := make(map[token.Reason]bool)
	for _, alg := range token.Algorithms() {
		k := fixture.NewKey(t, alg)
		other := fixture.NewKey(t, otherAlg(alg))
		for _, tt := range verifyCases() {
			t.Run(string(alg)+"/"+tt.name, func(t *testing.T) {
				cfg := fixture.VerifierConfig(t, k.Pub, other.Pub)
				if tt.giveConfig != nil {
					tt.giveConfig(t, &cfg)
				}
				v := fixture.NewVerifier(t, cfg)
				tok := buildToken(t, tt, k, other)

				want := token.Expect{AnyTask: true}
				if tt.giveExpect != nil {
					want = *tt.giveExpect
				}
				got, err := v.Verify(context.Background(), tok, want)
				fixture.WantReason(t, err, tt.wantReason)
				covered[tt.wantReason] = true
				if tt.wantReason != "" {
					if got != nil {
						t.Fatal("rejected token returned claims")
					}
					return
				}
				c := got.Claims()
				if c.Issuer != fixture.Issuer || c.Audience != fixture.Audience || c.ID != testJTI || c.Subject != "alice" {
					t.Errorf("claims = %+v", c)
				}
				if c.KeyID != k.Pub.KeyID || c.Algorithm != alg {
					t.Errorf("key = %q %q, want %q %q", c.KeyID, c.Algorithm, k.Pub.KeyID, alg)
				}
				if c.Task.ID != "transfer-42" || c.Task.Action != "approve" {
					t.Errorf("task = %+v", c.Task)
				}
			})
		}
	}
	for _, r := range token.Reasons() {
		if !covered[r] {
			t.Errorf("no case covers reason %q", r)
		}
	}
}

func buildToken(t testing.TB, tt verifyCase, k, other fixture.Key) string {
	t.Helper()
	if tt.giveToken != nil {
		return tt.giveToken(t, k, other)
	}
	h, c := k.Header(), fixture.ValidClaims(testJTI)
	if tt.giveHeader != nil {
		tt.giveHeader(h)
	}
	if tt.giveClaims != nil {
		tt.giveClaims(c)
	}
	return k.Sign(t, h, c)
}

func otherAlg(a token.Algorithm) token.Algorithm {
	if a == token.EdDSA {
		return token.ES256
	}
	return token.EdDSA
}

// TestVerify_claims checks that a verified token's claims come back intact,
// times included.
func TestVerify_claims(t *testing.T) {
	k := fixture.NewKey(t, token.EdDSA)
	v := fixture.NewVerifier(t, fixture.VerifierConfig(t, k.Pub))
	c := fixture.ValidClaims(testJTI)
	c["act"] = map[string]any{"sub": "payments-service"}
	c["task"] = map[string]any{"id": "transfer-42", "action": "approve", "params_digest": "sha256:abc"}

	got, err := v.Verify(context.Background(), k.Sign(t, k.Header(), c), token.Expect{AnyTask: true})
	if err != nil {
		t.Fatal(err)
	}
	want := token.Claims{
		Issuer: fixture.Issuer, Subject: "alice", Audience: fixture.Audience, ID: testJTI,
		IssuedAt:  time.Unix(c["iat"].(int64), 0),
		NotBefore: time.Unix(c["nbf"].(int64), 0),
		ExpiresAt: time.Unix(c["exp"].(int64), 0),
		Task:      token.Task{ID: "transfer-42", Action: "approve", ParamsDigest: "sha256:abc"},
		KeyID:     k.Pub.KeyID, Algorithm: token.EdDSA,
	}
	gc := got.Claims()
	if gc.Actor == nil || gc.Actor.Subject != "payments-service" {
		t.Errorf("actor = %+v", gc.Actor)
	}
	if gc.Task.ID != want.Task.ID || gc.Task.Action != want.Task.Action || gc.Task.ParamsDigest != want.Task.ParamsDigest || gc.Task.Params != nil {
		t.Errorf("task = %+v, want %+v", gc.Task, want.Task)
	}
	gc.Actor, gc.Task, want.Task = nil, token.Task{}, token.Task{}
	if !reflect.DeepEqual(gc, want) {
		t.Errorf("claims =\n%+v\nwant\n%+v", gc, want)
	}
}

func TestExplain(t *testing.T) {
	k := fixture.NewKey(t, token.EdDSA)
	tests := []struct {
		name       string
		giveToken  string
		wantSteps  []string
		wantReason token.Reason
	}{
		{
			name:      "ok/every_step_but_replay",
			giveToken: validToken(t, k),
			wantSteps: []string{token.StepSize, token.StepStructure, token.StepHeader, token.StepIssuer, token.StepKey, token.StepSignature, token.StepClaims, token.StepTask},
		},
		{
			name: "fail/stops_at_failing_step",
			giveToken: func() string {
				h := k.Header()
				h["typ"] = "JWT"
				return k.Sign(t, h, fixture.ValidClaims(testJTI))
			}(),
			wantSteps:  []string{token.StepSize, token.StepStructure, token.StepHeader},
			wantReason: token.ReasonBadType,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := fixture.NewVerifier(t, fixture.VerifierConfig(t, k.Pub))
			ex := v.Explain(context.Background(), tt.giveToken, token.Expect{AnyTask: true})
			fixture.WantReason(t, ex.Err, tt.wantReason)
			var names []string
			for i, s := range ex.Steps {
				names = append(names, s.Name)
				last := i == len(ex.Steps)-1
				if (s.Err != nil) != (last && tt.wantReason != "") {
					t.Errorf("step %s: err = %v", s.Name, s.Err)
				}
			}
			if strings.Join(names, ",") != strings.Join(tt.wantSteps, ",") {
				t.Errorf("steps = %v, want %v", names, tt.wantSteps)
			}
			if (ex.Token != nil) != (tt.wantReason == "") {
				t.Errorf("Token = %v", ex.Token)
			}
		})
	}
}

func TestNewVerifier_config(t *testing.T) {
	k := fixture.NewKey(t, token.EdDSA)
	tests := []struct {
		name       string
		giveConfig func(cfg *token.VerifierConfig)
		wantErrs   []string // the config fields the error must name
	}{
		{name: "ok/defaults", giveConfig: func(*token.VerifierConfig) {}},
		{name: "ok/max_leeway", giveConfig: func(c *token.VerifierConfig) { c.Leeway = token.MaxLeeway }},
		{
			name:       "fail/empty_config_lists_every_problem",
			giveConfig: func(c *token.VerifierConfig) { *c = token.VerifierConfig{} },
			wantErrs:   []string{"Issuers", "Audience", "Replay"},
		},
		{name: "fail/empty_issuer", giveConfig: func(c *token.VerifierConfig) {
			c.Issuers = append(c.Issuers, token.TrustedIssuer{Keys: c.Issuers[0].Keys})
		}, wantErrs: []string{"Issuers[1].Issuer"}},
		{name: "fail/issuer_without_keys", giveConfig: func(c *token.VerifierConfig) { c.Issuers[0].Keys = nil }, wantErrs: []string{"Issuers[0].Keys"}},
		{name: "fail/issuer_twice", giveConfig: func(c *token.VerifierConfig) { c.Issuers = append(c.Issuers, c.Issuers[0]) }, wantErrs: []string{"Issuers[1]"}},
		{name: "fail/leeway_above_max", giveConfig: func(c *token.VerifierConfig) { c.Leeway = token.MaxLeeway + time.Nanosecond }, wantErrs: []string{"Leeway"}},
		{name: "fail/negative_leeway", giveConfig: func(c *token.VerifierConfig) { c.Leeway = -time.Second }, wantErrs: []string{"Leeway"}},
		{name: "fail/negative_lifetime", giveConfig: func(c *token.VerifierConfig) { c.MaxLifetime = -time.Second }, wantErrs: []string{"MaxLifetime"}},
		{name: "fail/huge_token_size", giveConfig: func(c *token.VerifierConfig) { c.MaxTokenSize = 1 << 20 }, wantErrs: []string{"MaxTokenSize"}},
		{name: "fail/hs256_not_allowed", giveConfig: func(c *token.VerifierConfig) { c.Algorithms = []token.Algorithm{"HS256"} }, wantErrs: []string{"HS256"}},
		{name: "fail/none_not_allowed", giveConfig: func(c *token.VerifierConfig) { c.Algorithms = []token.Algorithm{token.EdDSA, "none"} }, wantErrs: []string{"none"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := fixture.VerifierConfig(t, k.Pub)
			tt.giveConfig(&cfg)
			v, err := token.NewVerifier(cfg)
			if len(tt.wantErrs) == 0 {
				if err != nil || v == nil {
					t.Fatalf("NewVerifier: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("NewVerifier accepted an invalid config")
			}
			joined := fixture.JoinedErrors(err)
			if len(joined) != len(tt.wantErrs) {
				t.Errorf("got %d problems (%v), want %d", len(joined), err, len(tt.wantErrs))
			}
			for _, field := range tt.wantErrs {
				if !strings.Contains(err.Error(), field) {
					t.Errorf("error %q does not name %s", err, field)
				}
			}
		})
	}
}
