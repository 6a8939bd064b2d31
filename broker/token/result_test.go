package token_test

import (
	"context"
	"testing"

	"github.com/handoffbroker/handoff/broker/brokertest"
	"github.com/handoffbroker/handoff/broker/internal/fixture"
	"github.com/handoffbroker/handoff/broker/token"
)

// resultRequest reports alice's approval of transfer-42 back to Audience.
func resultRequest(o token.Outcome) token.ResultRequest {
	return token.ResultRequest{
		Subject: "alice", Audience: fixture.Audience, Outcome: o,
		Task: token.Task{ID: "transfer-42", Action: "approve", Params: map[string]string{"amount": "10"}},
	}
}

// newResultPair returns a minter for fixture.Issuer and the handoff and
// result verifiers that trust its keys.
func newResultPair(t *testing.T) (m *token.Minter, handoff, result *token.Verifier) {
	t.Helper()
	ring := fixture.EphemeralRing(t, token.EdDSA)
	m = fixture.NewMinter(t, ring, brokertest.NewClock(fixture.Now))
	cfg := fixture.VerifierConfig(t, ring.PublishedKeys()...)
	handoff = fixture.NewVerifier(t, cfg)
	result, err := token.NewResultVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m, handoff, result
}

func TestResultToken(t *testing.T) {
	m, handoffV, resultV := newResultPair(t)
	want := token.Task{ID: "transfer-42", Action: "approve", ParamsDigest: token.DigestParams(map[string]string{"amount": "10"})}
	for _, o := range []token.Outcome{token.OutcomeApproved, token.OutcomeCancelled} {
		t.Run("ok/"+string(o), func(t *testing.T) {
			r, err := m.MintResult(resultRequest(o))
			if err != nil {
				t.Fatal(err)
			}
			v, err := resultV.Verify(context.Background(), r.Token, token.Expect{Task: &want, Subject: "alice"})
			if err != nil {
				t.Fatal(err)
			}
			c := v.Claims()
			if c.Outcome != o || c.Subject != "alice" || c.Task.ID != "transfer-42" || len(c.Task.Params) != 0 {
				t.Errorf("claims = %+v", c)
			}
		})
	}
	t.Run("fail/result_as_handoff", func(t *testing.T) {
		r := fixture.Must(m.MintResult(resultRequest(token.OutcomeApproved)))
		_, err := handoffV.Verify(context.Background(), r.Token, token.Expect{AnyTask: true})
		fixture.WantReason(t, err, token.ReasonBadType)
	})
	t.Run("fail/handoff_as_result", func(t *testing.T) {
		h := fixture.Must(m.Mint(fixture.MintRequest()))
		_, err := resultV.Verify(context.Background(), h.Token, token.Expect{AnyTask: true})
		fixture.WantReason(t, err, token.ReasonBadType)
	})
	t.Run("fail/replayed", func(t *testing.T) {
		r := fixture.Must(m.MintResult(resultRequest(token.OutcomeApproved)))
		if _, err := resultV.Verify(context.Background(), r.Token, token.Expect{Task: &want}); err != nil {
			t.Fatal(err)
		}
		_, err := resultV.Verify(context.Background(), r.Token, token.Expect{Task: &want})
		fixture.WantReason(t, err, token.ReasonReplayed)
	})
	t.Run("fail/wrong_subject_not_consumed", func(t *testing.T) {
		r := fixture.Must(m.MintResult(resultRequest(token.OutcomeApproved)))
		_, err := resultV.Verify(context.Background(), r.Token, token.Expect{Task: &want, Subject: "bob"})
		fixture.WantReason(t, err, token.ReasonWrongSubject)
		if _, err := resultV.Verify(context.Background(), r.Token, token.Expect{Task: &want, Subject: "alice"}); err != nil {
			t.Fatalf("after a wrong-subject refusal: %v", err)
		}
	})
	t.Run("fail/wrong_audience", func(t *testing.T) {
		req := resultRequest(token.OutcomeApproved)
		req.Audience = "https://elsewhere.test"
		r := fixture.Must(m.MintResult(req))
		_, err := resultV.Verify(context.Background(), r.Token, token.Expect{Task: &want})
		fixture.WantReason(t, err, token.ReasonWrongAudience)
	})
	t.Run("fail/other_key", func(t *testing.T) {
		other := fixture.NewMinter(t, fixture.EphemeralRing(t, token.EdDSA), brokertest.NewClock(fixture.Now))
		r := fixture.Must(other.MintResult(resultRequest(token.OutcomeApproved)))
		_, err := resultV.Verify(context.Background(), r.Token, token.Expect{Task: &want})
		fixture.WantReason(t, err, token.ReasonUnknownKey)
	})
}

// TestResultClaims covers the "outcome" claim a result verifier requires,
// on tokens signed by hand.
func TestResultClaims(t *testing.T) {
	k := fixture.NewKey(t, token.EdDSA)
	cfg := fixture.VerifierConfig(t, k.Pub)
	v, err := token.NewResultVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	header := map[string]any{"alg": "EdDSA", "kid": k.Pub.KeyID, "typ": token.ResultTokenType}
	for _, tt := range []struct {
		name       string
		giveClaims func(map[string]any)
		wantReason token.Reason
	}{
		{name: "ok/approved", giveClaims: setClaim("outcome", "approved")},
		{name: "fail/missing_outcome", giveClaims: dropClaim("outcome"), wantReason: token.ReasonMissingClaim},
		{name: "fail/unknown_outcome", giveClaims: setClaim("outcome", "done"), wantReason: token.ReasonInvalidClaim},
		{name: "fail/outcome_not_string", giveClaims: setClaim("outcome", true), wantReason: token.ReasonInvalidClaim},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := fixture.ValidClaims(tt.name)
			c["outcome"] = "cancelled"
			tt.giveClaims(c)
			_, err := v.Verify(context.Background(), k.Sign(t, header, c), token.Expect{AnyTask: true})
			fixture.WantReason(t, err, tt.wantReason)
		})
	}
}

func TestMintResultRefuses(t *testing.T) {
	m, _, _ := newResultPair(t)
	for _, tt := range []struct {
		name string
		give func(*token.ResultRequest)
	}{
		{"fail/no_outcome", func(r *token.ResultRequest) { r.Outcome = "" }},
		{"fail/unknown_outcome", func(r *token.ResultRequest) { r.Outcome = "done" }},
		{"fail/no_subject", func(r *token.ResultRequest) { r.Subject = "" }},
		{"fail/no_task", func(r *token.ResultRequest) { r.Task = token.Task{} }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := resultRequest(token.OutcomeApproved)
			tt.give(&req)
			if _, err := m.MintResult(req); err == nil {
				t.Fatal("MintResult accepted the request")
			}
		})
	}
}
