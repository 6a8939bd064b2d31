package token_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/broker/brokertest"
	"github.com/handoffbroker/handoff/broker/internal/fixture"
	"github.com/handoffbroker/handoff/broker/token"
)

func TestVerify_replayRace(t *testing.T) {
	for _, alg := range token.Algorithms() {
		t.Run(string(alg), func(t *testing.T) {
			k := fixture.NewKey(t, alg)
			v := fixture.NewVerifier(t, fixture.VerifierConfig(t, k.Pub))
			tok := validToken(t, k)

			const n = 100
			reasons := make([]token.Reason, n)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					<-start
					_, err := v.Verify(context.Background(), tok, token.Expect{AnyTask: true})
					reasons[i] = token.ReasonOf(err)
					if err != nil && reasons[i] == "" {
						reasons[i] = "not a broker error"
					}
				})
			}
			close(start)
			wg.Wait()

			counts := make(map[token.Reason]int)
			for _, r := range reasons {
				counts[r]++
			}
			if counts[""] != 1 || counts[token.ReasonReplayed] != n-1 {
				t.Errorf("outcomes = %v, want 1 success and %d replayed", counts, n-1)
			}
		})
	}
}

// TestVerify_invalidTokenDoesNotBurnJTI checks that an attacker who knows a
// token's jti (but cannot sign) cannot spend it first with a forged or
// otherwise invalid token carrying the same jti.
func TestVerify_invalidTokenDoesNotBurnJTI(t *testing.T) {
	k := fixture.NewKey(t, token.EdDSA)
	wrongAud := fixture.ValidClaims(testJTI)
	wrongAud["aud"] = "https://other.test"
	tests := []struct {
		name       string
		giveFirst  string
		wantReason token.Reason
	}{
		{name: "fail/bad_signature", giveFirst: fixture.NewKey(t, token.EdDSA).Sign(t, k.Header(), fixture.ValidClaims(testJTI)), wantReason: token.ReasonBadSignature},
		{name: "fail/wrong_audience", giveFirst: k.Sign(t, k.Header(), wrongAud), wantReason: token.ReasonWrongAudience},
		{name: "fail/task_mismatch", giveFirst: validToken(t, k), wantReason: token.ReasonTaskMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := fixture.NewVerifier(t, fixture.VerifierConfig(t, k.Pub))
			expect := token.Expect{AnyTask: true}
			if tt.wantReason == token.ReasonTaskMismatch {
				expect = token.Expect{Task: &token.Task{ID: "transfer-99", Action: "approve"}}
			}
			_, err := v.Verify(context.Background(), tt.giveFirst, expect)
			fixture.WantReason(t, err, tt.wantReason)

			_, err = v.Verify(context.Background(), validToken(t, k), token.Expect{AnyTask: true})
			fixture.WantReason(t, err, "")
		})
	}
}

func TestExplain_doesNotConsume(t *testing.T) {
	k := fixture.NewKey(t, token.EdDSA)
	v := fixture.NewVerifier(t, fixture.VerifierConfig(t, k.Pub))
	tok := validToken(t, k)
	for range 3 {
		if ex := v.Explain(context.Background(), tok, token.Expect{AnyTask: true}); ex.Err != nil {
			t.Fatalf("Explain: %v", ex.Err)
		}
	}
	_, err := v.Verify(context.Background(), tok, token.Expect{AnyTask: true})
	fixture.WantReason(t, err, "")
	_, err = v.Verify(context.Background(), tok, token.Expect{AnyTask: true})
	fixture.WantReason(t, err, token.ReasonReplayed)
}

// TestVerify_respelledTokenIsReplayed checks that the replay key is (iss,
// jti) and not the token text: a second spelling of a used token, which
// still carries a valid signature, is refused.
func TestVerify_respelledTokenIsReplayed(t *testing.T) {
	tests := []struct {
		name    string
		alg     token.Algorithm
		respell func(t testing.TB, tok string) string
	}{
		{
			// ECDSA malleability: (r, n-s) verifies whenever (r, s) does.
			name: "fail/es256_negated_s", alg: token.ES256,
			respell: func(t testing.TB, tok string) string {
				i := strings.LastIndexByte(tok, '.')
				sig, err := base64.RawURLEncoding.DecodeString(tok[i+1:])
				if err != nil {
					t.Fatal(err)
				}
				s := new(big.Int).SetBytes(sig[32:])
				s.Sub(elliptic.P256().Params().N, s)
				s.FillBytes(sig[32:])
				return tok[:i+1] + base64.RawURLEncoding.EncodeToString(sig)
			},
		},
		{
			// Twin base64 spellings: 64 signature bytes leave 4 unused bits
			// in the last character, which a lax decoder ignores.
			name: "fail/eddsa_signature_trailing_bits", alg: token.EdDSA,
			respell: func(t testing.TB, tok string) string {
				last := strings.IndexByte(alphabet, tok[len(tok)-1])
				return tok[:len(tok)-1] + string(alphabet[last^1])
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := fixture.NewKey(t, tt.alg)
			v := fixture.NewVerifier(t, fixture.VerifierConfig(t, k.Pub))
			tok := validToken(t, k)
			twin := tt.respell(t, tok)
			if twin == tok {
				t.Fatal("respell returned the same token")
			}
			if ex := v.Explain(context.Background(), twin, token.Expect{AnyTask: true}); ex.Err != nil {
				// The verifier may refuse the twin outright; then there is
				// nothing to replay.
				t.Skipf("twin spelling is refused outright: %v", ex.Err)
			}
			_, err := v.Verify(context.Background(), tok, token.Expect{AnyTask: true})
			fixture.WantReason(t, err, "")
			_, err = v.Verify(context.Background(), twin, token.Expect{AnyTask: true})
			fixture.WantReason(t, err, token.ReasonReplayed)
		})
	}
}

const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// TestVerify_es256Malleable checks the premise of the test above: a negated-s
// signature really does verify, so only the replay key stops it.
func TestVerify_es256Malleable(t *testing.T) {
	k := fixture.NewKey(t, token.ES256)
	input := []byte("header.payload")
	sig := k.RawSign(t, input)
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	s.Sub(elliptic.P256().Params().N, s)
	sum := sha256.Sum256(input)
	if !ecdsa.Verify(k.Pub.Key.(*ecdsa.PublicKey), sum[:], r, s) {
		t.Fatal("negated-s signature does not verify")
	}
}

func TestMemoryReplayStore_consume(t *testing.T) {
	ctx := context.Background()
	clock := brokertest.NewClock(fixture.Now)
	s := fixture.NewStore(t, clock, token.MemoryReplayConfig{})

	if err := s.Consume(ctx, "a", fixture.Now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.Consume(ctx, "a", fixture.Now.Add(time.Minute)); !errors.Is(err, token.ErrAlreadyUsed) {
		t.Fatalf("second Consume = %v, want ErrAlreadyUsed", err)
	}
	if err := s.Consume(ctx, "b", fixture.Now.Add(time.Minute)); err != nil {
		t.Fatalf("other key: %v", err)
	}
	clock.Advance(time.Minute)
	if err := s.Consume(ctx, "a", fixture.Now.Add(2*time.Minute)); err != nil {
		t.Fatalf("Consume after expiry = %v, want success", err)
	}
}

func TestMemoryReplayStore_sweep(t *testing.T) {
	ctx := context.Background()
	clock := brokertest.NewClock(fixture.Now)
	s := fixture.NewStore(t, clock, token.MemoryReplayConfig{SweepInterval: time.Hour})
	for i := range 10 {
		exp := fixture.Now.Add(time.Minute)
		if i%2 == 0 {
			exp = fixture.Now.Add(time.Hour)
		}
		if err := s.Consume(ctx, fmt.Sprint("key-", i), exp); err != nil {
			t.Fatal(err)
		}
	}
	s.Sweep()
	if got := s.Len(); got != 10 {
		t.Fatalf("Len before expiry = %d, want 10", got)
	}
	clock.Advance(time.Minute)
	s.Sweep()
	if got := s.Len(); got != 5 {
		t.Fatalf("Len after sweep = %d, want 5 live entries", got)
	}
	if err := s.Consume(ctx, "key-0", fixture.Now.Add(time.Hour)); !errors.Is(err, token.ErrAlreadyUsed) {
		t.Fatalf("live entry swept: Consume = %v", err)
	}
}

// TestMemoryReplayStore_full checks that a full store fails closed: it
// refuses new entries (and the verifier reports unavailable) rather than
// evicting a live one, which would let that token be replayed.
func TestMemoryReplayStore_full(t *testing.T) {
	ctx := context.Background()
	clock := brokertest.NewClock(fixture.Now.Add(-time.Hour))
	s := fixture.NewStore(t, clock, token.MemoryReplayConfig{MaxEntries: 3, Shards: 1})
	clock.Set(fixture.Now)
	for i := range 3 {
		if err := s.Consume(ctx, fmt.Sprint("key-", i), fixture.Now.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Consume(ctx, "key-3", fixture.Now.Add(time.Minute)); !errors.Is(err, token.ErrStoreFull) {
		t.Fatalf("Consume on a full store = %v, want ErrStoreFull", err)
	}
	for i := range 3 {
		if err := s.Consume(ctx, fmt.Sprint("key-", i), fixture.Now.Add(time.Minute)); !errors.Is(err, token.ErrAlreadyUsed) {
			t.Fatalf("live entry key-%d lost: %v", i, err)
		}
	}

	k := fixture.NewKey(t, token.EdDSA)
	cfg := fixture.VerifierConfig(t, k.Pub)
	cfg.Replay = s
	v := fixture.NewVerifier(t, cfg)
	_, err := v.Verify(ctx, validToken(t, k), token.Expect{AnyTask: true})
	fixture.WantReason(t, err, token.ReasonUnavailable)
	if !errors.Is(err, token.ErrStoreFull) {
		t.Errorf("error %v does not wrap ErrStoreFull", err)
	}

	clock.Advance(time.Minute)
	_, err = v.Verify(ctx, validToken(t, k), token.Expect{AnyTask: true})
	fixture.WantReason(t, err, "")
}

// TestMemoryReplayStore_neverExceedsMaxEntries fills stores until they
// refuse, with shard counts that do not divide MaxEntries or exceed it, and
// checks that none ever holds more than MaxEntries and every entry it took
// is still live: the bound is enforced by failing closed, never by
// eviction.
func TestMemoryReplayStore_neverExceedsMaxEntries(t *testing.T) {
	tests := []struct {
		name       string
		giveMax    int
		giveShards int
	}{
		{name: "fail/100_entries_default_shards", giveMax: 100},
		{name: "fail/10_entries_64_shards", giveMax: 10, giveShards: 64},
		{name: "fail/1000_entries_7_shards", giveMax: 1000, giveShards: 7},
		{name: "fail/1_entry_4096_shards", giveMax: 1, giveShards: 4096},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s := fixture.NewStore(t, brokertest.NewClock(fixture.Now), token.MemoryReplayConfig{MaxEntries: tt.giveMax, Shards: tt.giveShards})
			exp := fixture.Now.Add(time.Minute)
			var taken []string
			for i := 0; i < 10*tt.giveMax; i++ {
				key := fmt.Sprint("issuer jti-", i)
				err := s.Consume(ctx, key, exp)
				if errors.Is(err, token.ErrStoreFull) {
					continue
				}
				if err != nil {
					t.Fatalf("Consume #%d: %v", i, err)
				}
				taken = append(taken, key)
			}
			if got := s.Len(); got > tt.giveMax || len(taken) > tt.giveMax {
				t.Fatalf("store holds %d entries (%d accepted), MaxEntries %d", got, len(taken), tt.giveMax)
			}
			for _, key := range taken {
				if err := s.Consume(ctx, key, exp); !errors.Is(err, token.ErrAlreadyUsed) {
					t.Fatalf("live entry %q lost: Consume = %v", key, err)
				}
			}
		})
	}
}

// TestMemoryReplayStore_usesEveryShard checks that capacity is spread over
// every shard, whatever their number, so a store holds close to MaxEntries
// before it reports full.
func TestMemoryReplayStore_usesEveryShard(t *testing.T) {
	tests := []struct {
		name       string
		giveShards int
		giveMax    int
		giveFill   int
	}{
		{name: "ok/1_shard", giveShards: 1, giveMax: 1000, giveFill: 1000},
		{name: "ok/64_shards", giveShards: 64, giveMax: 64 * 2000, giveFill: 64 * 1800},
		{name: "ok/100_shards", giveShards: 100, giveMax: 100 * 2000, giveFill: 100 * 1800},
		{name: "ok/4096_shards", giveShards: 4096, giveMax: 4096 * 64, giveFill: 4096 * 32},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := fixture.NewStore(t, brokertest.NewClock(fixture.Now), token.MemoryReplayConfig{MaxEntries: tt.giveMax, Shards: tt.giveShards})
			for i := range tt.giveFill {
				if err := s.Consume(context.Background(), fmt.Sprint("issuer jti-", i), fixture.Now.Add(time.Minute)); err != nil {
					t.Fatalf("Consume #%d of %d (MaxEntries %d): %v", i, tt.giveFill, tt.giveMax, err)
				}
			}
		})
	}
}

func TestMemoryReplayStore_concurrent(t *testing.T) {
	s := fixture.NewStore(t, brokertest.NewClock(fixture.Now), token.MemoryReplayConfig{})
	const workers, perWorker = 8, 500
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				// Every worker tries every key: each must succeed once.
				key := fmt.Sprint("k-", (i+w*perWorker/workers)%perWorker)
				err := s.Consume(context.Background(), key, fixture.Now.Add(time.Minute))
				if err != nil && !errors.Is(err, token.ErrAlreadyUsed) {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := s.Len(); got != perWorker {
		t.Fatalf("Len = %d, want %d", got, perWorker)
	}
}

// TestVerify_restartGuard checks the restart trade-off: a memory store
// forgets on restart, so tokens issued before it started (rounded up to the
// second, since iat has one-second resolution) are refused, and tokens
// minted after it are accepted.
func TestVerify_restartGuard(t *testing.T) {
	start := fixture.Now.Add(500 * time.Millisecond)
	tests := []struct {
		name       string
		giveMintAt time.Time
		wantReason token.Reason
	}{
		{name: "fail/minted_before_start", giveMintAt: start.Add(-20 * time.Second), wantReason: token.ReasonIssuedBeforeRestart},
		{name: "fail/minted_in_start_second_before_start", giveMintAt: start.Add(-200 * time.Millisecond), wantReason: token.ReasonIssuedBeforeRestart},
		{name: "fail/minted_in_start_second_after_start", giveMintAt: start.Add(200 * time.Millisecond), wantReason: token.ReasonIssuedBeforeRestart},
		{name: "ok/minted_next_second", giveMintAt: start.Add(500 * time.Millisecond)},
		{name: "ok/minted_later", giveMintAt: start.Add(10 * time.Second)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := brokertest.NewClock(start)
			store := fixture.NewStore(t, clock, token.MemoryReplayConfig{})
			ring := fixture.EphemeralRing(t, token.EdDSA)
			m, err := token.NewMinter(token.MinterConfig{Issuer: fixture.Issuer, Keys: ring, Now: func() time.Time { return tt.giveMintAt }})
			if err != nil {
				t.Fatal(err)
			}
			minted, err := m.Mint(token.MintRequest{Subject: "alice", Audience: fixture.Audience, Task: token.Task{ID: "t", Action: "a"}})
			if err != nil {
				t.Fatal(err)
			}
			v := fixture.NewVerifier(t, token.VerifierConfig{
				Issuers: []token.TrustedIssuer{{Issuer: fixture.Issuer, Keys: ring}}, Audience: fixture.Audience, Replay: store,
				Now: func() time.Time { return tt.giveMintAt.Add(time.Second) },
			})
			_, err = v.Verify(context.Background(), minted.Token, token.Expect{AnyTask: true})
			fixture.WantReason(t, err, tt.wantReason)
		})
	}
}

func TestNewMemoryReplayStore_config(t *testing.T) {
	tests := []struct {
		name      string
		give      token.MemoryReplayConfig
		wantCount int
	}{
		{name: "ok/defaults"},
		{name: "fail/negative_max", give: token.MemoryReplayConfig{MaxEntries: -1}, wantCount: 1},
		{name: "fail/too_many_shards", give: token.MemoryReplayConfig{Shards: 5000}, wantCount: 1},
		{name: "fail/every_problem", give: token.MemoryReplayConfig{MaxEntries: -1, Shards: -1, SweepInterval: -time.Second}, wantCount: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := token.NewMemoryReplayStore(tt.give)
			if tt.wantCount == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				if err := s.Close(); err != nil {
					t.Fatalf("second Close: %v", err)
				}
				return
			}
			if got := len(fixture.JoinedErrors(err)); got != tt.wantCount {
				t.Fatalf("got %d problems (%v), want %d", got, err, tt.wantCount)
			}
		})
	}
}

// TestVerify_replayRecordOutlivesExpiry checks that a used token is refused
// at every instant at which a verifier can still judge it unexpired, even
// when the store's clock runs ahead of the verifier's (the time from the
// verifier's clock read to the store's write, or skew between a replica and
// a shared store) and a second verifier on the same store tolerates more
// leeway than the one that consumed.
func TestVerify_replayRecordOutlivesExpiry(t *testing.T) {
	exp := time.Unix(fixture.ValidClaims(testJTI)["exp"].(int64), 0)
	lastInstant := exp.Add(token.DefaultLeeway - time.Nanosecond)
	maxLastInstant := exp.Add(token.MaxLeeway - time.Nanosecond)
	tests := []struct {
		name             string
		giveFirstLeeway  time.Duration // 0: the default
		giveSecondLeeway time.Duration // 0: the default
		giveSecondAt     time.Time     // the second verifier's clock
		giveStoreAhead   time.Duration // how far the store's clock runs ahead of it
		wantReason       token.Reason
	}{
		{name: "fail/last_instant_same_clock", giveSecondAt: lastInstant, wantReason: token.ReasonReplayed},
		{name: "fail/store_reads_clock_at_boundary", giveSecondAt: lastInstant, giveStoreAhead: time.Nanosecond, wantReason: token.ReasonReplayed},
		{name: "fail/store_clock_1ms_ahead", giveSecondAt: lastInstant, giveStoreAhead: time.Millisecond, wantReason: token.ReasonReplayed},
		{name: "fail/store_clock_ahead_by_margin", giveSecondAt: lastInstant, giveStoreAhead: token.ReplayMargin, wantReason: token.ReasonReplayed},
		{name: "fail/other_verifier_max_leeway", giveSecondLeeway: token.MaxLeeway, giveSecondAt: maxLastInstant, wantReason: token.ReasonReplayed},
		// The retention does not depend on the consuming verifier's leeway
		// (1ns is the least there is; 0 means the default): a replica with
		// MaxLeeway, its clock behind the store's, still finds the record.
		{name: "fail/least_leeway_consumed_max_leeway_store_ahead", giveFirstLeeway: time.Nanosecond, giveSecondLeeway: token.MaxLeeway,
			giveSecondAt: maxLastInstant, giveStoreAhead: token.ReplayMargin, wantReason: token.ReasonReplayed},
		{name: "fail/max_leeway_consumed_least_leeway_store_ahead", giveFirstLeeway: token.MaxLeeway, giveSecondLeeway: time.Nanosecond,
			giveSecondAt: exp, giveStoreAhead: token.ReplayMargin, wantReason: token.ReasonReplayed},
		{name: "fail/after_exp_plus_leeway", giveSecondAt: lastInstant.Add(time.Nanosecond), giveStoreAhead: time.Hour, wantReason: token.ReasonExpired},
		// The documented bound is exact: a store whose clock runs more than
		// ReplayMargin ahead of a MaxLeeway verifier's last instant may have
		// forgotten the use.
		{name: "ok/store_clock_ahead_beyond_margin", giveSecondLeeway: token.MaxLeeway, giveSecondAt: maxLastInstant, giveStoreAhead: token.ReplayMargin + time.Nanosecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := fixture.NewKey(t, token.EdDSA)
			storeClock := brokertest.NewClock(fixture.Now.Add(-time.Hour))
			cfg := fixture.VerifierConfig(t, k.Pub)
			cfg.Replay = fixture.NewStore(t, storeClock, token.MemoryReplayConfig{})
			cfg.Leeway = tt.giveFirstLeeway
			storeClock.Set(fixture.Now)
			tok := validToken(t, k)
			_, err := fixture.NewVerifier(t, cfg).Verify(context.Background(), tok, token.Expect{AnyTask: true})
			fixture.WantReason(t, err, "")

			cfg.Leeway = tt.giveSecondLeeway
			cfg.Now = func() time.Time { return tt.giveSecondAt }
			storeClock.Set(tt.giveSecondAt.Add(tt.giveStoreAhead))
			_, err = fixture.NewVerifier(t, cfg).Verify(context.Background(), tok, token.Expect{AnyTask: true})
			fixture.WantReason(t, err, tt.wantReason)
		})
	}
}

// tickingClock advances by tick on every reading, so time passes between a
// verifier's clock read for the claims check and its store's, as it does
// for real.
type tickingClock struct {
	ns   atomic.Int64
	tick time.Duration
}

func (c *tickingClock) Now() time.Time { return time.Unix(0, c.ns.Add(int64(c.tick))) }

func (c *tickingClock) Set(t time.Time) { c.ns.Store(t.UnixNano()) }

// TestVerify_resubmissionsAcrossExpiry hammers used tokens with concurrent
// resubmissions on a clock that crosses exp + leeway while they run: not
// one is accepted a second time.
func TestVerify_resubmissionsAcrossExpiry(t *testing.T) {
	const tokens, workers = 30, 4
	k := fixture.NewKey(t, token.EdDSA)
	boundary := time.Unix(fixture.ValidClaims(testJTI)["exp"].(int64), 0).Add(token.DefaultLeeway)
	var (
		wg       sync.WaitGroup
		accepted atomic.Int64
		mu       sync.Mutex
		others   = map[string]int{}
	)
	for i := range tokens {
		clock := &tickingClock{tick: time.Microsecond}
		clock.Set(fixture.Now.Add(-time.Hour))
		store, err := token.NewMemoryReplayStore(token.MemoryReplayConfig{Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		cfg := fixture.VerifierConfig(t, k.Pub)
		cfg.Replay, cfg.Now = store, clock.Now
		v := fixture.NewVerifier(t, cfg)
		tok := k.Sign(t, k.Header(), fixture.ValidClaims(fmt.Sprint("jti-", i)))
		clock.Set(fixture.Now)
		_, err = v.Verify(context.Background(), tok, token.Expect{AnyTask: true})
		fixture.WantReason(t, err, "")

		clock.Set(boundary.Add(-20 * time.Microsecond))
		for range workers {
			wg.Go(func() {
				for {
					_, err := v.Verify(context.Background(), tok, token.Expect{AnyTask: true})
					switch r := token.ReasonOf(err); {
					case err == nil:
						accepted.Add(1)
					case r == token.ReasonExpired:
						return
					case r != token.ReasonReplayed:
						mu.Lock()
						others[fmt.Sprint(err)]++
						mu.Unlock()
						return
					}
				}
			})
		}
	}
	wg.Wait()
	if n := accepted.Load(); n != 0 {
		t.Errorf("%d resubmissions of %d used tokens were accepted across exp + leeway, want 0", n, tokens)
	}
	if len(others) != 0 {
		t.Errorf("resubmissions refused for other reasons than replayed or expired: %v", others)
	}
}

// TestMemoryReplayStore_pastExpiryIsFloored checks that a store keeps a key
// at least MinReplayRetention whatever expiresAt says: a record that expired
// on arrival would let a racing second use through.
func TestMemoryReplayStore_pastExpiryIsFloored(t *testing.T) {
	tests := []struct {
		name          string
		giveExpiresAt time.Time
	}{
		{name: "fail/second_use_expiry_in_past", giveExpiresAt: fixture.Now.Add(-time.Hour)},
		{name: "fail/second_use_zero_expiry"},
		{name: "fail/second_use_expiry_now", giveExpiresAt: fixture.Now},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := brokertest.NewClock(fixture.Now)
			s := fixture.NewStore(t, clock, token.MemoryReplayConfig{})
			if err := s.Consume(context.Background(), "k", tt.giveExpiresAt); err != nil {
				t.Fatal(err)
			}
			clock.Advance(token.MinReplayRetention - time.Nanosecond)
			if err := s.Consume(context.Background(), "k", tt.giveExpiresAt); !errors.Is(err, token.ErrAlreadyUsed) {
				t.Fatalf("second Consume = %v, want ErrAlreadyUsed", err)
			}
			clock.Advance(time.Nanosecond)
			if err := s.Consume(context.Background(), "k", tt.giveExpiresAt); err != nil {
				t.Fatalf("Consume after MinReplayRetention = %v, want success", err)
			}
		})
	}
}

func TestReplayRetention(t *testing.T) {
	exp := fixture.Now.Add(time.Minute)
	if got, want := token.ReplayRetention(exp), exp.Add(token.MaxLeeway+token.ReplayMargin); !got.Equal(want) {
		t.Errorf("ReplayRetention(exp) = exp + %v, want exp + %v", got.Sub(exp), want.Sub(exp))
	}
}
