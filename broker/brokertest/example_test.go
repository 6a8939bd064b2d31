package brokertest_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/handoffbroker/handoff/broker/brokertest"
	"github.com/handoffbroker/handoff/broker/keys"
	"github.com/handoffbroker/handoff/broker/revocation"
	"github.com/handoffbroker/handoff/broker/token"
)

// A relying service's test: keys and revocations come from the test issuer
// over HTTP, exactly as they would from SERVER1, and the shared clock moves
// time without sleeping. In a real test, pass the test's t instead of ex.
func ExampleStartIssuer() {
	ex := &exampleT{}
	defer ex.cleanup()

	clock := brokertest.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	is := brokertest.StartIssuer(ex, brokertest.WithNow(clock.Now))

	remoteKeys := must(keys.NewRemote(keys.RemoteConfig{URL: is.JWKSURL, Now: clock.Now}))
	revocations := must(revocation.NewRemote(revocation.RemoteConfig{
		URL: is.RevocationURL, Keys: remoteKeys, Issuer: is.URL, Now: clock.Now,
	}))
	replay := must(token.NewMemoryReplayStore(token.MemoryReplayConfig{Now: clock.Now}))
	defer replay.Close()
	v := must(token.NewVerifier(token.VerifierConfig{
		Issuers:    []token.TrustedIssuer{{Issuer: is.URL, Keys: remoteKeys}},
		Audience:   "https://payments.example",
		Replay:     replay,
		Revocation: revocations,
		Now:        clock.Now,
	}))
	clock.Advance(time.Second) // the memory store refuses tokens older than itself

	task := token.Task{ID: "transfer-42", Action: "approve"}
	req := token.MintRequest{Subject: "alice", Audience: "https://payments.example", Task: task}
	expect := token.Expect{Task: &task}
	ctx := context.Background()
	if err := revocations.Refresh(ctx); err != nil {
		log.Fatal(err)
	}

	verified, err := v.Verify(ctx, is.Mint(ex, req), expect)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(verified.Claims().Subject, verified.Claims().Task.ID)

	revoked := is.MintFull(ex, req)
	is.RevokeToken(ex, revoked.ID, revoked.ExpiresAt)
	if err := revocations.Refresh(ctx); err != nil {
		log.Fatal(err)
	}
	_, err = v.Verify(ctx, revoked.Token, expect)
	fmt.Println(reason(err))

	expired := is.Mint(ex, req)
	clock.Advance(5 * time.Minute)
	_, err = v.Verify(ctx, expired, expect)
	fmt.Println(reason(err))
	// Output:
	// alice transfer-42
	// revoked
	// expired
}

func reason(err error) token.Reason {
	var te *token.Error
	if errors.As(err, &te) {
		return te.Reason
	}
	return ""
}

func must[V any](v V, err error) V {
	if err != nil {
		log.Fatal(err)
	}
	return v
}

// exampleT stands in for the *testing.T a test passes to the kit.
type exampleT struct{ cleanups []func() }

func (*exampleT) Helper()                      {}
func (*exampleT) Fatalf(f string, args ...any) { log.Fatalf(f, args...) }
func (e *exampleT) Cleanup(f func())           { e.cleanups = append(e.cleanups, f) }

func (e *exampleT) cleanup() {
	for i := len(e.cleanups) - 1; i >= 0; i-- {
		e.cleanups[i]()
	}
}
