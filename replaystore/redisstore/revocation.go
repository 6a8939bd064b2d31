package redisstore

import (
	"context"
	"fmt"
	"time"

	"github.com/handoffbroker/handoff/broker/revocation"
	"github.com/redis/go-redis/v9"
)

// markRevoked creates the entry or moves its expiry later, atomically: a
// revocation is never shortened by a later, shorter one, and two replicas
// revoking at once cannot leave the earlier expiry in place.
var markRevoked = redis.NewScript(`
if redis.call('SET', KEYS[1], '1', 'NX', 'PXAT', ARGV[1]) then
	return 1
end
redis.call('PEXPIREAT', KEYS[1], ARGV[1], 'GT')
return 0
`)

// MarkRevoked records key as revoked until until, for every Store sharing
// this Redis. This is where replicas share revocation state: what key means
// (a jti, a subject, a key id) is the caller's choice, under
// RevocationPrefix. Marking an entry again only ever extends it. An until
// already past records nothing.
//
// A token's mark (a revocation.SharedKey) is written twice: under
// RevocationKey, next to the token's replay key, where ConsumeUnlessRevoked
// reads it, and under the key releases before ConsumeUnlessRevoked read,
// so replicas not yet upgraded see it too (docs/STORES.md, Upgrading).
func (s *Store) MarkRevoked(ctx context.Context, key string, until time.Time) error {
	if !until.After(s.cfg.Now()) {
		return nil
	}
	err := s.do(ctx, OpMarkRevoked, func(ctx context.Context) error {
		for _, k := range s.revocationKeys(key) {
			if err := markRevoked.Run(ctx, s.client, []string{k}, until.UnixMilli()).Err(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redisstore: mark revoked: %w", err)
	}
	return nil
}

// IsRevoked reports whether key is marked revoked and the mark has not
// expired, under either of the keys MarkRevoked writes. On error the
// caller must treat the answer as unknown and refuse.
func (s *Store) IsRevoked(ctx context.Context, key string) (bool, error) {
	var n int64
	err := s.do(ctx, OpIsRevoked, func(ctx context.Context) error {
		// One EXISTS per key, not one for both: on Redis Cluster the two
		// keys live in different slots.
		cmds, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, k := range s.revocationKeys(key) {
				p.Exists(ctx, k)
			}
			return nil
		})
		for _, c := range cmds {
			n += c.(*redis.IntCmd).Val()
		}
		return err
	})
	if err != nil {
		return false, fmt.Errorf("redisstore: is revoked: %w", err)
	}
	return n > 0, nil
}

// RevocationKey returns the Redis key under which MarkRevoked records key,
// hashed as RedisKey is. The mark of a token (key a revocation.SharedKey)
// is RevocationPrefix + "{" + the token's RedisKey + "}": the hash tag puts
// it in its replay key's Redis Cluster hash slot, so that one script can
// read the one and write the other.
func (s *Store) RevocationKey(key string) string {
	if replayKey, ok := revocation.ReplayKeyOf(key); ok {
		return s.markKey(replayKey)
	}
	return hashKey(s.cfg.RevocationPrefix, key)
}

// markKey is the RevocationKey of the token whose replay key is replayKey.
func (s *Store) markKey(replayKey string) string {
	return wrapHashKey(s.cfg.RevocationPrefix+"{", s.cfg.KeyPrefix, replayKey, "}")
}

// revocationKeys are the keys MarkRevoked writes for key: RevocationKey
// and, for a token's mark, the key of releases before ConsumeUnlessRevoked.
func (s *Store) revocationKeys(key string) []string {
	k := s.RevocationKey(key)
	if legacy := hashKey(s.cfg.RevocationPrefix, key); legacy != k {
		return []string{k, legacy}
	}
	return []string{k}
}

// legacyMarkKey is where releases before ConsumeUnlessRevoked wrote the
// mark of the token whose replay key is replayKey, and still do while
// they run beside this one (docs/STORES.md, Upgrading). It carries no
// hash tag, so on Redis Cluster it may lie in another slot than the
// replay key.
func (s *Store) legacyMarkKey(replayKey string) string {
	return hashKey(s.cfg.RevocationPrefix, revocation.SharedKeyOf(replayKey))
}
