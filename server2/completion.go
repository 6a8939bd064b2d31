package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"sync"
	"time"
)

// maxCompletions bounds the completions the memory store holds: 16-byte
// keys and 8-byte expiries, about 56 MB of heap when full. Each needs a
// verified token, so only the issuer can fill it.
const maxCompletions = 1_000_000

// errCompletionsFull is returned by MarkDone when the memory store is full.
// It refuses rather than forget a live completion, which would let the
// task be done again.
var errCompletionsFull = errors.New("completion store full")

// completionStore records which tasks are done. Completion is a fact about
// the task, not about a session or a token: two handoffs for one task, or
// two tokens on the task API, must not both complete it.
type completionStore interface {
	// MarkDone atomically records key as done until until. It reports
	// true when this call recorded it and false when key was recorded
	// already; of concurrent calls for one key exactly one gets true.
	MarkDone(ctx context.Context, key string, until time.Time) (bool, error)
	// IsDone reports whether key is recorded.
	IsDone(ctx context.Context, key string) (bool, error)
}

// completionKey names a task in a completionStore: its issuer and id, so
// two issuers' tasks with one id stay apart.
func completionKey(issuer, taskID string) string { return "task:" + issuer + " " + taskID }

// memoryCompletions is the completionStore of one process, keyed by a
// 128-bit SHA-256 prefix of the key like the memory replay store. It
// forgets everything on restart.
type memoryCompletions struct {
	now func() time.Time
	max int

	mu      sync.Mutex
	entries map[[16]byte]int64 // expiry, unix nanoseconds
}

func newMemoryCompletions(now func() time.Time) *memoryCompletions {
	return &memoryCompletions{now: now, max: maxCompletions, entries: make(map[[16]byte]int64)}
}

func completionHash(key string) [16]byte {
	sum := sha256.Sum256([]byte(key))
	var h [16]byte
	copy(h[:], sum[:16])
	return h
}

// MarkDone implements completionStore.
func (m *memoryCompletions) MarkDone(_ context.Context, key string, until time.Time) (bool, error) {
	h := completionHash(key)
	now := m.now().UnixNano()
	m.mu.Lock()
	defer m.mu.Unlock()
	if exp, ok := m.entries[h]; ok && exp > now {
		return false, nil
	}
	if len(m.entries) >= m.max {
		m.sweepLocked(now)
		if len(m.entries) >= m.max {
			return false, errCompletionsFull
		}
	}
	m.entries[h] = until.UnixNano()
	return true, nil
}

// IsDone implements completionStore.
func (m *memoryCompletions) IsDone(_ context.Context, key string) (bool, error) {
	h := completionHash(key)
	m.mu.Lock()
	defer m.mu.Unlock()
	exp, ok := m.entries[h]
	return ok && exp > m.now().UnixNano(), nil
}

// sweep drops expired completions.
func (m *memoryCompletions) sweep() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweepLocked(m.now().UnixNano())
}

func (m *memoryCompletions) sweepLocked(now int64) {
	for h, exp := range m.entries {
		if exp <= now {
			delete(m.entries, h)
		}
	}
}
