package broker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/handoffbroker/handoff/broker/fetch"
)

// MetadataPath is where an issuer publishes its handoff configuration.
const MetadataPath = "/.well-known/handoff-configuration"

// maxMetadataBytes caps the issuer metadata document read.
const maxMetadataBytes = 64 << 10

// Metadata is the part of an issuer's handoff configuration a relying
// party reads.
type Metadata struct {
	Issuer  string `json:"issuer"`
	JWKSURI string `json:"jwks_uri"`
	// RevocationEndpoint is the signed revocation list; "" when the issuer
	// publishes none.
	RevocationEndpoint string `json:"revocation_endpoint"`
}

// Discover fetches <issuer>/.well-known/handoff-configuration, the issuer
// being policy's, and returns it, its URLs checked by policy. The request
// and its redirects obey policy; client may be nil (a client with a 5s
// timeout). NewRelyingParty discovers on its own: call Discover only to
// show an operator what an issuer advertises.
func Discover(ctx context.Context, policy *fetch.Policy, client *http.Client) (Metadata, error) {
	if client == nil {
		client = &http.Client{Timeout: defaultFetchTimeout}
	}
	return discover(ctx, policy.Client(client), policy)
}

// discover is Discover with a client that policy already checks.
func discover(ctx context.Context, client *http.Client, policy *fetch.Policy) (Metadata, error) {
	issuer := policy.Issuer()
	metaURL := strings.TrimSuffix(issuer, "/") + MetadataPath
	if err := policy.Check(metaURL); err != nil {
		return Metadata{}, fmt.Errorf("issuer metadata: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, metaURL, nil)
	if err != nil {
		return Metadata{}, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return Metadata{}, fmt.Errorf("issuer metadata: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Metadata{}, fmt.Errorf("issuer metadata: HTTP %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxMetadataBytes+1))
	if err != nil {
		return Metadata{}, fmt.Errorf("issuer metadata: %w", err)
	}
	if len(body) > maxMetadataBytes {
		return Metadata{}, fmt.Errorf("issuer metadata exceeds %d bytes", maxMetadataBytes)
	}
	var md Metadata
	if err := json.Unmarshal(body, &md); err != nil {
		return Metadata{}, fmt.Errorf("issuer metadata: %w", err)
	}
	// Metadata naming another issuer is refused (RFC 8414 §3.3): a document
	// served under the trusted issuer's URL but describing someone else
	// points at keys the trusted issuer does not vouch for (mix-up).
	if md.Issuer != issuer {
		return Metadata{}, fmt.Errorf("issuer metadata names issuer %q, want %q", md.Issuer, issuer)
	}
	// The downgrade and host rules apply to discovered URLs as to
	// configured ones: metadata naming http:// for an https issuer, or
	// another host, would hand the keys or the revocation list to whoever
	// answers there.
	if err := policy.Check(md.JWKSURI); err != nil {
		return Metadata{}, fmt.Errorf("issuer metadata jwks_uri: %w", err)
	}
	if md.RevocationEndpoint != "" {
		if err := policy.Check(md.RevocationEndpoint); err != nil {
			return Metadata{}, fmt.Errorf("issuer metadata revocation_endpoint: %w", err)
		}
	}
	return md, nil
}

// discoverLoop retries discover with exponential backoff from first up to
// limit until it succeeds or ctx ends, and passes the metadata to found.
// Metadata the policy refuses is retried too: the issuer may fix it, and
// until then the relying party is not ready.
func discoverLoop(ctx context.Context, log *slog.Logger, client *http.Client, policy *fetch.Policy, first, limit time.Duration, found func(Metadata) error) {
	issuer := policy.Issuer()
	wait := first
	for {
		md, err := discover(ctx, client, policy)
		if err == nil {
			err = found(md)
			if err == nil {
				log.Info("issuer metadata discovered", "issuer", issuer, "jwks_url", md.JWKSURI, "revocation_url", md.RevocationEndpoint)
				return
			}
		}
		if ctx.Err() != nil {
			return
		}
		attrs := []any{"issuer", issuer, "error", err.Error(), "retry_in", wait.String()}
		if reason := fetch.URLReasonOf(err); reason != "" {
			attrs = append(attrs, "reason", string(reason))
		}
		log.Warn("issuer metadata discovery failed; retrying", attrs...)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, limit)
	}
}
