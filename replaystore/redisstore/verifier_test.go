package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/handoffbroker/handoff/broker"
	"github.com/handoffbroker/handoff/replaystore/redisstore"
)

const (
	testIssuer   = "https://issuer.test"
	testAudience = "https://relying.test"
)

// mintFor returns a minter and a verifier that trusts it and consumes jtis
// in store.
func mintFor(t testing.TB, store broker.ReplayStore) (*broker.Minter, *broker.Verifier) {
	t.Helper()
	keys, err := broker.NewEphemeralKeyring(broker.EdDSA)
	require.NoError(t, err)
	m, err := broker.NewMinter(broker.MinterConfig{Issuer: testIssuer, Keys: keys})
	require.NoError(t, err)
	v, err := broker.NewVerifier(broker.VerifierConfig{
		Issuers:  []string{testIssuer},
		Audience: testAudience,
		Keys:     keys,
		Replay:   store,
	})
	require.NoError(t, err)
	return m, v
}

func mint(t testing.TB, m *broker.Minter) string {
	t.Helper()
	tok, err := m.Mint(broker.MintRequest{
		Subject:  "alice",
		Audience: testAudience,
		Task:     broker.Task{ID: "transfer-42", Action: "approve"},
	})
	require.NoError(t, err)
	return tok.Token
}

func TestVerifier_WithRedisStore(t *testing.T) {
	live, _ := newReplicas(t, 2, redisstore.Config{})
	down, err := redisstore.New(redisstore.Config{URL: "redis://" + closedPort(t) + "/0"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = down.Close() })

	tests := []struct {
		name       string
		giveFirst  *redisstore.Store // nil: the token is fresh
		giveStore  *redisstore.Store
		wantReason broker.Reason
	}{
		{name: "ok/fresh_token", giveStore: live[0]},
		{name: "fail/replayed", giveFirst: live[0], giveStore: live[0], wantReason: broker.ReasonReplayed},
		{name: "fail/replayed_at_other_replica", giveFirst: live[0], giveStore: live[1], wantReason: broker.ReasonReplayed},
		{name: "fail/redis_unreachable", giveStore: down, wantReason: broker.ReasonUnavailable},
	}
	keys, err := broker.NewEphemeralKeyring(broker.EdDSA)
	require.NoError(t, err)
	m, err := broker.NewMinter(broker.MinterConfig{Issuer: testIssuer, Keys: keys})
	require.NoError(t, err)
	verifier := func(store *redisstore.Store) *broker.Verifier {
		v, err := broker.NewVerifier(broker.VerifierConfig{
			Issuers: []string{testIssuer}, Audience: testAudience, Keys: keys, Replay: store,
		})
		require.NoError(t, err)
		return v
	}
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := mint(t, m)
			if tt.giveFirst != nil {
				_, err := verifier(tt.giveFirst).Verify(ctx, tok, broker.Expect{})
				require.NoError(t, err)
			}
			got, err := verifier(tt.giveStore).Verify(ctx, tok, broker.Expect{})
			if tt.wantReason == "" {
				require.NoError(t, err)
				assert.Equal(t, "alice", got.Claims().Subject)
				return
			}
			assert.Nil(t, got)
			assert.Equal(t, tt.wantReason, broker.ReasonOf(err))
		})
	}
}

func TestVerifier_SlowRedisIsUnavailable(t *testing.T) {
	rs := startRedisServer(t)
	s, err := redisstore.New(redisstore.Config{URL: rs.url(), Timeout: 200 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	m, v := mintFor(t, s)
	ctx := context.Background()

	admin := adminClient(t, rs.url())
	require.NoError(t, admin.Do(ctx, "CLIENT", "PAUSE", 1000, "WRITE").Err())
	_, err = v.Verify(ctx, mint(t, m), broker.Expect{})
	require.NoError(t, admin.Do(ctx, "CLIENT", "UNPAUSE").Err())
	assert.Equal(t, broker.ReasonUnavailable, broker.ReasonOf(err))
}
