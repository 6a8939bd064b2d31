package redisstore

import (
	"context"
	"fmt"
	"time"

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
func (s *Store) MarkRevoked(ctx context.Context, key string, until time.Time) error {
	if !until.After(s.cfg.Now()) {
		return nil
	}
	err := s.do(ctx, OpMarkRevoked, func(ctx context.Context) error {
		return markRevoked.Run(ctx, s.client, []string{s.RevocationKey(key)}, until.UnixMilli()).Err()
	})
	if err != nil {
		return fmt.Errorf("redisstore: mark revoked: %w", err)
	}
	return nil
}

// IsRevoked reports whether key is marked revoked and the mark has not
// expired. On error the caller must treat the answer as unknown and refuse.
func (s *Store) IsRevoked(ctx context.Context, key string) (bool, error) {
	var n int64
	err := s.do(ctx, OpIsRevoked, func(ctx context.Context) error {
		var err error
		n, err = s.client.Exists(ctx, s.RevocationKey(key)).Result()
		return err
	})
	if err != nil {
		return false, fmt.Errorf("redisstore: is revoked: %w", err)
	}
	return n > 0, nil
}

// RevocationKey returns the Redis key under which MarkRevoked records key,
// hashed as RedisKey is.
func (s *Store) RevocationKey(key string) string { return hashKey(s.cfg.RevocationPrefix, key) }
