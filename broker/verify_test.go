package broker_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/broker"
)

const testJTI = "jti-0001"

// verifyCase is one row of TestVerify. The token is k.sign(header, claims)
// after giveHeader and giveClaims mutate the defaults, unless giveToken
// builds it whole. k is the key under test; other is a trusted key of the
// other algorithm.
type verifyCase struct {
	name       string
	giveHeader func(h map[string]any)
	giveClaims func(c map[string]any)
	giveToken  func(t testing.TB, k, other testKey) string
	giveConfig func(t testing.TB, cfg *broker.VerifierConfig)
	giveExpect broker.Expect
	wantReason broker.Reason
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
		c["iat"] = testNow.Add(iat).Unix()
		c["exp"] = testNow.Add(exp).Unix()
		delete(c, "nbf")
		if nbf != nil {
			c["nbf"] = testNow.Add(*nbf).Unix()
		}
	}
}

// rawClaims replaces the payload with raw JSON, to send what a Go map
// cannot hold (duplicate or case-variant names, odd number spellings).
func rawClaims(payload string) func(t testing.TB, k, other testKey) string {
	return func(t testing.TB, k, _ testKey) string {
		return k.signRaw(t, mustJSON(t, k.header()), payload)
	}
}

// rawClaimsWith is rawClaims with "EXTRA" in payload replaced by the valid
// claims' JSON members, so a case adds members beside a valid set.
func rawClaimsWith(payload string) func(t testing.TB, k, other testKey) string {
	return func(t testing.TB, k, _ testKey) string {
		valid := mustJSON(t, validClaims(testJTI))
		return k.signRaw(t, mustJSON(t, k.header()), strings.Replace(payload, "EXTRA", valid[1:len(valid)-1], 1))
	}
}

func validToken(t testing.TB, k testKey) string {
	t.Helper()
	return k.sign(t, k.header(), validClaims(testJTI))
}

// sizedToken returns a validly signed token of exactly size bytes, padded
// with an unknown claim and header whitespace (a base64url segment length
// is never 1 mod 4, so the payload alone cannot reach every size).
func sizedToken(t testing.TB, k testKey, size int) string {
	t.Helper()
	hdr := mustJSON(t, k.header())
	claims := validClaims(testJTI)
	claims["pad"] = ""
	base := len(mustJSON(t, claims))
	const sigLen = 86 // 64 signature bytes for both EdDSA and ES256
	for spaces := 0; spaces < 4; spaces++ {
		h := b64.EncodedLen(len(hdr) + spaces)
		for fill := 0; h+b64.EncodedLen(base+fill)+sigLen+2 <= size; fill++ {
			if h+b64.EncodedLen(base+fill)+sigLen+2 == size {
				claims["pad"] = strings.Repeat("x", fill)
				tok := k.signRaw(t, "{"+strings.Repeat(" ", spaces)+hdr[1:], mustJSON(t, claims))
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
	task := broker.Task{ID: "transfer-42", Action: "approve"}
	return []verifyCase{
		{name: "ok/fresh_token"},
		{name: "ok/typ_with_application_prefix", giveHeader: func(h map[string]any) { h["typ"] = "application/handoff+jwt" }},
		{name: "ok/typ_other_case", giveHeader: func(h map[string]any) { h["typ"] = "Handoff+JWT" }},
		{name: "ok/no_nbf", giveClaims: dropClaim("nbf")},
		{name: "ok/with_actor", giveClaims: setClaim("act", map[string]any{"sub": "payments-service"})},
		{name: "ok/unknown_claim_ignored", giveClaims: setClaim("scope", "everything")},
		{name: "ok/expected_task", giveExpect: broker.Expect{Task: &task}},
		{name: "ok/task_with_params", giveClaims: setClaim("task", map[string]any{"id": "transfer-42", "action": "approve",
			"params": map[string]string{"amount": "10"}, "params_digest": broker.DigestParams(map[string]string{"amount": "10"})})},
		{name: "ok/expired_within_leeway", giveClaims: setTimes(-89*time.Second, -29*time.Second, nil)},
		{name: "ok/issued_in_future_within_leeway", giveClaims: setTimes(29*time.Second, 89*time.Second, nil)},
		{name: "ok/lifetime_at_max", giveClaims: setTimes(-10*time.Second, 590*time.Second, nil)},
		{name: "ok/at_size_limit", giveToken: func(t testing.TB, k, _ testKey) string { return sizedToken(t, k, broker.DefaultMaxTokenSize) }},

		{name: "fail/too_large", wantReason: broker.ReasonTooLarge,
			giveToken: func(t testing.TB, k, _ testKey) string { return sizedToken(t, k, broker.DefaultMaxTokenSize+1) }},
		{name: "fail/too_large_custom_limit", wantReason: broker.ReasonTooLarge,
			giveConfig: func(_ testing.TB, cfg *broker.VerifierConfig) { cfg.MaxTokenSize = 100 }},

		{name: "fail/malformed_empty", wantReason: broker.ReasonMalformed,
			giveToken: func(testing.TB, testKey, testKey) string { return "" }},
		{name: "fail/malformed_two_segments", wantReason: broker.ReasonMalformed,
			giveToken: func(t testing.TB, k, _ testKey) string {
				tok := validToken(t, k)
				return tok[:strings.LastIndexByte(tok, '.')]
			}},
		{name: "fail/malformed_empty_signature", wantReason: broker.ReasonMalformed,
			giveToken: func(t testing.TB, k, _ testKey) string {
				tok := validToken(t, k)
				return tok[:strings.LastIndexByte(tok, '.')+1]
			}},
		{name: "fail/malformed_std_base64_alphabet", wantReason: broker.ReasonMalformed,
			giveToken: func(t testing.TB, k, _ testKey) string {
				return strings.NewReplacer("-", "+", "_", "/").Replace(validToken(t, k)) + "+/"
			}},
		{name: "fail/malformed_header_not_json", wantReason: broker.ReasonMalformed,
			giveToken: func(t testing.TB, k, _ testKey) string {
				return k.signRaw(t, "alg=EdDSA", mustJSON(t, validClaims(testJTI)))
			}},
		{name: "fail/malformed_payload_not_json", wantReason: broker.ReasonMalformed,
			giveToken: rawClaims(`iss=https://issuer.test`)},
		{name: "fail/malformed_payload_array", wantReason: broker.ReasonMalformed,
			giveToken: rawClaims(`[{"iss":"https://issuer.test"}]`)},
		{name: "fail/malformed_trailing_data", wantReason: broker.ReasonMalformed,
			giveToken: rawClaimsWith(`{EXTRA} {}`)},

		{name: "fail/unsupported_alg_hs256", wantReason: broker.ReasonUnsupportedAlg,
			giveHeader: func(h map[string]any) { h["alg"] = "HS256" }},
		{name: "fail/unsupported_alg_rs256", wantReason: broker.ReasonUnsupportedAlg,
			giveHeader: func(h map[string]any) { h["alg"] = "RS256" }},
		{name: "fail/unsupported_alg_es384", wantReason: broker.ReasonUnsupportedAlg,
			giveHeader: func(h map[string]any) { h["alg"] = "ES384" }},
		{name: "fail/unsupported_alg_lowercase", wantReason: broker.ReasonUnsupportedAlg,
			giveHeader: func(h map[string]any) { h["alg"] = strings.ToLower(h["alg"].(string)) }},
		{name: "fail/unsupported_alg_missing", wantReason: broker.ReasonUnsupportedAlg,
			giveHeader: func(h map[string]any) { delete(h, "alg") }},
		{name: "fail/unsupported_alg_not_key_alg", wantReason: broker.ReasonUnsupportedAlg,
			giveToken: func(t testing.TB, k, other testKey) string {
				h := k.header()
				h["alg"] = string(other.alg)
				return other.sign(t, h, validClaims(testJTI))
			}},
		{name: "fail/unsupported_alg_narrowed_allowlist", wantReason: broker.ReasonUnsupportedAlg,
			giveHeader: func(h map[string]any) { h["alg"] = string(broker.EdDSA) },
			giveConfig: func(_ testing.TB, cfg *broker.VerifierConfig) { cfg.Algorithms = []broker.Algorithm{broker.ES256} }},

		{name: "fail/bad_type_jwt", wantReason: broker.ReasonBadType, giveHeader: func(h map[string]any) { h["typ"] = "JWT" }},
		{name: "fail/bad_type_access_token", wantReason: broker.ReasonBadType, giveHeader: func(h map[string]any) { h["typ"] = "at+jwt" }},
		{name: "fail/bad_type_missing", wantReason: broker.ReasonBadType, giveHeader: func(h map[string]any) { delete(h, "typ") }},
		{name: "fail/malformed_typ_not_string", wantReason: broker.ReasonMalformed, giveHeader: func(h map[string]any) { h["typ"] = 1 }},

		{name: "fail/bad_header_crit", wantReason: broker.ReasonBadHeader, giveHeader: func(h map[string]any) { h["crit"] = []string{"exp"}; h["exp"] = 1 }},
		{name: "fail/bad_header_jku", wantReason: broker.ReasonBadHeader, giveHeader: func(h map[string]any) { h["jku"] = "https://attacker.test/jwks" }},
		{name: "fail/bad_header_x5u", wantReason: broker.ReasonBadHeader, giveHeader: func(h map[string]any) { h["x5u"] = "https://attacker.test/cert" }},
		{name: "fail/bad_header_x5c", wantReason: broker.ReasonBadHeader, giveHeader: func(h map[string]any) { h["x5c"] = []string{"MIIB"} }},
		{name: "fail/bad_header_cty", wantReason: broker.ReasonBadHeader, giveHeader: func(h map[string]any) { h["cty"] = "JWT" }},
		{name: "fail/bad_header_b64", wantReason: broker.ReasonBadHeader, giveHeader: func(h map[string]any) { h["b64"] = false }},
		{name: "fail/bad_header_missing_kid", wantReason: broker.ReasonBadHeader, giveHeader: func(h map[string]any) { delete(h, "kid") }},
		{name: "fail/bad_header_empty_kid", wantReason: broker.ReasonBadHeader, giveHeader: func(h map[string]any) { h["kid"] = "" }},
		{name: "fail/bad_header_long_kid", wantReason: broker.ReasonBadHeader, giveHeader: func(h map[string]any) { h["kid"] = strings.Repeat("k", 129) }},

		{name: "fail/unknown_key", wantReason: broker.ReasonUnknownKey, giveHeader: func(h map[string]any) { h["kid"] = "no-such-key" }},
		{name: "fail/unknown_key_path_traversal", wantReason: broker.ReasonUnknownKey, giveHeader: func(h map[string]any) { h["kid"] = "../../../etc/passwd" }},

		{name: "fail/bad_signature_flipped_bit", wantReason: broker.ReasonBadSignature,
			giveToken: func(t testing.TB, k, _ testKey) string {
				tok := []byte(validToken(t, k))
				i := len(tok) - 10
				tok[i] = map[bool]byte{true: 'B', false: 'A'}[tok[i] == 'A']
				return string(tok)
			}},
		{name: "fail/bad_signature_other_key_same_kid", wantReason: broker.ReasonBadSignature,
			giveToken: func(t testing.TB, k, _ testKey) string {
				return newTestKey(t, k.alg).sign(t, k.header(), validClaims(testJTI))
			}},
		{name: "fail/bad_signature_swapped_payload", wantReason: broker.ReasonBadSignature,
			giveToken: func(t testing.TB, k, _ testKey) string {
				a := strings.Split(validToken(t, k), ".")
				c := validClaims(testJTI)
				c["sub"] = "mallory"
				b := strings.Split(k.sign(t, k.header(), c), ".")
				return a[0] + "." + b[1] + "." + a[2]
			}},
		{name: "fail/bad_signature_truncated", wantReason: broker.ReasonBadSignature,
			giveToken: func(t testing.TB, k, _ testKey) string {
				tok := validToken(t, k)
				return tok[:len(tok)-3]
			}},

		{name: "fail/missing_claim_iss", wantReason: broker.ReasonMissingClaim, giveClaims: dropClaim("iss")},
		{name: "fail/missing_claim_sub", wantReason: broker.ReasonMissingClaim, giveClaims: dropClaim("sub")},
		{name: "fail/missing_claim_aud", wantReason: broker.ReasonMissingClaim, giveClaims: dropClaim("aud")},
		{name: "fail/missing_claim_exp", wantReason: broker.ReasonMissingClaim, giveClaims: dropClaim("exp")},
		{name: "fail/missing_claim_iat", wantReason: broker.ReasonMissingClaim, giveClaims: dropClaim("iat")},
		{name: "fail/missing_claim_jti", wantReason: broker.ReasonMissingClaim, giveClaims: dropClaim("jti")},
		{name: "fail/missing_claim_task", wantReason: broker.ReasonMissingClaim, giveClaims: dropClaim("task")},
		{name: "fail/invalid_claim_exp_null", wantReason: broker.ReasonInvalidClaim, giveClaims: setClaim("exp", nil)},

		{name: "fail/invalid_claim_exp_string", wantReason: broker.ReasonInvalidClaim, giveClaims: setClaim("exp", "1772366450")},
		{name: "fail/invalid_claim_iat_float", wantReason: broker.ReasonInvalidClaim, giveClaims: setClaim("iat", 1772366390.5)},
		{name: "fail/invalid_claim_nbf_string", wantReason: broker.ReasonInvalidClaim, giveClaims: setClaim("nbf", "now")},
		{name: "fail/invalid_claim_exp_before_iat", wantReason: broker.ReasonInvalidClaim, giveClaims: setTimes(-10*time.Second, -11*time.Second, nil)},
		{name: "fail/invalid_claim_iss_number", wantReason: broker.ReasonInvalidClaim, giveClaims: setClaim("iss", 7)},
		{name: "fail/invalid_claim_sub_empty", wantReason: broker.ReasonInvalidClaim, giveClaims: setClaim("sub", "")},
		{name: "fail/invalid_claim_jti_empty", wantReason: broker.ReasonInvalidClaim, giveClaims: setClaim("jti", "")},
		{name: "fail/invalid_claim_jti_too_long", wantReason: broker.ReasonInvalidClaim, giveClaims: setClaim("jti", strings.Repeat("j", 129))},
		{name: "fail/invalid_claim_task_without_action", wantReason: broker.ReasonInvalidClaim, giveClaims: setClaim("task", map[string]any{"id": "transfer-42"})},
		{name: "fail/invalid_claim_task_id_number", wantReason: broker.ReasonInvalidClaim, giveClaims: setClaim("task", map[string]any{"id": 42, "action": "approve"})},
		{name: "fail/invalid_claim_params_digest_mismatch", wantReason: broker.ReasonInvalidClaim,
			giveClaims: setClaim("task", map[string]any{"id": "transfer-42", "action": "approve",
				"params": map[string]string{"amount": "1000000"}, "params_digest": broker.DigestParams(map[string]string{"amount": "10"})})},
		{name: "fail/invalid_claim_params_without_digest", wantReason: broker.ReasonInvalidClaim,
			giveClaims: setClaim("task", map[string]any{"id": "transfer-42", "action": "approve", "params": map[string]string{"amount": "10"}})},
		{name: "fail/invalid_claim_actor_without_sub", wantReason: broker.ReasonInvalidClaim, giveClaims: setClaim("act", map[string]any{})},

		{name: "fail/wrong_issuer", wantReason: broker.ReasonWrongIssuer, giveClaims: setClaim("iss", "https://attacker.test")},
		{name: "fail/wrong_issuer_trailing_slash", wantReason: broker.ReasonWrongIssuer, giveClaims: setClaim("iss", testIssuer+"/")},
		{name: "fail/wrong_issuer_empty", wantReason: broker.ReasonWrongIssuer, giveClaims: setClaim("iss", "")},

		{name: "fail/wrong_audience", wantReason: broker.ReasonWrongAudience, giveClaims: setClaim("aud", "https://other.test")},
		{name: "fail/wrong_audience_array_of_one", wantReason: broker.ReasonWrongAudience, giveClaims: setClaim("aud", []string{testAudience})},
		{name: "fail/wrong_audience_number", wantReason: broker.ReasonWrongAudience, giveClaims: setClaim("aud", 1)},

		{name: "fail/expired", wantReason: broker.ReasonExpired, giveClaims: setTimes(-2*time.Hour, -time.Hour-59*time.Minute, nil)},
		{name: "fail/expired_at_leeway_edge", wantReason: broker.ReasonExpired, giveClaims: setTimes(-90*time.Second, -30*time.Second, nil)},
		{name: "fail/expired_zero_leeway", wantReason: broker.ReasonExpired, giveClaims: setTimes(-60*time.Second, -time.Second, nil),
			giveConfig: func(_ testing.TB, cfg *broker.VerifierConfig) { cfg.Leeway = time.Nanosecond }},

		{name: "fail/not_yet_valid", wantReason: broker.ReasonNotYetValid, giveClaims: setTimes(-10*time.Second, 50*time.Second, durationPtr(31*time.Second))},
		{name: "fail/issued_in_future", wantReason: broker.ReasonIssuedInFuture, giveClaims: setTimes(31*time.Second, 91*time.Second, nil)},

		{name: "fail/lifetime_too_long", wantReason: broker.ReasonLifetimeTooLong, giveClaims: setTimes(-10*time.Second, 591*time.Second, nil)},
		{name: "fail/lifetime_too_long_custom", wantReason: broker.ReasonLifetimeTooLong,
			giveConfig: func(_ testing.TB, cfg *broker.VerifierConfig) { cfg.MaxLifetime = 59 * time.Second }},

		{name: "fail/task_mismatch_id", wantReason: broker.ReasonTaskMismatch,
			giveExpect: broker.Expect{Task: &broker.Task{ID: "transfer-43", Action: "approve"}}},
		{name: "fail/task_mismatch_action", wantReason: broker.ReasonTaskMismatch,
			giveExpect: broker.Expect{Task: &broker.Task{ID: "transfer-42", Action: "cancel"}}},
		{name: "fail/task_mismatch_params", wantReason: broker.ReasonTaskMismatch,
			giveExpect: broker.Expect{Task: &broker.Task{ID: "transfer-42", Action: "approve", ParamsDigest: broker.DigestParams(map[string]string{"amount": "10"})}}},

		{name: "fail/revoked", wantReason: broker.ReasonRevoked,
			giveConfig: func(_ testing.TB, cfg *broker.VerifierConfig) {
				cfg.Revocation = revocationStub{err: &broker.Error{Reason: broker.ReasonRevoked}}
			}},
		{name: "ok/not_revoked",
			giveConfig: func(_ testing.TB, cfg *broker.VerifierConfig) { cfg.Revocation = revocationStub{} }},

		{name: "fail/issued_before_restart", wantReason: broker.ReasonIssuedBeforeRestart,
			giveConfig: func(t testing.TB, cfg *broker.VerifierConfig) {
				cfg.Replay = newTestStore(t, newClock(testNow.Add(-5*time.Second)), broker.MemoryReplayConfig{})
			}},

		{name: "fail/replayed", wantReason: broker.ReasonReplayed,
			giveConfig: func(t testing.TB, cfg *broker.VerifierConfig) {
				if err := cfg.Replay.Consume(context.Background(), broker.ReplayKey(testIssuer, testJTI), testNow.Add(time.Hour)); err != nil {
					t.Fatal(err)
				}
			}},

		{name: "fail/unavailable_key_source", wantReason: broker.ReasonUnavailable,
			giveConfig: func(_ testing.TB, cfg *broker.VerifierConfig) { cfg.Keys = failingKeys{} }},
		{name: "fail/unavailable_replay_store", wantReason: broker.ReasonUnavailable,
			giveConfig: func(_ testing.TB, cfg *broker.VerifierConfig) { cfg.Replay = failingStore{} }},
		{name: "fail/unavailable_revocation", wantReason: broker.ReasonUnavailable,
			giveConfig: func(_ testing.TB, cfg *broker.VerifierConfig) {
				cfg.Revocation = revocationStub{err: errors.New("revocation list unreachable")}
			}},
	}
}

func TestVerify(t *testing.T) {
	covered := make(map[broker.Reason]bool)
	for _, alg := range broker.SupportedAlgorithms {
		k := newTestKey(t, alg)
		other := newTestKey(t, otherAlg(alg))
		for _, tt := range verifyCases() {
			t.Run(string(alg)+"/"+tt.name, func(t *testing.T) {
				cfg := testVerifierConfig(t, k.pub, other.pub)
				if tt.giveConfig != nil {
					tt.giveConfig(t, &cfg)
				}
				v := newTestVerifier(t, cfg)
				tok := buildToken(t, tt, k, other)

				got, err := v.Verify(context.Background(), tok, tt.giveExpect)
				wantReason(t, err, tt.wantReason)
				covered[tt.wantReason] = true
				if tt.wantReason != "" {
					if got != nil {
						t.Fatal("rejected token returned claims")
					}
					return
				}
				c := got.Claims()
				if c.Issuer != testIssuer || c.Audience != testAudience || c.ID != testJTI || c.Subject != "alice" {
					t.Errorf("claims = %+v", c)
				}
				if c.KeyID != k.pub.KeyID || c.Algorithm != alg {
					t.Errorf("key = %q %q, want %q %q", c.KeyID, c.Algorithm, k.pub.KeyID, alg)
				}
				if c.Task.ID != "transfer-42" || c.Task.Action != "approve" {
					t.Errorf("task = %+v", c.Task)
				}
			})
		}
	}
	for _, r := range broker.Reasons {
		if !covered[r] {
			t.Errorf("no case covers reason %q", r)
		}
	}
}

func buildToken(t testing.TB, tt verifyCase, k, other testKey) string {
	t.Helper()
	if tt.giveToken != nil {
		return tt.giveToken(t, k, other)
	}
	h, c := k.header(), validClaims(testJTI)
	if tt.giveHeader != nil {
		tt.giveHeader(h)
	}
	if tt.giveClaims != nil {
		tt.giveClaims(c)
	}
	return k.sign(t, h, c)
}

func otherAlg(a broker.Algorithm) broker.Algorithm {
	if a == broker.EdDSA {
		return broker.ES256
	}
	return broker.EdDSA
}

// TestVerify_claims checks that a verified token's claims come back intact,
// times included.
func TestVerify_claims(t *testing.T) {
	k := newTestKey(t, broker.EdDSA)
	v := newTestVerifier(t, testVerifierConfig(t, k.pub))
	c := validClaims(testJTI)
	c["act"] = map[string]any{"sub": "payments-service"}
	c["task"] = map[string]any{"id": "transfer-42", "action": "approve", "params_digest": "sha256:abc"}

	got, err := v.Verify(context.Background(), k.sign(t, k.header(), c), broker.Expect{})
	if err != nil {
		t.Fatal(err)
	}
	want := broker.Claims{
		Issuer: testIssuer, Subject: "alice", Audience: testAudience, ID: testJTI,
		IssuedAt:  time.Unix(c["iat"].(int64), 0),
		NotBefore: time.Unix(c["nbf"].(int64), 0),
		ExpiresAt: time.Unix(c["exp"].(int64), 0),
		Task:      broker.Task{ID: "transfer-42", Action: "approve", ParamsDigest: "sha256:abc"},
		KeyID:     k.pub.KeyID, Algorithm: broker.EdDSA,
	}
	gc := got.Claims()
	if gc.Actor == nil || gc.Actor.Subject != "payments-service" {
		t.Errorf("actor = %+v", gc.Actor)
	}
	if gc.Task.ID != want.Task.ID || gc.Task.Action != want.Task.Action || gc.Task.ParamsDigest != want.Task.ParamsDigest || gc.Task.Params != nil {
		t.Errorf("task = %+v, want %+v", gc.Task, want.Task)
	}
	gc.Actor, gc.Task, want.Task = nil, broker.Task{}, broker.Task{}
	if !reflect.DeepEqual(gc, want) {
		t.Errorf("claims =\n%+v\nwant\n%+v", gc, want)
	}
}

func TestExplain(t *testing.T) {
	k := newTestKey(t, broker.EdDSA)
	tests := []struct {
		name       string
		giveToken  string
		wantSteps  []string
		wantReason broker.Reason
	}{
		{
			name:      "ok/every_step_but_replay",
			giveToken: validToken(t, k),
			wantSteps: []string{broker.StepSize, broker.StepStructure, broker.StepHeader, broker.StepKey, broker.StepSignature, broker.StepClaims, broker.StepTask},
		},
		{
			name: "fail/stops_at_failing_step",
			giveToken: func() string {
				h := k.header()
				h["typ"] = "JWT"
				return k.sign(t, h, validClaims(testJTI))
			}(),
			wantSteps:  []string{broker.StepSize, broker.StepStructure, broker.StepHeader},
			wantReason: broker.ReasonBadType,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newTestVerifier(t, testVerifierConfig(t, k.pub))
			ex := v.Explain(context.Background(), tt.giveToken, broker.Expect{})
			wantReason(t, ex.Err, tt.wantReason)
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
	k := newTestKey(t, broker.EdDSA)
	tests := []struct {
		name       string
		giveConfig func(cfg *broker.VerifierConfig)
		wantErrs   []string // the config fields the error must name
	}{
		{name: "ok/defaults", giveConfig: func(*broker.VerifierConfig) {}},
		{name: "ok/max_leeway", giveConfig: func(c *broker.VerifierConfig) { c.Leeway = broker.MaxLeeway }},
		{
			name:       "fail/empty_config_lists_every_problem",
			giveConfig: func(c *broker.VerifierConfig) { *c = broker.VerifierConfig{} },
			wantErrs:   []string{"Issuers", "Audience", "Keys", "Replay"},
		},
		{name: "fail/empty_issuer", giveConfig: func(c *broker.VerifierConfig) { c.Issuers = []string{testIssuer, ""} }, wantErrs: []string{"Issuers"}},
		{name: "fail/leeway_above_max", giveConfig: func(c *broker.VerifierConfig) { c.Leeway = broker.MaxLeeway + time.Nanosecond }, wantErrs: []string{"Leeway"}},
		{name: "fail/negative_leeway", giveConfig: func(c *broker.VerifierConfig) { c.Leeway = -time.Second }, wantErrs: []string{"Leeway"}},
		{name: "fail/negative_lifetime", giveConfig: func(c *broker.VerifierConfig) { c.MaxLifetime = -time.Second }, wantErrs: []string{"MaxLifetime"}},
		{name: "fail/huge_token_size", giveConfig: func(c *broker.VerifierConfig) { c.MaxTokenSize = 1 << 20 }, wantErrs: []string{"MaxTokenSize"}},
		{name: "fail/hs256_not_allowed", giveConfig: func(c *broker.VerifierConfig) { c.Algorithms = []broker.Algorithm{"HS256"} }, wantErrs: []string{"HS256"}},
		{name: "fail/none_not_allowed", giveConfig: func(c *broker.VerifierConfig) { c.Algorithms = []broker.Algorithm{broker.EdDSA, "none"} }, wantErrs: []string{"none"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testVerifierConfig(t, k.pub)
			tt.giveConfig(&cfg)
			v, err := broker.NewVerifier(cfg)
			if len(tt.wantErrs) == 0 {
				if err != nil || v == nil {
					t.Fatalf("NewVerifier: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("NewVerifier accepted an invalid config")
			}
			joined := joinedErrors(err)
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

// joinedErrors returns the errors joined (errors.Join) inside err.
func joinedErrors(err error) []error {
	for err != nil {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			return j.Unwrap()
		}
		err = errors.Unwrap(err)
	}
	return nil
}
