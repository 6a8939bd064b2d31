package redisstore_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/handoffbroker/handoff/broker/token"
	"github.com/handoffbroker/handoff/replaystore/redisstore"
	"github.com/handoffbroker/handoff/replaystore/redisstore/redistest"
)

// BenchmarkConsume measures fresh consumes from parallel callers against the
// Redis at REDIS_URL. Its baseline is a bare PING over the same client: the
// ratio shows what SET NX PXAT, and the script a relying party runs
// (ConsumeUnlessRevoked), cost beyond the round trip.
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
	b.Run("consume_unless_revoked", func(b *testing.B) {
		exp := time.Now().Add(time.Minute)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				key := "bench " + strconv.FormatInt(n.Add(1), 10)
				if err := s.ConsumeUnlessRevoked(ctx, key, exp); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// BenchmarkReplicatedConsume measures a handoff's store work, one caller,
// on a master and a replica of the benchmark's own: the two round trips of
// the release before (IsRevoked of the shared mark, then Consume), the one
// script that replaced them (ConsumeUnlessRevoked), and the same with
// ?wait_replicas=1 (the script and WAIT 1 pipelined: one round trip whose
// reply comes once the replica has the write). The plain Consume and a
// bare SET NX PXAT + WAIT 1 pipeline are the baselines of the two pairs.
// The difference between waiting and not bounds the replication window of
// an idle loopback pair.
func BenchmarkReplicatedConsume(b *testing.B) {
	master := redistest.Start(b)
	replica := redistest.Start(b, "--replicaof", "127.0.0.1", master.Port())
	redistest.WaitReplicaSynced(b, replica.Addr())
	s, admin := newStore(b, redisstore.Config{URL: master.URL()})
	waiting, _ := newStore(b, redisstore.Config{URL: master.URL(), WaitReplicas: 1, WaitTimeout: time.Second, Timeout: 5 * time.Second})
	ctx := context.Background()
	var n atomic.Int64
	key := func() string { return token.ReplayKey("https://issuer.test", "bench-"+strconv.FormatInt(n.Add(1), 10)) }

	b.Run("consume", func(b *testing.B) {
		exp := time.Now().Add(time.Minute)
		for b.Loop() {
			if err := s.Consume(ctx, key(), exp); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("is_revoked_then_consume", func(b *testing.B) {
		exp := time.Now().Add(time.Minute)
		for b.Loop() {
			k := key()
			if revoked, err := s.IsRevoked(ctx, "jti:"+k); err != nil || revoked {
				b.Fatal(revoked, err)
			}
			if err := s.Consume(ctx, k, exp); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("consume_unless_revoked", func(b *testing.B) {
		exp := time.Now().Add(time.Minute)
		for b.Loop() {
			if err := s.ConsumeUnlessRevoked(ctx, key(), exp); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("consume_unless_revoked_wait_1", func(b *testing.B) {
		exp := time.Now().Add(time.Minute)
		for b.Loop() {
			if err := waiting.ConsumeUnlessRevoked(ctx, key(), exp); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("set_nx_wait_1", func(b *testing.B) {
		exp := time.Now().Add(time.Minute)
		conn := admin.Conn()
		defer conn.Close()
		for b.Loop() {
			k := s.RedisKey(key())
			var set *redis.StatusCmd
			var wait *redis.Cmd
			if _, err := conn.Pipelined(ctx, func(p redis.Pipeliner) error {
				set = p.SetArgs(ctx, k, 1, redis.SetArgs{Mode: "NX", ExpireAt: exp})
				wait = p.Do(ctx, "WAIT", 1, 1000)
				return nil
			}); err != nil || set.Val() != "OK" {
				b.Fatalf("SET NX: %q, %v", set.Val(), err)
			}
			if acked, err := wait.Int(); err != nil || acked < 1 {
				b.Fatalf("WAIT 1: %d replicas acknowledged, %v", acked, err)
			}
		}
	})
}
