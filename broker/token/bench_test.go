package token_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/broker/brokertest"
	"github.com/handoffbroker/handoff/broker/internal/fixture"
	"github.com/handoffbroker/handoff/broker/token"
)

// benchMessage is a token's signing input (header.payload), about 370 bytes:
// what the baselines sign and verify.
func benchMessage(b *testing.B) []byte {
	b.Helper()
	tok := validToken(b, fixture.NewKey(b, token.EdDSA))
	return []byte(tok[:strings.LastIndexByte(tok, '.')])
}

// BenchmarkBaseline measures the raw signature primitives on a token-sized
// message, so Mint and Verify can be read as ratios from one run.
func BenchmarkBaseline(b *testing.B) {
	msg := benchMessage(b)
	b.Logf("message: %d bytes", len(msg))
	ed := fixture.NewKey(b, token.EdDSA).Priv.(ed25519.PrivateKey)
	ec := fixture.NewKey(b, token.ES256).Priv.(*ecdsa.PrivateKey)
	edSig := ed25519.Sign(ed, msg)
	sum := sha256.Sum256(msg)
	r, s, err := ecdsa.Sign(rand.Reader, ec, sum[:])
	if err != nil {
		b.Fatal(err)
	}

	b.Run("ed25519_sign", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			ed25519.Sign(ed, msg)
		}
	})
	b.Run("ed25519_verify", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if !ed25519.Verify(ed.Public().(ed25519.PublicKey), msg, edSig) {
				b.Fatal("verify failed")
			}
		}
	})
	b.Run("es256_sign", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			sum := sha256.Sum256(msg)
			if _, _, err := ecdsa.Sign(rand.Reader, ec, sum[:]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("es256_verify", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			sum := sha256.Sum256(msg)
			if !ecdsa.Verify(&ec.PublicKey, sum[:], r, s) {
				b.Fatal("verify failed")
			}
		}
	})
}

func BenchmarkMint(b *testing.B) {
	for _, alg := range token.Algorithms() {
		b.Run(string(alg), func(b *testing.B) {
			m := fixture.Must(token.NewMinter(token.MinterConfig{Issuer: fixture.Issuer, Keys: fixture.EphemeralRing(b, alg)}))
			req := fixture.MintRequest()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := m.Mint(req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerify measures a full Verify, consuming a fresh jti in the
// memory replay store on every operation, as a relying service does.
func BenchmarkVerify(b *testing.B) {
	for _, alg := range token.Algorithms() {
		b.Run(string(alg), func(b *testing.B) {
			v, tokens, _ := newBenchVerifier(b, alg)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := v.Verify(ctx, tokens[i], token.Expect{AnyTask: true}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkMemoryReplayConsume(b *testing.B) {
	for _, mode := range []string{"serial", "parallel"} {
		b.Run(mode, func(b *testing.B) {
			keys := make([]string, b.N)
			for i := range keys {
				keys[i] = fixture.Issuer + " 0e2d4c6a-8b1f-4c3e-9a7d-" + strconv.Itoa(100000000000+i)
			}
			store := fixture.NewStore(b, brokertest.NewClock(fixture.Now), token.MemoryReplayConfig{MaxEntries: 2*b.N + 1024})
			exp := fixture.Now.Add(time.Minute)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			if mode == "serial" {
				for i := 0; i < b.N; i++ {
					if err := store.Consume(ctx, keys[i], exp); err != nil {
						b.Fatal(err)
					}
				}
				return
			}
			var next atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := store.Consume(ctx, keys[next.Add(1)-1], exp); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkMemoryReplayFootprint reports the heap held per live jti in a
// memory replay store of 1,000,000 live entries.
func BenchmarkMemoryReplayFootprint(b *testing.B) {
	const entries = 1_000_000
	exp := fixture.Now.Add(time.Hour)
	ctx := context.Background()
	var perEntry float64
	for i := 0; i < b.N; i++ {
		before := heapInUse()
		store := fixture.NewStore(b, brokertest.NewClock(fixture.Now), token.MemoryReplayConfig{MaxEntries: 2 * entries})
		var buf []byte
		for j := range entries {
			buf = strconv.AppendInt(append(buf[:0], fixture.Issuer+" jti-"...), int64(j), 10)
			if err := store.Consume(ctx, string(buf), exp); err != nil {
				b.Fatal(err)
			}
		}
		after := heapInUse()
		if store.Len() != entries {
			b.Fatalf("store holds %d entries", store.Len())
		}
		runtime.KeepAlive(store)
		perEntry = float64(after-before) / entries
	}
	b.ReportMetric(perEntry, "B/entry")
	b.ReportMetric(perEntry*entries/1e6, "MB/1M")
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkPaired times each broker operation and its raw signature
// primitive alternately, one operation at a time, and reports the ratio of
// their medians. On a machine shared with other work, preemption inflates
// a few operations of either kind; the median of each discards those, and
// alternating exposes both to the same conditions, so the ratio holds where
// ns/op from separate benchmarks does not.
//
// The raw verify of operation i checks the signature of the token Verify
// checks in operation i, over its signing input: Ed25519 verification
// takes variable time, so a single fixed signature would bias the ratio by
// a few percent, one way or the other, depending on that signature.
func BenchmarkPaired(b *testing.B) {
	msg := benchMessage(b)
	for _, alg := range token.Algorithms() {
		raw := fixture.NewKey(b, alg)

		b.Run("mint_"+strings.ToLower(string(alg)), func(b *testing.B) {
			m := fixture.Must(token.NewMinter(token.MinterConfig{Issuer: fixture.Issuer, Keys: fixture.EphemeralRing(b, alg)}))
			req := fixture.MintRequest()
			runPaired(b,
				func(int) { rawSignOnce(b, raw, msg) },
				func(int) {
					if _, err := m.Mint(req); err != nil {
						b.Fatal(err)
					}
				})
		})

		b.Run("verify_"+strings.ToLower(string(alg)), func(b *testing.B) {
			v, tokens, pub := newBenchVerifier(b, alg)
			inputs, sigs := make([][]byte, len(tokens)), make([][]byte, len(tokens))
			for i, tok := range tokens {
				dot := strings.LastIndexByte(tok, '.')
				inputs[i] = []byte(tok[:dot])
				sig, err := base64.RawURLEncoding.DecodeString(tok[dot+1:])
				if err != nil {
					b.Fatal(err)
				}
				sigs[i] = sig
			}
			ctx := context.Background()
			runPaired(b,
				func(i int) {
					if !signatureValid(pub, inputs[i], sigs[i]) {
						b.Fatal("raw verify failed")
					}
				},
				func(i int) {
					if _, err := v.Verify(ctx, tokens[i], token.Expect{AnyTask: true}); err != nil {
						b.Fatal(err)
					}
				})
		})
	}
}

func rawSignOnce(b *testing.B, k fixture.Key, msg []byte) {
	switch p := k.Priv.(type) {
	case ed25519.PrivateKey:
		ed25519.Sign(p, msg)
	case *ecdsa.PrivateKey:
		sum := sha256.Sum256(msg)
		if _, _, err := ecdsa.Sign(rand.Reader, p, sum[:]); err != nil {
			b.Fatal(err)
		}
	}
}

// runPaired runs raw and op alternately b.N times each and reports the
// median duration of each and their ratio.
func runPaired(b *testing.B, raw, op func(i int)) {
	rawNs := make([]int64, b.N)
	opNs := make([]int64, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		raw(i)
		t1 := time.Now()
		op(i)
		t2 := time.Now()
		rawNs[i], opNs[i] = int64(t1.Sub(t0)), int64(t2.Sub(t1))
	}
	b.StopTimer()
	rawMed, opMed := median(rawNs), median(opNs)
	b.ReportMetric(float64(rawMed), "raw-p50-ns")
	b.ReportMetric(float64(opMed), "op-p50-ns")
	b.ReportMetric(float64(opMed)/float64(rawMed), "ratio")
}

func median(xs []int64) int64 {
	slices.Sort(xs)
	return xs[len(xs)/2]
}

// newBenchVerifier returns a verifier of tokens signed with a fresh alg
// key, consuming into a memory store with room for all of them, and b.N
// such tokens, each with its own jti, and the key that signed them.
func newBenchVerifier(b *testing.B, alg token.Algorithm) (*token.Verifier, []string, token.PublicKey) {
	b.Helper()
	ring := fixture.EphemeralRing(b, alg)
	m := fixture.NewMinter(b, ring, brokertest.NewClock(fixture.Now))
	tokens := make([]string, b.N)
	for i := range tokens {
		minted, err := m.Mint(fixture.MintRequest())
		if err != nil {
			b.Fatal(err)
		}
		tokens[i] = minted.Token
	}
	store := fixture.NewStore(b, brokertest.NewClock(fixture.Now.Add(-time.Hour)), token.MemoryReplayConfig{MaxEntries: 2*b.N + 1024})
	v := fixture.NewVerifier(b, token.VerifierConfig{
		Issuers: []token.TrustedIssuer{{Issuer: fixture.Issuer, Keys: ring}}, Audience: fixture.Audience, Replay: store,
		Now: func() time.Time { return fixture.Now.Add(time.Second) },
	})
	pub, err := ring.LookupKey(context.Background(), ring.Keys()[0].ID)
	if err != nil {
		b.Fatal(err)
	}
	return v, tokens, pub
}
