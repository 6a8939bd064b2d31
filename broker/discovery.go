package broker

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

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
	// BoundHandoffEndpoint is where StartHandler sends the browser to have
	// a token minted for the binding secret it just set; "" when the
	// issuer does not bind handoffs.
	BoundHandoffEndpoint string `json:"bound_handoff_endpoint"`
	// HandoffOrigins are the origins the issuer's handoff pages post
	// from; empty means the issuer's own origin.
	HandoffOrigins []string `json:"handoff_origins"`
	// DisplayName is the issuer's name as its users know it ("Customer
	// Portal"), for pages that send them back; "" when the issuer gives
	// none or one that is not printable text of at most
	// maxDisplayNameRunes runes.
	DisplayName string `json:"display_name"`
	// HomepageURI is the issuer's page for its users, where a relying
	// service's pages link back; "" when the issuer gives none, or one
	// that is not an absolute http(s) URL (https for an https issuer).
	HomepageURI string `json:"homepage_uri"`
}

// maxDisplayNameRunes caps Metadata.DisplayName.
const maxDisplayNameRunes = 80

// Discover fetches <issuer>/.well-known/handoff-configuration, the issuer
// being policy's, and returns it, its URLs checked by policy. The request
// and its redirects obey policy; client may be nil (a client with a 5s
// timeout). NewRelyingParty discovers on its own: call Discover only to
// show an operator what an issuer advertises.
func Discover(ctx context.Context, policy *fetch.Policy, client *http.Client) (Metadata, error) {
	if client == nil {
		client = &http.Client{Timeout: defaultFetchTimeout}
	}
	f, err := newMetadataFetcher(client, policy)
	if err != nil {
		return Metadata{}, err
	}
	return fetchMetadata(ctx, f)
}

// newMetadataFetcher returns the fetcher of policy's issuer's handoff
// configuration; the fetcher puts client's redirects under policy.
func newMetadataFetcher(client *http.Client, policy *fetch.Policy) (*fetch.Fetcher[Metadata], error) {
	f, err := fetch.New(fetch.Config[Metadata]{
		Name:             "issuer metadata",
		URL:              strings.TrimSuffix(policy.Issuer(), "/") + MetadataPath,
		Policy:           policy,
		Client:           client,
		Timeout:          cmpOr(client.Timeout, defaultFetchTimeout),
		MaxResponseBytes: maxMetadataBytes,
		Parse: func(_ context.Context, body []byte, _ *fetch.Snapshot[Metadata]) (Metadata, error) {
			return parseMetadata(body, policy)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("issuer metadata: %w", err)
	}
	return f, nil
}

func fetchMetadata(ctx context.Context, f *fetch.Fetcher[Metadata]) (Metadata, error) {
	s, err := f.Refresh(ctx)
	if err != nil {
		return Metadata{}, err
	}
	return s.Value, nil
}

// parseMetadata parses the handoff configuration of policy's issuer and
// checks its URLs with policy.
func parseMetadata(body []byte, policy *fetch.Policy) (Metadata, error) {
	var md Metadata
	if err := json.Unmarshal(body, &md); err != nil {
		return Metadata{}, err
	}
	// Metadata naming another issuer is refused (RFC 8414 §3.3): a document
	// served under the trusted issuer's URL but describing someone else
	// points at keys the trusted issuer does not vouch for (mix-up).
	if issuer := policy.Issuer(); md.Issuer != issuer {
		return Metadata{}, fmt.Errorf("names issuer %q, want %q", md.Issuer, issuer)
	}
	// The downgrade and host rules apply to discovered URLs as to
	// configured ones: metadata naming http:// for an https issuer, or
	// another host, would hand the keys or the revocation list to whoever
	// answers there.
	if err := policy.Check(md.JWKSURI); err != nil {
		return Metadata{}, fmt.Errorf("jwks_uri: %w", err)
	}
	if md.RevocationEndpoint != "" {
		if err := policy.Check(md.RevocationEndpoint); err != nil {
			return Metadata{}, fmt.Errorf("revocation_endpoint: %w", err)
		}
	}
	// The bound endpoint obeys the same rules: metadata sending browsers
	// to another host would have it mint (or phish) there.
	if md.BoundHandoffEndpoint != "" {
		if err := policy.Check(md.BoundHandoffEndpoint); err != nil {
			return Metadata{}, fmt.Errorf("bound_handoff_endpoint: %w", err)
		}
	}
	for _, o := range md.HandoffOrigins {
		if u, err := url.Parse(o); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil {
			return Metadata{}, fmt.Errorf("handoff_origins: %q is not an origin", o)
		}
	}
	// The display members only label a link back to the issuer: one that
	// is unfit is dropped rather than failing discovery, and the pages
	// fall back to the issuer's URL.
	if !printableName(md.DisplayName) {
		md.DisplayName = ""
	}
	if !homepageFor(md.HomepageURI, policy.Issuer()) {
		md.HomepageURI = ""
	}
	return md, nil
}

// printableName reports whether s is a display name: at most
// maxDisplayNameRunes runes, valid UTF-8, no control characters, not blank.
func printableName(s string) bool {
	if strings.TrimSpace(s) == "" || !utf8.ValidString(s) || utf8.RuneCountInString(s) > maxDisplayNameRunes {
		return false
	}
	return !strings.ContainsFunc(s, unicode.IsControl)
}

// homepageFor reports whether raw may be issuer's homepage: an absolute
// http or https URL without credentials, https when issuer is (a page
// link must not downgrade the user to plain http).
func homepageFor(raw, issuer string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil {
		return false
	}
	switch u.Scheme {
	case "https":
		return true
	case "http":
		return !strings.HasPrefix(issuer, "https:")
	}
	return false
}

// discoverLoop fetches the metadata, retrying with backoff from first up
// to limit, until it succeeds and found accepts it, or ctx ends. Metadata
// the policy refuses is retried too: the issuer may fix it, and until then
// the relying party is not ready.
func discoverLoop(ctx context.Context, log *slog.Logger, client *http.Client, policy *fetch.Policy, first, limit time.Duration, found func(Metadata) error) {
	issuer := policy.Issuer()
	retry := fetch.Backoff{First: first, Max: limit}
	f, err := newMetadataFetcher(client, policy)
	for failures := 1; ; failures++ {
		if f != nil {
			var md Metadata
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
