package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/handoffbroker/handoff/broker/token"
	"github.com/redis/go-redis/v9"
)

// MarkDone records key as done until until, for every Store sharing this
// Redis, in one atomic SET NX PXAT under CompletionPrefix. It reports true
// when this call recorded it and false when key was already recorded: of
// any number of concurrent calls for one key, on any replica, exactly one
// gets true. What key means (a task of an issuer, for SERVER2) is the
// caller's choice. until is raised to at least MinRetention from now.
//
// A call that timed out, or whose reply was lost and retried, may still
// have recorded key: the retry then reports false. The error case leaves
// the caller unable to tell; it must treat the work as not done by it.
func (s *Store) MarkDone(ctx context.Context, key string, until time.Time) (bool, error) {
	until = token.RetainUntil(until, s.cfg.Now())
	var first bool
	err := s.do(ctx, OpMarkDone, func(ctx context.Context) error {
		res, err := s.client.SetArgs(ctx, s.CompletionKey(key), 1, redis.SetArgs{Mode: "NX", ExpireAt: until}).Result()
		switch {
		case errors.Is(err, redis.Nil):
			return nil
		case err != nil:
			return err
		}
		first = res == "OK"
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("redisstore: mark done: %w", err)
	}
	return first, nil
}

// IsDone reports whether MarkDone recorded key and the record has not
// expired.
func (s *Store) IsDone(ctx context.Context, key string) (bool, error) {
	var n int64
	err := s.do(ctx, OpIsDone, func(ctx context.Context) error {
		var err error
		n, err = s.client.Exists(ctx, s.CompletionKey(key)).Result()
		return err
	})
	if err != nil {
		return false, fmt.Errorf("redisstore: is done: %w", err)
	}
	return n > 0, nil
}

// CompletionKey returns the Redis key under which MarkDone records key,
// hashed as RedisKey is.
func (s *Store) CompletionKey(key string) string { return hashKey(s.cfg.CompletionPrefix, key) }
