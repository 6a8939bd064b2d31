package broker

import (
	"log/slog"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/broker/brokertest"
	"github.com/handoffbroker/handoff/shared/sharedtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRelyingParty_RevocationPollLog: a routine poll of the revocation
// list logs at debug only; a failing poll warns once however often it
// fails, the list going stale warns once, and the recovery says so.
func TestRelyingParty_RevocationPollLog(t *testing.T) {
	var logs sharedtest.Buffer
	clock, is, rp := newReadyRP(t, func(c *Config) {
		c.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		// Polls come from Refresh below, not from the timer.
		c.RevocationInterval = time.Hour
		c.RevocationMaxStale = time.Hour
	})
	levels := func(msg string) []string {
		var out []string
		for _, l := range logs.JSONLines(t, msg) {
			out = append(out, l["level"].(string))
		}
		return out
	}
	for range 3 {
		require.NoError(t, rp.Refresh(t.Context()))
	}
	polled := levels("revocation list polled")
	require.NotEmpty(t, polled)
	for _, lv := range polled {
		assert.Equal(t, "DEBUG", lv, "a routine poll logs at debug")
	}
	assert.Empty(t, levels("revocation list poll failed"))

	is.SetDown(brokertest.RevocationsPath, true)
	for range 3 {
		require.Error(t, rp.Refresh(t.Context()))
	}
	assert.Equal(t, []string{"WARN"}, levels("revocation list poll failed"), "a failure warns once, not at every poll")
	assert.Empty(t, levels("revocation list is stale: tokens are refused until a poll succeeds"))

	clock.Advance(2 * time.Hour)
	for range 2 {
		require.Error(t, rp.Refresh(t.Context()))
	}
	assert.Equal(t, []string{"WARN"}, levels("revocation list is stale: tokens are refused until a poll succeeds"))

	is.SetDown(brokertest.RevocationsPath, false)
	require.NoError(t, rp.Refresh(t.Context()))
	assert.Equal(t, []string{"INFO"}, levels("revocation list poll works again"))
	assert.Equal(t, []string{"INFO"}, levels("revocation list is fresh again"))
	assert.NotContains(t, logs.String(), "eyJ", "no token or list in the log")
}
