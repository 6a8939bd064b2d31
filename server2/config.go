package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/handoffbroker/handoff/broker"
	"github.com/handoffbroker/handoff/broker/token"
	"github.com/handoffbroker/handoff/shared"
)

// RevocationOff as Config.RevocationURL (--revocation-url=off) turns
// revocation checks off: revoked tokens, signed-out subjects and revoked
// keys are then accepted until the tokens expire or the key leaves the
// JWKS. /readyz reports "revocations":"off".
const RevocationOff = broker.RevocationOff

// envPrefix names SERVER2's environment variables: flag --jwks-url is
// SERVER2_JWKS_URL.
const envPrefix = "SERVER2"

// Config is SERVER2's configuration. Zero config (the defaults) runs the
// local demo next to SERVER1 on localhost:8081.
type Config struct {
	// Addr is the listen address. Default 127.0.0.1:8082.
	Addr string
	// TLSCert and TLSKey are PEM files that make SERVER2 serve https
	// itself. Default: both empty, plain http.
	TLSCert, TLSKey string
	// Audience is this service's identifier: tokens must name exactly it in
	// "aud". Default http://127.0.0.1:8082.
	Audience string
	// TrustedIssuer is the only accepted "iss", and where the JWKS URL is
	// discovered when JWKSURL is empty. Default http://localhost:8081.
	TrustedIssuer string
	// JWKSURL is the issuer's JWK Set. Default "": discovered from
	// <TrustedIssuer>/.well-known/handoff-configuration.
	JWKSURL string
	// FetchAllowedHosts are hosts besides TrustedIssuer's ("name" or
	// "name:port") that the metadata, JWKS and revocation list may be
	// fetched from, configured or discovered, redirects included. Every
	// such URL must also be https when TrustedIssuer is. Default none.
	FetchAllowedHosts []string
	// ReplayStore is "memory" or a redis:// or rediss:// URL. Default memory.
	ReplayStore string
	// Leeway is the tolerated clock skew. Default 30s.
	Leeway time.Duration
	// MaxTokenLifetime caps exp - iat. Default 10m.
	MaxTokenLifetime time.Duration
	// JWKSTimeout bounds each JWKS or metadata fetch. Default 5s.
	JWKSTimeout time.Duration
	// JWKSMaxStale is how long the last fetched keys stay usable while
	// SERVER1 is unreachable. Default 24h.
	JWKSMaxStale time.Duration
	// JWKSCooldown is the least time between refreshes caused by unknown
	// kids. Default 10s.
	JWKSCooldown time.Duration
	// JWKSMinRefresh is the shortest scheduled refresh interval. Default 1m.
	JWKSMinRefresh time.Duration
	// SessionTTL is the lifetime of SERVER2's own session after a handoff.
	// Default 15m.
	SessionTTL time.Duration
	// CompletionRetention is how long a completed task is remembered, so a
	// second completion of it (another handoff, another token) is refused.
	// Default 720h (30 days); at least SessionTTL + MaxTokenLifetime +
	// 2 × Leeway, the longest any token or session that existed when the
	// task was completed can still be used.
	CompletionRetention time.Duration
	// MaxSessions bounds the sessions held, all subjects together; a
	// handoff that finds no room is refused before its token is consumed
	// (503 too_many_sessions). Default 100000.
	MaxSessions int
	// MaxSessionsPerSubject bounds one subject's sessions: a new one
	// replaces the subject's oldest. Default 10, at most MaxSessions.
	MaxSessionsPerSubject int
	// RevocationURL is the issuer's signed revocation list, or
	// RevocationOff to run without revocation checks. Default "": the
	// revocation_endpoint of the issuer's handoff configuration, which is
	// then required (SERVER2 stays unready while the issuer advertises
	// none). Required when JWKSURL is set: revocation is never turned off
	// by leaving a setting out.
	RevocationURL string
	// RevocationInterval is the time between polls of the list. Default 5s.
	RevocationInterval time.Duration
	// RevocationMaxStale is how long after the last successful poll the
	// held list is trusted; after it, handoffs fail closed (unavailable).
	// Default 60s; at least RevocationInterval.
	RevocationMaxStale time.Duration
	// RevocationFailOpen accepts tokens against a stale list (or none)
	// instead of failing closed. It lets whoever can cut SERVER2 off from
	// SERVER1 use revoked tokens. Default false.
	RevocationFailOpen bool
	// HandoffBinding is "required" or "off". Required (the default): the
	// browser handoff accepts only tokens bound to the browser that
	// started it at /handoff/start, posted from SERVER1's origins. Off
	// accepts unbound tokens at /handoff, for an issuer without binding
	// support: any page can then post a token for its own user into a
	// visitor's browser and sign them in as that user (login CSRF,
	// session swapping). The Bearer API is unaffected.
	HandoffBinding string
	// BoundHandoffURL is SERVER1's bound handoff endpoint, where
	// /handoff/start sends the browser. Default "": discovered from the
	// issuer's handoff configuration. Set it where SERVER2 cannot fetch
	// that document from the issuer's public URL (compose).
	BoundHandoffURL string
	// BindingTTL is how long the binding secret set at /handoff/start
	// lives. Default 120s; at most 10m.
	BindingTTL time.Duration
	// KeysDir holds SERVER2's own signing keys for result tokens, one
	// private JWK file each, shared by every replica; an empty directory
	// gets one fresh key at start, and the directory is re-read every few
	// seconds so replicas agree. Default "": one key generated in memory at
	// start (the demo; SERVER1 refetches the JWKS on the new key id after
	// a restart).
	KeysDir string
	// ResultURL is SERVER1's result endpoint, where the browser carries a
	// result token after the task is approved or cancelled. Default "":
	// <TrustedIssuer>/handoffs/result.
	ResultURL string
	// LogLevel is debug, info, warn or error. Default info.
	LogLevel slog.Level
	// PprofAddr, when set, serves Go's CPU, heap and goroutine profiles
	// (net/http/pprof) on this loopback address, on a listener of its own,
	// never on Addr. Default "": off.
	PprofAddr string
	// LogFormat is json (one object a line) or text (key=value, for
	// people). Default json.
	LogFormat shared.LogFormat
}

// registerFlags binds cfg's fields to flags on fs with their defaults.
func registerFlags(fs *flag.FlagSet, cfg *Config) {
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:8082", "listen address")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "PEM certificate chain to serve https with (with --tls-key)")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&cfg.Audience, "audience", "http://127.0.0.1:8082", "this service's identifier, the required token \"aud\"")
	fs.StringVar(&cfg.TrustedIssuer, "trusted-issuer", "http://localhost:8081", "the accepted token \"iss\" (SERVER1's URL)")
	fs.StringVar(&cfg.JWKSURL, "jwks-url", "", "SERVER1's JWKS URL (empty: discovered from the issuer's handoff-configuration)")
	fs.Func("fetch-allowed-hosts", "comma-separated hosts (name or name:port) besides the trusted issuer's that the JWKS, revocation list and metadata may be fetched from", func(s string) error {
		for h := range strings.SplitSeq(s, ",") {
			if h = strings.TrimSpace(h); h != "" {
				cfg.FetchAllowedHosts = append(cfg.FetchAllowedHosts, h)
			}
		}
		return nil
	})
	fs.StringVar(&cfg.ReplayStore, "replay-store", "memory", "where used token ids are recorded: memory, or a redis:// URL")
	fs.DurationVar(&cfg.Leeway, "leeway", token.DefaultLeeway, "tolerated clock skew")
	fs.DurationVar(&cfg.MaxTokenLifetime, "max-token-lifetime", token.DefaultMaxTTL, "longest accepted token lifetime (exp - iat)")
	fs.DurationVar(&cfg.JWKSTimeout, "jwks-timeout", 5*time.Second, "timeout of each JWKS fetch")
	fs.DurationVar(&cfg.JWKSMaxStale, "jwks-max-stale", 24*time.Hour, "how long cached keys are used while SERVER1 is unreachable")
	fs.DurationVar(&cfg.JWKSCooldown, "jwks-cooldown", 10*time.Second, "least time between JWKS refreshes caused by unknown key ids")
	fs.DurationVar(&cfg.JWKSMinRefresh, "jwks-min-refresh", time.Minute, "shortest interval between scheduled JWKS refreshes")
	fs.DurationVar(&cfg.SessionTTL, "session-ttl", 15*time.Minute, "lifetime of the session a handoff opens")
	fs.DurationVar(&cfg.CompletionRetention, "completion-retention", 30*24*time.Hour, "how long a completed task is remembered and a second completion refused")
	fs.IntVar(&cfg.MaxSessions, "max-sessions", DefaultMaxSessions, "most sessions held; a handoff finding no room is refused without consuming its token")
	fs.IntVar(&cfg.MaxSessionsPerSubject, "max-sessions-per-subject", DefaultMaxSessionsPerSubject, "most sessions of one subject; a new one replaces the oldest")
	fs.StringVar(&cfg.RevocationURL, "revocation-url", "", "SERVER1's revocation list URL (empty: discovered with the JWKS URL; required with jwks-url), or \"off\" to run without revocation checks")
	fs.DurationVar(&cfg.RevocationInterval, "revocation-interval", 5*time.Second, "time between polls of the revocation list")
	fs.DurationVar(&cfg.RevocationMaxStale, "revocation-max-stale", time.Minute, "how long a revocation list is trusted without a successful poll; then handoffs fail closed")
	fs.BoolVar(&cfg.RevocationFailOpen, "revocation-fail-open", false, "accept tokens when the revocation list is stale (weakens revocation)")
	fs.StringVar(&cfg.HandoffBinding, "handoff-binding", string(broker.BindingRequired), "\"required\": browser handoffs must be bound to the browser that started them; \"off\" accepts unbound tokens (allows login CSRF)")
	fs.StringVar(&cfg.BoundHandoffURL, "bound-handoff-url", "", "SERVER1's bound handoff endpoint (empty: discovered from the issuer's handoff-configuration)")
	fs.DurationVar(&cfg.BindingTTL, "binding-ttl", broker.DefaultBindingTTL, "lifetime of the binding secret set when a handoff starts")
	fs.StringVar(&cfg.KeysDir, "keys-dir", "", "directory of SERVER2's own signing keys for result tokens (empty: one key generated in memory at start)")
	fs.StringVar(&cfg.ResultURL, "result-url", "", "SERVER1's result endpoint (empty: <trusted-issuer>/handoffs/result)")
	fs.TextVar(&cfg.LogLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn or error")
	fs.StringVar(&cfg.PprofAddr, "pprof-addr", "", "loopback address to serve Go profiles (/debug/pprof/) on (empty: off)")
	fs.TextVar(&cfg.LogFormat, "log-format", shared.LogJSON, "log format: json (one object a line) or text (key=value, for people)")
}

// DefaultConfig returns the zero-config demo settings.
func DefaultConfig() Config {
	var cfg Config
	registerFlags(flag.NewFlagSet("", flag.ContinueOnError), &cfg)
	return cfg
}

// parseConfig reads the common flags and their SERVER2_* variables from
// args; extra registers subcommand flags on the same set. Usage goes to
// out. It returns the remaining arguments.
func parseConfig(name string, args []string, out io.Writer, extra func(*flag.FlagSet)) (Config, []string, error) {
	var cfg Config
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	registerFlags(fs, &cfg)
	if extra != nil {
		extra(fs)
	}
	if err := shared.ParseFlagsAndEnv(fs, envPrefix, args); err != nil {
		return Config{}, nil, err
	}
	if err := cfg.validate(); err != nil {
		return Config{}, nil, err
	}
	return cfg, fs.Args(), nil
}

// validate reports every problem at once.
func (c Config) validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("addr %q: %w", c.Addr, err))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("tls-cert and tls-key are set together or not at all"))
	}
	if c.PprofAddr != "" {
		if err := shared.CheckLoopback(c.PprofAddr); err != nil {
			errs = append(errs, fmt.Errorf("pprof-addr: %w", err))
		}
	}
	if err := c.brokerConfig().Validate(flagName); err != nil {
		errs = append(errs, err)
	}
	if err := checkReplayStore(c.ReplayStore); err != nil {
		errs = append(errs, fmt.Errorf("replay-store: %w", err))
	}
	// Zero is the broker's "default" but no flag's: a flag set to 0 is a
	// mistake. Negative values and the bounds between settings are the
	// broker's to check.
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"leeway", c.Leeway}, {"max-token-lifetime", c.MaxTokenLifetime},
		{"jwks-timeout", c.JWKSTimeout}, {"jwks-max-stale", c.JWKSMaxStale},
		{"jwks-cooldown", c.JWKSCooldown}, {"jwks-min-refresh", c.JWKSMinRefresh},
		{"revocation-interval", c.RevocationInterval}, {"revocation-max-stale", c.RevocationMaxStale},
	} {
		if d.v == 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %v", d.name, d.v))
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"session-ttl", c.SessionTTL}, {"completion-retention", c.CompletionRetention}} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %v", d.name, d.v))
		}
	}
	if _, err := c.resultURL(); err != nil {
		errs = append(errs, fmt.Errorf("result-url: %w", err))
	}
	if c.MaxSessions < 1 {
		errs = append(errs, fmt.Errorf("max-sessions must be positive, got %d", c.MaxSessions))
	}
	if c.MaxSessionsPerSubject < 1 || c.MaxSessionsPerSubject > c.MaxSessions {
		errs = append(errs, fmt.Errorf("max-sessions-per-subject %d must be between 1 and max-sessions %d", c.MaxSessionsPerSubject, c.MaxSessions))
	}
	if least := c.minCompletionRetention(); c.CompletionRetention > 0 && c.CompletionRetention < least {
		errs = append(errs, fmt.Errorf("completion-retention %v must be at least session-ttl + max-token-lifetime + 2 × leeway = %v", c.CompletionRetention, least))
	}
	return errors.Join(errs...)
}

// brokerConfig is the part of the relying party's configuration that
// comes from cfg; NewApp adds the dependencies (Options, metrics).
func (c Config) brokerConfig() broker.Config {
	return broker.Config{
		Issuer:             c.TrustedIssuer,
		Audience:           c.Audience,
		JWKSURL:            c.JWKSURL,
		RevocationURL:      c.RevocationURL,
		AllowedHosts:       c.FetchAllowedHosts,
		FetchTimeout:       c.JWKSTimeout,
		Leeway:             c.Leeway,
		MaxTokenLifetime:   c.MaxTokenLifetime,
		JWKSMaxStale:       c.JWKSMaxStale,
		JWKSCooldown:       c.JWKSCooldown,
		JWKSMinRefresh:     c.JWKSMinRefresh,
		RevocationInterval: c.RevocationInterval,
		RevocationMaxStale: c.RevocationMaxStale,
		RevocationFailOpen: c.RevocationFailOpen,
		Binding:            broker.Binding(c.HandoffBinding),
		BindingTTL:         c.BindingTTL,
		BoundHandoffURL:    c.BoundHandoffURL,
	}
}

// flagNames are SERVER2's flags for the broker.Config fields it sets.
var flagNames = map[string]string{
	"Issuer": "trusted-issuer", "Audience": "audience", "JWKSURL": "jwks-url",
	"RevocationURL": "revocation-url", "AllowedHosts": "fetch-allowed-hosts",
	"FetchTimeout": "jwks-timeout", "Leeway": "leeway", "MaxTokenLifetime": "max-token-lifetime",
	"JWKSMaxStale": "jwks-max-stale", "JWKSCooldown": "jwks-cooldown", "JWKSMinRefresh": "jwks-min-refresh",
	"RevocationInterval": "revocation-interval", "RevocationMaxStale": "revocation-max-stale",
	"RevocationFailOpen": "revocation-fail-open", "Binding": "handoff-binding", "BindingTTL": "binding-ttl",
	"BoundHandoffURL": "bound-handoff-url",
}

// flagName names a broker.Config field by SERVER2's flag, so
// broker.Config.Validate reports problems as operators spell them.
func flagName(field string) string {
	if f, ok := flagNames[field]; ok {
		return f
	}
	return field
}

func checkReplayStore(s string) error {
	if s == "memory" {
		return nil
	}
	if strings.HasPrefix(s, "redis://") || strings.HasPrefix(s, "rediss://") {
		return nil
	}
	// The value may be a URL with a password: never echo it.
	return errors.New(`must be "memory" or a redis:// or rediss:// URL`)
}

// minCompletionRetention is the least CompletionRetention: a token that
// existed when a task was completed verifies until at most
// MaxTokenLifetime + 2 × Leeway later (iat up to Leeway ahead, exp up to
// Leeway behind), and a session it opened lasts SessionTTL more.
func (c Config) minCompletionRetention() time.Duration {
	return c.SessionTTL + c.MaxTokenLifetime + 2*c.Leeway
}

// resultURL is ResultURL or its default under the trusted issuer: an
// absolute http or https URL without credentials, query or fragment.
func (c Config) resultURL() (*url.URL, error) {
	raw := c.ResultURL
	if raw == "" {
		var err error
		if raw, err = url.JoinPath(c.TrustedIssuer, "/handoffs/result"); err != nil {
			return nil, err
		}
	}
	return shared.ParseServiceURL(raw)
}

// secureCookies reports whether cookies need the Secure attribute: when
// this service is reached over https.
func (c Config) secureCookies() bool {
	return strings.HasPrefix(c.Audience, "https://")
}
