package redisstore_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/replaystore/redisstore"
)

// BenchmarkConsume measures fresh consumes from parallel callers against the
// Redis at REDIS_URL. Its baseline is a bare PING over the same client: the
// ratio shows what SET NX PXAT costs beyond the round trip.
func BenchmarkConsume(b *testing.B) {
	s, _ := newStore(b, redisstore.Config{Timeout: 5 * time.Second})
	ctx := context.Background()
	var n atomic.Int64 // across every run of the sub-benchmark: keys stay fresh

	b.Run("ping_baseline", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := s.Ping(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("consume", func(b *testing.B) {
		exp := time.Now().Add(time.Minute)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				key := "bench " + strconv.FormatInt(n.Add(1), 10)
				if err := s.Consume(ctx, key, exp); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}
