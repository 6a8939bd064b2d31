package token_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/handoffbroker/handoff/broker/keys"
	"github.com/handoffbroker/handoff/broker/token"
)

// ExampleMinter_Mint mints a handoff token on the issuer, for one task at
// one relying service.
func ExampleMinter_Mint() {
	ring, err := keys.NewEphemeral(token.EdDSA) // a server uses keys.Open
	if err != nil {
		log.Fatal(err)
	}
	minter, err := token.NewMinter(token.MinterConfig{Issuer: "https://bank.example", Keys: ring})
	if err != nil {
		log.Fatal(err)
	}
	minted, err := minter.Mint(token.MintRequest{
		Subject:  "alice",
		Audience: "https://payments.example",
		Task: token.Task{
			ID:     "transfer-42",
			Action: "approve",
			Params: map[string]string{"amount": "10.00", "currency": "EUR"},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	// minted.Token is a bearer credential: hand it to the browser, never
	// log it.
	fmt.Println("algorithm:", minted.Algorithm)
	fmt.Println("lifetime:", minted.ExpiresAt.Sub(minted.IssuedAt))
	fmt.Println("compact JWS segments:", strings.Count(minted.Token, ".")+1)
	// Output:
	// algorithm: EdDSA
	// lifetime: 1m0s
	// compact JWS segments: 3
}

// ExampleVerifier_Verify verifies a token on the relying service against the
// issuer's published JWK Set, then shows that the token works only once.
func ExampleVerifier_Verify() {
	// Pinned clocks keep the example's output stable; servers leave Now
	// unset. The relying service started before the token was issued: a
	// memory replay store refuses tokens issued before it started.
	started := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	issued := started.Add(time.Hour)
	received := issued.Add(2 * time.Second)

	// On the issuer.
	issuerKeys, err := keys.NewEphemeral(token.EdDSA)
	if err != nil {
		log.Fatal(err)
	}
	minter, err := token.NewMinter(token.MinterConfig{
		Issuer: "https://bank.example",
		Keys:   issuerKeys,
		Now:    func() time.Time { return issued },
	})
	if err != nil {
		log.Fatal(err)
	}
	params := map[string]string{"amount": "10.00", "currency": "EUR"}
	minted, err := minter.Mint(token.MintRequest{
		Subject:  "alice",
		Audience: "https://payments.example",
		Task:     token.Task{ID: "transfer-42", Action: "approve", Params: params},
	})
	if err != nil {
		log.Fatal(err)
	}
	jwks, err := issuerKeys.JWKS() // served at the issuer's JWKS URL
	if err != nil {
		log.Fatal(err)
	}

	// On the relying service.
	published, err := keys.ParseJWKS(jwks)
	if err != nil {
		log.Fatal(err)
	}
	trusted, err := keys.NewStatic(published...)
	if err != nil {
		log.Fatal(err)
	}
	used, err := token.NewMemoryReplayStore(token.MemoryReplayConfig{Now: func() time.Time { return started }})
	if err != nil {
		log.Fatal(err)
	}
	defer used.Close()
	verifier, err := token.NewVerifier(token.VerifierConfig{
		Issuers:  []token.TrustedIssuer{{Issuer: "https://bank.example", Keys: trusted}},
		Audience: "https://payments.example",
		Replay:   used,
		Now:      func() time.Time { return received },
	})
	if err != nil {
		log.Fatal(err)
	}
	// The relying service knows which task it is about to perform, and
	// with which parameters.
	want := token.Expect{Task: &token.Task{
		ID: "transfer-42", Action: "approve", ParamsDigest: token.DigestParams(params),
	}}

	ok, err := verifier.Verify(context.Background(), minted.Token, want)
	if err != nil {
		log.Fatal(err)
	}
	c := ok.Claims()
	fmt.Println("subject:", c.Subject)
	fmt.Println("task:", c.Task.Action, c.Task.ID, c.Task.Params["amount"], c.Task.Params["currency"])

	_, err = verifier.Verify(context.Background(), minted.Token, want)
	fmt.Println("second use:", token.ReasonOf(err))
	fmt.Println("is replayed:", errors.Is(err, &token.Error{Reason: token.ReasonReplayed}))
	// Output:
	// subject: alice
	// task: approve transfer-42 10.00 EUR
	// second use: replayed
	// is replayed: true
}

// ExampleVerifier_Explain shows every check a rejected token went through,
// for troubleshooting; it never consumes the token.
func ExampleVerifier_Explain() {
	ring, err := keys.NewEphemeral(token.ES256)
	if err != nil {
		log.Fatal(err)
	}
	minter, err := token.NewMinter(token.MinterConfig{Issuer: "https://bank.example", Keys: ring})
	if err != nil {
		log.Fatal(err)
	}
	minted, err := minter.Mint(token.MintRequest{
		Subject:  "alice",
		Audience: "https://elsewhere.example",
		Task:     token.Task{ID: "transfer-42", Action: "approve"},
	})
	if err != nil {
		log.Fatal(err)
	}
	used, err := token.NewMemoryReplayStore(token.MemoryReplayConfig{})
	if err != nil {
		log.Fatal(err)
	}
	defer used.Close()
	verifier, err := token.NewVerifier(token.VerifierConfig{
		Issuers:  []token.TrustedIssuer{{Issuer: "https://bank.example", Keys: ring}},
		Audience: "https://payments.example",
		Replay:   used,
	})
	if err != nil {
		log.Fatal(err)
	}

	ex := verifier.Explain(context.Background(), minted.Token, token.Expect{AnyTask: true})
	for _, s := range ex.Steps {
		result := "ok"
		if s.Err != nil {
			result = string(token.ReasonOf(s.Err))
		}
		fmt.Printf("%-9s %s\n", s.Name, result)
	}
	// Output:
	// size      ok
	// structure ok
	// header    ok
	// issuer    ok
	// key       ok
	// signature ok
	// claims    wrong_audience
}

// ExampleDigestParams binds a token to a task's parameters: the issuer and
// the relying service each compute the digest from the parameters they hold,
// and a token for another amount does not match.
func ExampleDigestParams() {
	approved := token.DigestParams(map[string]string{"amount": "10.00", "currency": "EUR", "payee": "bob"})
	sameOtherOrder := token.DigestParams(map[string]string{"payee": "bob", "currency": "EUR", "amount": "10.00"})
	tampered := token.DigestParams(map[string]string{"amount": "10000.00", "currency": "EUR", "payee": "bob"})

	fmt.Println(approved)
	fmt.Println("order matters:", approved != sameOtherOrder)
	fmt.Println("amount matters:", approved != tampered)
	// Output:
	// sha256:G2dNmhfGhGS-UqpCbBkOHumtu85jGDH4KsMjWZIEiPk
	// order matters: false
	// amount matters: true
}
