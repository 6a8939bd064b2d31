package main

import (
	"testing"

	"github.com/handoffbroker/handoff/broker/token"
	"github.com/stretchr/testify/assert"
)

// TestDemoTasks_ParamsDigest: every task carries the digest of its own
// parameters, computed once, so a mint need not compute it.
func TestDemoTasks_ParamsDigest(t *testing.T) {
	reg, err := loadRegistry(defaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	book := demoTasks(reg)
	n := 0
	for user, tasks := range book.byUser {
		for _, tk := range tasks {
			n++
			assert.NotEmpty(t, tk.Params, "%s %s", user, tk.ID)
			assert.Equal(t, token.DigestParams(tk.Params), tk.ParamsDigest, "%s %s", user, tk.ID)
		}
	}
	assert.Equal(t, 3, n)
}
