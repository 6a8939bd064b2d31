package redisstore_test

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/handoffbroker/handoff/replaystore/redisstore"
	"github.com/handoffbroker/handoff/replaystore/redisstore/redistest"
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

// BenchmarkReplicatedConsume measures what waiting for one replica would
// cost, on a master and a replica of the benchmark's own: the store's
// Consume as it is (acknowledged by the master alone), then the same
// SET NX PXAT pipelined with WAIT 1 (one round trip), whose reply comes
// once the replica has acknowledged the write. The difference bounds the
// replication window of an idle loopback pair; the store does not send
// WAIT, and this prices the option.
func BenchmarkReplicatedConsume(b *testing.B) {
	master := redistest.Start(b)
	replica := redistest.Start(b, "--replicaof", "127.0.0.1", master.Port())
	rc := adminClient(b, replica.URL())
	redistest.WaitFor(b, 10*time.Second, func() bool {
		info, err := rc.Info(context.Background(), "replication").Result()
		return err == nil && strings.Contains(info, "master_link_status:up")
	}, "the replica to sync")
	s, admin := newStore(b, redisstore.Config{URL: master.URL()})
	ctx := context.Background()
	var n atomic.Int64

	b.Run("consume", func(b *testing.B) {
		exp := time.Now().Add(time.Minute)
		for b.Loop() {
			if err := s.Consume(ctx, "bench "+strconv.FormatInt(n.Add(1), 10), exp); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("set_nx_wait_1", func(b *testing.B) {
		exp := time.Now().Add(time.Minute)
		conn := admin.Conn()
		defer conn.Close()
		for b.Loop() {
			key := s.RedisKey("bench " + strconv.FormatInt(n.Add(1), 10))
			var set *redis.StatusCmd
			var wait *redis.Cmd
			if _, err := conn.Pipelined(ctx, func(p redis.Pipeliner) error {
				set = p.SetArgs(ctx, key, 1, redis.SetArgs{Mode: "NX", ExpireAt: exp})
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
