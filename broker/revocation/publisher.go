package revocation

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/handoffbroker/handoff/broker/token"
)

// Publisher serves an issuer's signed revocation list: it signs
// the state's live entries and re-signs only when they change, when the
// keyring's current key changes, or when half the list's lifetime has
// passed. It is safe for concurrent use.
type Publisher struct {
	state  *State
	minter *token.Minter
	ttl    time.Duration

	mu       sync.Mutex
	token    string
	etag     string
	version  uint64
	kid      string
	signedAt time.Time
}

// NewPublisher returns a publisher of state's entries, signed by
// minter as lists valid for ttl (zero means token.DefaultRevocationListTTL).
func NewPublisher(state *State, minter *token.Minter, ttl time.Duration) (*Publisher, error) {
	if ttl == 0 {
		ttl = token.DefaultRevocationListTTL
	}
	var errs []error
	if state == nil {
		errs = append(errs, errors.New("state is required"))
	}
	if minter == nil {
		errs = append(errs, errors.New("minter is required"))
	}
	if ttl < 2*time.Second || ttl > token.MaxRevocationListTTL {
		errs = append(errs, fmt.Errorf("ttl must be between 2s and %v", token.MaxRevocationListTTL))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("broker: revocation publisher: %w", err)
	}
	return &Publisher{state: state, minter: minter, ttl: ttl}, nil
}

// Current returns the signed list and its strong ETag (a quoted digest of
// the list), re-signing when needed. A response with that ETag answers a
// request whose If-None-Match equals it with 304 Not Modified. It reloads
// the state's directory first, so the list carries entries other processes
// added a moment ago.
func (p *Publisher) Current() (token, etag string, err error) {
	if err := p.state.Reload(); err != nil {
		return "", "", err
	}
	kid, err := p.minter.KeyID()
	if err != nil {
		return "", "", err
	}
	now := p.minter.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	v := p.state.Version()
	if p.token != "" && v == p.version && kid == p.kid && now.Sub(p.signedAt) < p.ttl/2 && !now.Before(p.signedAt) {
		return p.token, p.etag, nil
	}
	token, err = p.minter.SignRevocationList(p.state.Snapshot(), p.ttl)
	if err != nil {
		return "", "", err
	}
	sum := sha256.Sum256([]byte(token))
	p.token, p.etag = token, `"`+base64.RawURLEncoding.EncodeToString(sum[:18])+`"`
	p.version, p.kid, p.signedAt = v, kid, now
	return p.token, p.etag, nil
}
