package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/handoffbroker/handoff/broker/keys"
	"github.com/handoffbroker/handoff/broker/revocation"
	"github.com/handoffbroker/handoff/broker/token"
	"github.com/handoffbroker/handoff/shared/cli"
)

// listedKey is one key in the output of keys list --json. Times are RFC
// 3339 in UTC; RetiredAt is absent for a key that has not retired.
type listedKey struct {
	ID          string          `json:"kid"`
	Algorithm   token.Algorithm `json:"alg"`
	State       keys.State      `json:"state"`
	CreatedAt   time.Time       `json:"created_at"`
	ActivatesAt time.Time       `json:"activates_at"`
	RetiredAt   *time.Time      `json:"retired_at,omitempty"`
}

// setupKeysList is `keys list`: it prints the keys of the directory in
// activation order: a table, or with --json one JSON array of listedKey for
// scripts and tests. Neither form holds key material.
func setupKeysList(stdout io.Writer) func(*flag.FlagSet) func(context.Context, []string) error {
	return func(fs *flag.FlagSet) func(context.Context, []string) error {
		cfg, all, envErr := configured()
		expose(fs, all, "keys-dir")
		asJSON := fs.Bool("json", false, "print a JSON array (kid, alg, state, created_at, activates_at, retired_at) instead of a table")
		return func(_ context.Context, args []string) error {
			if err := parseConfigured(fs, args, envErr); err != nil {
				return err
			}
			return runKeysList(cfg, *asJSON, stdout)
		}
	}
}

func runKeysList(cfg *Config, asJSON bool, stdout io.Writer) error {
	keys, err := cfg.openKeyring(time.Now)
	if err != nil {
		return err
	}
	if asJSON {
		list := []listedKey{}
		for _, k := range keys.Keys() {
			lk := listedKey{ID: k.ID, Algorithm: k.Algorithm, State: k.State,
				CreatedAt: k.CreatedAt.UTC(), ActivatesAt: k.ActivatesAt.UTC()}
			if !k.RetiredAt.IsZero() {
				retired := k.RetiredAt.UTC()
				lk.RetiredAt = &retired
			}
			list = append(list, lk)
		}
		b, err := marshalJSON(list)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s\n", b)
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KID\tALG\tSTATE\tCREATED\tACTIVATES\tRETIRED")
	for _, k := range keys.Keys() {
		retired := "-"
		if !k.RetiredAt.IsZero() {
			retired = k.RetiredAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Algorithm, k.State,
			k.CreatedAt.UTC().Format(time.RFC3339), k.ActivatesAt.UTC().Format(time.RFC3339), retired)
	}
	return tw.Flush()
}

// setupKeysRotate is `keys rotate`: it starts a key rotation, a next key
// published at once and signing --publish-for later (default 2 ×
// --jwks-max-age), when every instance sharing the directory switches to
// it.
func setupKeysRotate(stdout io.Writer) func(*flag.FlagSet) func(context.Context, []string) error {
	return func(fs *flag.FlagSet) func(context.Context, []string) error {
		cfg, all, envErr := configured()
		expose(fs, all, "keys-dir", "jwks-max-age")
		alg := fs.String("alg", cfg.KeyAlg, "algorithm of the new key: EdDSA or ES256 (default: key-alg, SERVER1_KEY_ALG)")
		publishFor := fs.Duration("publish-for", 0, "how long the new key is published before it signs (default 2 × --jwks-max-age)")
		return func(_ context.Context, args []string) error {
			if err := parseConfigured(fs, args, envErr); err != nil {
				return err
			}
			if *publishFor == 0 {
				*publishFor = cfg.publishFor()
			}
			return runKeysRotate(cfg, *alg, *publishFor, stdout)
		}
	}
}

func runKeysRotate(cfg *Config, alg string, publishFor time.Duration, stdout io.Writer) error {
	// A key that signs before verifiers refreshing on schedule hold it
	// costs each of them an unknown-kid fetch, and fails handoffs while
	// their cool-down lasts.
	if publishFor < cfg.JWKSMaxAge {
		return cli.Usagef("--publish-for %v is shorter than --jwks-max-age %v: verifiers would not hold the key when it starts signing", publishFor, cfg.JWKSMaxAge)
	}
	ring, err := cfg.openKeyring(time.Now)
	if err != nil {
		return err
	}
	info, err := ring.Rotate(token.Algorithm(alg), publishFor)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "rotating to key %s (%s): published now, signs from %s\n",
		info.ID, info.Algorithm, info.ActivatesAt.UTC().Format(time.RFC3339))
	return nil
}

// setupKeysRevoke is `keys revoke`: it withdraws a compromised key at
// once. It puts the kid on the revocation list, so relying services refuse
// its tokens within one list poll, then deletes the key (it leaves the
// JWKS), replacing it first when it was the current key. KID may stand
// before, among or after the flags, and may start with '-'; "--" ends the
// flags.
func setupKeysRevoke(stdout io.Writer) func(*flag.FlagSet) func(context.Context, []string) error {
	return func(fs *flag.FlagSet) func(context.Context, []string) error {
		cfg, all, envErr := configured()
		expose(fs, all, "keys-dir", "revocation-dir", "key-alg")
		return func(_ context.Context, args []string) error {
			operands, err := parseOperands(fs, args)
			if err != nil {
				return err
			}
			if envErr != nil {
				return cli.Usage(envErr)
			}
			switch {
			case len(operands) == 0:
				return cli.Usage(errors.New("want keys revoke KID (see keys list)"))
			case len(operands) > 1:
				return cli.Usagef("want one KID, got %q (an argument that is not a flag of keys revoke counts as one)", operands)
			}
			return runKeysRevoke(cfg, operands[0], stdout)
		}
	}
}

func runKeysRevoke(cfg *Config, kid string, stdout io.Writer) error {
	ring, err := cfg.openKeyring(time.Now)
	if err != nil {
		return err
	}
	found := false
	for _, k := range ring.Keys() {
		found = found || k.ID == kid
	}
	if !found {
		return fmt.Errorf("no key %q in %s", kid, cfg.KeysDir)
	}
	state, err := revocation.NewState(revocation.StateConfig{Dir: cfg.revocationDir()})
	if err != nil {
		return err
	}
	// Listed first: should deleting the key fail, its tokens are refused
	// anyway. 24h is the longest a relying service keeps a JWKS it cannot
	// refresh (SERVER2's jwks-max-stale).
	if err := state.RevokeKey(kid, time.Now().Add(24*time.Hour)); err != nil {
		return err
	}
	replacement, err := ring.RevokeAndReplace(kid, token.Algorithm(cfg.KeyAlg))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "revoked key %s: removed from the JWKS and listed on the revocation list\n", kid)
	if replacement != nil {
		fmt.Fprintf(stdout, "generated replacement key %s (%s), %s from %s\n", replacement.ID, replacement.Algorithm,
			replacement.State, replacement.ActivatesAt.UTC().Format(time.RFC3339))
	}
	return nil
}

// setupRevokeToken is `revoke-token`: it withdraws one token by its jti,
// for scripts and operators; running servers pick it up within a second.
func setupRevokeToken(stdout io.Writer) func(*flag.FlagSet) func(context.Context, []string) error {
	return func(fs *flag.FlagSet) func(context.Context, []string) error {
		cfg, all, envErr := configured()
		expose(fs, all, "keys-dir", "revocation-dir")
		jti := fs.String("jti", "", "id of the token to revoke. Required.")
		expFlag := fs.String("exp", "", "the token's expiry, RFC 3339 (default: now + max-token-ttl, SERVER1_MAX_TOKEN_TTL, the latest it can expire)")
		return func(_ context.Context, args []string) error {
			if err := parseConfigured(fs, args, envErr); err != nil {
				return err
			}
			if *jti == "" {
				return cli.Usage(errors.New("required: --jti"))
			}
			exp := time.Now().Add(cfg.MaxTokenTTL)
			if *expFlag != "" {
				t, err := time.Parse(time.RFC3339, *expFlag)
				if err != nil {
					return cli.Usagef("--exp: %w", err)
				}
				exp = t
			}
			return runRevokeToken(cfg, *jti, exp, stdout)
		}
	}
}

func runRevokeToken(cfg *Config, jti string, exp time.Time, stdout io.Writer) error {
	state, err := revocation.NewState(revocation.StateConfig{Dir: cfg.revocationDir()})
	if err != nil {
		return err
	}
	if err := state.RevokeToken(jti, exp); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "revoked token %s\n", jti)
	return nil
}
