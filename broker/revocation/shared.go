package revocation

import (
	"context"
	"strings"
	"time"

	"github.com/handoffbroker/handoff/broker/token"
)

// Sharer is a store that replicas of a relying service share (the
// Redis replay store, for one), so a revocation one replica learned takes
// effect at all of them before their own next poll. Keys are
// SharedKey values; implementations add their own prefix.
type Sharer interface {
	// MarkRevoked records key as revoked until until.
	MarkRevoked(ctx context.Context, key string, until time.Time) error
	// IsRevoked reports whether key is recorded and not yet expired.
	IsRevoked(ctx context.Context, key string) (bool, error)
}

// sharedJTI starts every SharedKey.
const sharedJTI = "jti:"

// SharedKey is the key under which a revoked token is recorded in
// a Sharer: "jti:" and the token's replay key (token.ReplayKey: its
// issuer, a space and its jti).
func SharedKey(issuer, jti string) string { return sharedJTI + token.ReplayKey(issuer, jti) }

// SharedKeyOf is the SharedKey of the token whose replay key is
// replayKey: the inverse of ReplayKeyOf.
func SharedKeyOf(replayKey string) string { return sharedJTI + replayKey }

// ReplayKeyOf returns the replay key of the token sharedKey names, and
// whether sharedKey is a SharedKey at all. A store uses it to keep a
// token's revocation mark next to its replay record (one Redis Cluster
// hash slot, for ConsumeGuard).
func ReplayKeyOf(sharedKey string) (string, bool) {
	return strings.CutPrefix(sharedKey, sharedJTI)
}

// ConsumeGuard is a Sharer that is also a token.ReplayStore and can do
// both of a handoff's store questions in one atomic step: the Redis store
// answers it with one script, one round trip instead of two.
type ConsumeGuard interface {
	Sharer
	token.ReplayStore
	// ConsumeUnlessRevoked does what IsRevoked(SharedKey of the token
	// whose replay key is key) and then Consume(key, expiresAt) would,
	// atomically: token.ErrMarkedRevoked, recording nothing, when the
	// token is marked revoked; else what Consume returns
	// (token.ErrAlreadyUsed for a used token, another error when the store
	// cannot tell).
	ConsumeUnlessRevoked(ctx context.Context, key string, expiresAt time.Time) error
}

// GuardedReplay returns the replay store a token.Verifier consumes with
// when its revocation checker leaves the question to g out
// (Remote.CheckRevokedExceptShared on a Remote whose Shared is g): its
// Consume is g.ConsumeUnlessRevoked, so the shared mark is still asked,
// in the consume's own round trip. It reports g's RemembersSince, if g
// has one.
func GuardedReplay(g ConsumeGuard) token.ReplayStore {
	if f, ok := g.(interface{ RemembersSince() time.Time }); ok {
		return guardedRemembering{guarded{g}, f.RemembersSince}
	}
	return guarded{g}
}

type guarded struct{ g ConsumeGuard }

func (s guarded) Consume(ctx context.Context, key string, expiresAt time.Time) error {
	return s.g.ConsumeUnlessRevoked(ctx, key, expiresAt)
}

type guardedRemembering struct {
	guarded
	since func() time.Time
}

func (s guardedRemembering) RemembersSince() time.Time { return s.since() }
