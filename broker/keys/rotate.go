package keys

import (
	"errors"
	"fmt"
	"time"

	"github.com/handoffbroker/handoff/broker/internal/seconds"
	"github.com/handoffbroker/handoff/broker/token"
)

// ErrRotationInProgress is returned by Rotate while a next key exists.
var ErrRotationInProgress = errors.New("broker: a key rotation is already in progress")

// Rotate starts a key rotation. It generates a key of alg that is published
// at once (state next) and starts signing publishFor later, rounded up to a
// whole second. At that moment, on every process sharing the key
// directory, the new key becomes current and the old current key becomes
// retired; the retired key stays published for RetainRetired so the tokens
// it signed still verify, then expires and Prune deletes it. Nothing else
// has to happen: every state follows from the keys' activation times.
//
// publishFor must be at least the JWKS Cache-Control max-age, so verifiers
// that refresh on schedule already hold the key when the first token signed
// by it arrives. (A verifier that does not, keys.Remote, refetches the JWKS
// on an unknown kid, at most once per cool-down.)
//
// Rotate refuses to start a second rotation while a next key exists
// (ErrRotationInProgress), and refuses to rotate a keyring without a current
// key (Generate one instead). It re-reads the directory first, so it sees
// rotations by other processes; two processes rotating in the same instant
// can still both succeed, in which case the later-activating key wins and
// the other is retired after a brief time as current.
func (k *Keyring) Rotate(alg token.Algorithm, publishFor time.Duration) (Info, error) {
	if !alg.Supported() {
		return Info{}, fmt.Errorf("broker: unsupported algorithm %q", alg)
	}
	if publishFor <= 0 {
		return Info{}, errors.New("broker: rotate: publishFor must be positive (Generate makes a key that signs at once)")
	}
	if err := k.Reload(); err != nil {
		return Info{}, err
	}
	hasCurrent := false
	for _, info := range k.Keys() {
		switch info.State {
		case Next:
			return Info{}, fmt.Errorf("%w: key %s activates at %s", ErrRotationInProgress, info.ID, info.ActivatesAt.UTC().Format(time.RFC3339))
		case Current:
			hasCurrent = true
		}
	}
	if !hasCurrent {
		return Info{}, errors.New("broker: rotate: no current key to rotate from (generate one)")
	}
	return k.Generate(alg, seconds.Ceil(k.cfg.Now().Add(publishFor)))
}

// RevokeAndReplace revokes the key kid at once, as Revoke does, for a key
// that is compromised or must go now. When kid is the current key, it first
// generates an immediately current replacement of alg, so signing never
// stops; the replacement is returned (nil when kid was not current).
// Verifiers learn the replacement on the first token that names it (an
// unknown kid makes keys.Remote refetch the JWKS).
//
// It prunes expired keys before revoking: states are derived from the keys
// that remain, and an expired key whose successor vanished would otherwise
// be published again. Retired keys stay published, for RetainRetired after
// the replacement activated.
//
// Removing kid from the JWKS reaches a verifier only at its next JWKS
// refresh; put kid on the revocation list too (revocation.State.RevokeKey)
// so verifiers refuse its tokens within one list poll.
func (k *Keyring) RevokeAndReplace(kid string, alg token.Algorithm) (*Info, error) {
	if !alg.Supported() {
		return nil, fmt.Errorf("broker: unsupported algorithm %q", alg)
	}
	if err := k.Reload(); err != nil {
		return nil, err
	}
	if _, err := k.Prune(); err != nil {
		return nil, err
	}
	var state State
	for _, info := range k.Keys() {
		if info.ID == kid {
			state = info.State
		}
	}
	if state == "" {
		return nil, fmt.Errorf("broker: no key %q", kid)
	}
	var replacement *Info
	if state == Current {
		info, err := k.Generate(alg, time.Time{})
		if err != nil {
			return nil, err
		}
		replacement = &info
	}
	if err := k.Revoke(kid); err != nil {
		return replacement, err
	}
	if replacement != nil {
		for _, info := range k.Keys() {
			if info.ID == replacement.ID {
				*replacement = info
			}
		}
	}
	return replacement, nil
}
