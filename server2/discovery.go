package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/handoffbroker/handoff/broker/fetch"
	"github.com/handoffbroker/handoff/broker/keys"
	"github.com/handoffbroker/handoff/broker/token"
)

// MetadataPath is where an issuer publishes its handoff configuration.
const MetadataPath = "/.well-known/handoff-configuration"

// maxMetadataBytes caps the issuer metadata document read.
const maxMetadataBytes = 64 << 10

// issuerKeys is the KeySource SERVER2 verifies with: the issuer's remote
// JWKS once its URL is known. Until then every lookup fails closed with
// ReasonUnavailable. The URL comes only from configuration or from the
// trusted issuer's metadata, never from a token (a "jku" in a token would let
// its author choose the keys that verify it).
type issuerKeys struct {
	remote atomic.Pointer[keys.Remote]
}

// LookupKey implements token.KeySource.
func (k *issuerKeys) LookupKey(ctx context.Context, kid string) (token.PublicKey, error) {
	rk := k.remote.Load()
	if rk == nil {
		return token.PublicKey{}, &token.Error{Reason: token.ReasonUnavailable, Claim: "kid", Detail: "the issuer's JWKS URL is not discovered yet"}
	}
	return rk.LookupKey(ctx, kid)
}

// Ready reports whether usable keys are cached.
func (k *issuerKeys) Ready() bool {
	rk := k.remote.Load()
	return rk != nil && rk.Ready()
}

// Status describes the cached keys; zero before discovery.
func (k *issuerKeys) Status() keys.RemoteStatus {
	if rk := k.remote.Load(); rk != nil {
		return rk.Status()
	}
	return keys.RemoteStatus{}
}

// issuerMetadata is the part of the issuer's handoff configuration SERVER2
// reads.
type issuerMetadata struct {
	Issuer  string `json:"issuer"`
	JWKSURI string `json:"jwks_uri"`
	// RevocationEndpoint is the signed revocation list; "" when the issuer
	// publishes none.
	RevocationEndpoint string `json:"revocation_endpoint"`
}

// discoverJWKSURL fetches <issuer>/.well-known/handoff-configuration and
// returns its jwks_uri.
func discoverJWKSURL(ctx context.Context, client *http.Client, policy *fetch.Policy) (string, error) {
	md, err := discoverMetadata(ctx, client, policy)
	return md.JWKSURI, err
}

// discoverMetadata fetches <issuer>/.well-known/handoff-configuration, the
// issuer being policy's, and returns it, its URLs checked by policy. client
// comes from metadataClient.
func discoverMetadata(ctx context.Context, client *http.Client, policy *fetch.Policy) (issuerMetadata, error) {
	f, err := newMetadataFetcher(client, policy)
	if err != nil {
		return issuerMetadata{}, err
	}
	return fetchMetadata(ctx, f)
}

// newMetadataFetcher returns the fetcher of policy's issuer's handoff
// configuration.
func newMetadataFetcher(client *http.Client, policy *fetch.Policy) (*fetch.Fetcher[issuerMetadata], error) {
	issuer := policy.Issuer()
	f, err := fetch.New(fetch.Config[issuerMetadata]{
		Name:             "issuer metadata",
		URL:              strings.TrimSuffix(issuer, "/") + MetadataPath,
		Policy:           policy,
		Client:           client,
		Timeout:          client.Timeout,
		MaxResponseBytes: maxMetadataBytes,
		Parse: func(_ context.Context, body []byte, _ *fetch.Snapshot[issuerMetadata]) (issuerMetadata, error) {
			return parseMetadata(body, policy)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("issuer metadata: %w", err)
	}
	return f, nil
}

func fetchMetadata(ctx context.Context, f *fetch.Fetcher[issuerMetadata]) (issuerMetadata, error) {
	s, err := f.Refresh(ctx)
	if err != nil {
		return issuerMetadata{}, err
	}
	return s.Value, nil
}

// parseMetadata parses the handoff configuration of policy's issuer and
// checks its URLs with policy.
func parseMetadata(body []byte, policy *fetch.Policy) (issuerMetadata, error) {
	var md issuerMetadata
	if err := json.Unmarshal(body, &md); err != nil {
		return issuerMetadata{}, err
	}
	// Metadata naming another issuer is refused (RFC 8414 §3.3): a document
	// served under the trusted issuer's URL but describing someone else
	// points at keys the trusted issuer does not vouch for (mix-up).
	if issuer := policy.Issuer(); md.Issuer != issuer {
		return issuerMetadata{}, fmt.Errorf("names issuer %q, want %q", md.Issuer, issuer)
	}
	// The downgrade and host rules apply to discovered URLs as to
	// configured ones: metadata naming http:// for an https issuer, or
	// another host, would hand the keys or the revocation list to whoever
	// answers there.
	if err := policy.Check(md.JWKSURI); err != nil {
		return issuerMetadata{}, fmt.Errorf("jwks_uri: %w", err)
	}
	if md.RevocationEndpoint != "" {
		if err := policy.Check(md.RevocationEndpoint); err != nil {
			return issuerMetadata{}, fmt.Errorf("revocation_endpoint: %w", err)
		}
	}
	return md, nil
}

// discoverLoop fetches the metadata, retrying with backoff from first up
// to limit, until it succeeds and found accepts it, or ctx ends. Metadata
// the policy refuses is retried too: the issuer may fix it, and until then
// SERVER2 is not ready.
func discoverLoop(ctx context.Context, log *slog.Logger, client *http.Client, policy *fetch.Policy, first, limit time.Duration, found func(issuerMetadata) error) {
	issuer := policy.Issuer()
	retry := fetch.Backoff{First: first, Max: limit}
	f, err := newMetadataFetcher(client, policy)
	for failures := 1; ; failures++ {
		if f != nil {
			var md issuerMetadata
			if md, err = fetchMetadata(ctx, f); err == nil {
				if err = found(md); err == nil {
					log.Info("issuer metadata discovered", "issuer", issuer, "jwks_url", md.JWKSURI, "revocation_url", md.RevocationEndpoint)
					return
				}
			}
		}
		if ctx.Err() != nil {
			return
		}
		wait := retry.Wait(failures)
		attrs := []any{"issuer", issuer, "error", err.Error(), "retry_in", wait.String()}
		if reason := fetch.URLReasonOf(err); reason != "" {
			attrs = append(attrs, "reason", string(reason))
		}
		log.Warn("issuer metadata discovery failed; retrying", attrs...)
		if !fetch.Sleep(ctx, wait) {
			return
		}
	}
}

// metadataClient fetches issuer metadata: bounded in time, its redirects
// under policy (at most 3, never from https to http, never to a host the
// policy does not allow). transport may be nil (http.DefaultTransport).
func metadataClient(policy *fetch.Policy, timeout time.Duration, transport http.RoundTripper) *http.Client {
	return policy.Client(&http.Client{Timeout: timeout, Transport: transport})
}
