package main

import (
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestCheckLoopback(t *testing.T) {
	tests := []struct {
		name    string
		give    string
		wantErr bool
	}{
		{name: "ok/ipv4_loopback", give: "http://127.0.0.1:8082"},
		{name: "ok/other_ipv4_loopback", give: "http://127.0.0.2:8082"},
		{name: "ok/ipv6_loopback", give: "http://[::1]:8082"},
		{name: "ok/localhost", give: "http://localhost:8082"},
		{name: "fail/remote_host", give: "http://example.com", wantErr: true},
		{name: "fail/private_address", give: "http://10.0.0.1:8082", wantErr: true},
		{name: "fail/https", give: "https://127.0.0.1:8082", wantErr: true},
		{name: "fail/no_host", give: "/handoff", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkLoopback(tt.give)
			if tt.wantErr {
				assert.Error(t, err)
				return
			}
			assert.NoError(t, err)
		})
	}
}

func TestNearestRank(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	tests := []struct {
		name   string
		give   []time.Duration
		giveQ  float64
		wantAt time.Duration
	}{
		{name: "ok/p50_of_100", give: hundred, giveQ: 0.50, wantAt: 50 * time.Millisecond},
		{name: "ok/p99_of_100", give: hundred, giveQ: 0.99, wantAt: 99 * time.Millisecond},
		{name: "ok/p100_is_max", give: hundred, giveQ: 1, wantAt: 100 * time.Millisecond},
		{name: "ok/one_value", give: []time.Duration{time.Second}, giveQ: 0.99, wantAt: time.Second},
		{name: "ok/empty", giveQ: 0.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.wantAt, nearestRank(tt.give, tt.giveQ))
		})
	}
}

func TestConfigValidate_ReportsEveryProblem(t *testing.T) {
	_, err := parseFlags([]string{"--target", "http://example.com", "--n", "0", "--mode", "both"}, io.Discard)

	assert.ErrorContains(t, err, "--keys-dir")
	assert.ErrorContains(t, err, "--target")
	assert.ErrorContains(t, err, "--n")
	assert.ErrorContains(t, err, "--mode")
}

func TestParseFlags_PageMode(t *testing.T) {
	t.Setenv("LOAD_PASSWORD", "")
	c, err := parseFlags([]string{"--mode", "page", "--target", "http://localhost:8081"}, io.Discard)

	assert.NoError(t, err, "page mode signs in instead of minting: no --keys-dir")
	assert.False(t, c.Replay, "page mode has no second pass")
	assert.Equal(t, "alice", c.User)
	assert.Equal(t, demoPassword, c.Password)
}

func TestParseFlags_PagePasswordFromEnvironment(t *testing.T) {
	t.Setenv("LOAD_PASSWORD", "from-env")
	c, err := parseFlags([]string{"--mode", "page", "--target", "http://localhost:8081", "--user", "bob"}, io.Discard)

	assert.NoError(t, err)
	assert.Equal(t, "bob", c.User)
	assert.Equal(t, "from-env", c.Password)
}

func TestPageToken(t *testing.T) {
	tests := []struct {
		name      string
		give      string
		wantToken string
		wantOK    bool
	}{
		{name: "ok/autosubmit_page", give: `<form><input type="hidden" name="token" value="aa.bb.cc"></form>`, wantToken: "aa.bb.cc", wantOK: true},
		{name: "fail/no_token_field", give: `<form id="login"></form>`},
		{name: "fail/not_a_jws", give: `<input type="hidden" name="token" value="aa.bb">`, wantToken: "aa.bb"},
		{name: "fail/unterminated", give: `<input type="hidden" name="token" value="aa.bb.cc`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, ok := pageToken([]byte(tt.give))

			assert.Equal(t, tt.wantOK, ok)
			if tt.wantOK {
				assert.Equal(t, tt.wantToken, tok)
			}
		})
	}
}
