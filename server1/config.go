package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-json-experiment/json"
	"github.com/handoffbroker/handoff/broker/keys"
	"github.com/handoffbroker/handoff/broker/token"
	"github.com/handoffbroker/handoff/shared"
	"golang.org/x/crypto/bcrypt"
)

// Config is SERVER1's configuration. Every field has a flag and an
// environment variable of the same name (flag --keys-dir, env
// SERVER1_KEYS_DIR); the zero-config defaults run the local demo.
type Config struct {
	// Addr is the listen address. Default "localhost:8081".
	Addr string
	// TLSCert and TLSKey are PEM files that make SERVER1 serve https
	// itself. Default: both empty, plain http.
	TLSCert, TLSKey string
	// Issuer is the "iss" of every token and SERVER1's public base URL.
	// Default "http://localhost:8081".
	Issuer string
	// PortalName is SERVER1's name on its pages and, as the display_name
	// of its handoff configuration, on the pages of the services it hands
	// users to, which link back to Issuer's "/" (homepage_uri): printable
	// text of at most 80 characters. Default "Customer Portal".
	PortalName string
	// KeysDir holds the private signing keys, one JWK file each. An empty
	// directory gets one fresh key at start. Default ".data/server1/keys".
	KeysDir string
	// KeyAlg is the algorithm of keys generated automatically or by
	// `keys generate` without --alg. Default "EdDSA".
	KeyAlg string
	// Audience is SERVER2's identifier, the "aud" of tokens for it.
	// Default "http://127.0.0.1:8082". Ignored when AudiencesFile is set.
	Audience string
	// HandoffURL is where the browser posts tokens for Audience.
	// Default "http://127.0.0.1:8082/handoff". Ignored when AudiencesFile is set.
	HandoffURL string
	// HandoffStartURL is Audience's handoff start endpoint: "Continue"
	// links there, so the browser handoff is bound. "" keeps the unbound
	// POST /handoffs form. Default "http://127.0.0.1:8082/handoff/start".
	// Ignored when AudiencesFile is set.
	HandoffStartURL string
	// AudiencesFile, when set, is a JSON registry of relying services
	// ([{"audience","name","handoff_url","start_url"}]) that replaces Audience and
	// HandoffURL. The demo transfers go to the first entry. Default "".
	AudiencesFile string
	// UsersFile, when set, is a JSON list of users
	// ([{"username","name","password_hash"}], bcrypt hashes). Default "":
	// the built-in demo users alice and bob.
	UsersFile string
	// TokenTTL is the lifetime of minted tokens. Default 60s.
	TokenTTL time.Duration
	// MaxTokenTTL is the longest lifetime the minter signs. Default 10m.
	MaxTokenTTL time.Duration
	// JWKSMaxAge is the Cache-Control max-age of the JWKS. Default 5m.
	JWKSMaxAge time.Duration
	// RevocationDir holds the revocation entries (revoked tokens, subjects
	// and keys), one file each, shared by every instance and by the
	// revoke commands. Default "": "revocations" beside KeysDir
	// (".data/server1/revocations"), so instances that share keys share
	// revocations too.
	RevocationDir string
	// RevocationListTTL is the lifetime of the signed revocation list
	// served on /revocations. Default 5m, at most 1h.
	RevocationListTTL time.Duration
	// RotateEvery, when set, starts a key rotation once the current key has
	// signed for this long (publishing the next key for 2 × JWKSMaxAge
	// first). Default 0: rotate only with `keys rotate`.
	RotateEvery time.Duration
	// HandoffsPerMinute is how many handoffs (tokens minted by POST
	// /handoffs or POST /api/v1/handoffs) one user gets per minute once
	// HandoffBurst is spent; more get 429 too_many_handoffs. Default 30.
	HandoffsPerMinute int
	// HandoffBurst is how many handoffs one user may start at once.
	// Default 10.
	HandoffBurst int
	// APIKey, when set, lets a service call POST /api/v1/handoffs with the
	// header X-API-Key. Default "": the API-key path is disabled.
	APIKey string
	// ResultIssuer is the relying service whose result tokens (the
	// outcome of a handed-off task, POST /handoffs/result) SERVER1
	// accepts: their "iss", compared exactly. It answers for the tasks of
	// the primary audience (the first registry entry). Default "": that
	// audience's identifier, SERVER2's URL in the demo.
	ResultIssuer string
	// ResultJWKSURL is where the result issuer's keys are fetched. Default
	// "": <ResultIssuer>/.well-known/jwks.json. Its host is allowed by the
	// fetch policy whatever it is (the operator chose it).
	ResultJWKSURL string
	// LogLevel is debug, info, warn or error. Default "info".
	LogLevel string
	// LogFormat is json (one object a line) or text (key=value, for
	// people). Default json.
	LogFormat shared.LogFormat
	// PprofAddr, when set, serves Go's CPU, heap and goroutine profiles
	// (net/http/pprof) on this loopback address, on a listener of its own,
	// never on Addr. Default "": off.
	PprofAddr string

	// bcryptCost, when set, re-hashes the demo users' passwords at this
	// cost (tests use bcrypt.MinCost). Default: the precomputed hashes.
	bcryptCost int
}

// maxPortalName is the longest PortalName: a relying service drops a longer
// display_name.
const maxPortalName = 80

// defaultConfig returns the zero-config demo settings.
func defaultConfig() Config {
	return Config{
		Addr:            "localhost:8081",
		Issuer:          "http://localhost:8081",
		PortalName:      "Customer Portal",
		KeysDir:         ".data/server1/keys",
		KeyAlg:          string(token.EdDSA),
		Audience:        "http://127.0.0.1:8082",
		HandoffURL:      "http://127.0.0.1:8082/handoff",
		HandoffStartURL: "http://127.0.0.1:8082/handoff/start",
		TokenTTL:        token.DefaultTTL,
		MaxTokenTTL:     token.DefaultMaxTTL,
		JWKSMaxAge:      5 * time.Minute,
		LogLevel:        "info",
		LogFormat:       shared.LogJSON,

		HandoffsPerMinute: 30,
		HandoffBurst:      10,
		RevocationListTTL: token.DefaultRevocationListTTL,
	}
}

// bindKeys registers the flags every subcommand that opens the keyring
// needs. The longest token lifetime decides how long retired keys stay
// published, so every process sharing the directory must agree on it.
func (c *Config) bindKeys(fs *flag.FlagSet) {
	fs.StringVar(&c.KeysDir, "keys-dir", c.KeysDir, "directory of private signing keys (JWK files)")
	fs.StringVar(&c.KeyAlg, "key-alg", c.KeyAlg, "algorithm of generated keys: EdDSA or ES256")
	fs.DurationVar(&c.MaxTokenTTL, "max-token-ttl", c.MaxTokenTTL, "longest lifetime the minter signs")
}

// bindRevocations registers the flags of subcommands that record
// revocations.
func (c *Config) bindRevocations(fs *flag.FlagSet) {
	fs.StringVar(&c.RevocationDir, "revocation-dir", c.RevocationDir, "directory of revocation entries, shared by every instance (default: revocations beside --keys-dir)")
}

// bindMint registers the flags that minting needs.
func (c *Config) bindMint(fs *flag.FlagSet) {
	c.bindKeys(fs)
	fs.StringVar(&c.Issuer, "issuer", c.Issuer, `"iss" of minted tokens and public base URL of SERVER1`)
	fs.DurationVar(&c.TokenTTL, "token-ttl", c.TokenTTL, "lifetime of minted tokens")
}

// openKeyring opens the keys directory. Retired keys stay published until
// every token they signed has expired, plus the verifiers' leeway.
func (c *Config) openKeyring(now func() time.Time) (*keys.Keyring, error) {
	return keys.Open(keys.KeyringConfig{Dir: c.KeysDir, RetainRetired: c.retainRetired(), Now: now})
}

// revocationDir is RevocationDir or its default beside the keys.
func (c *Config) revocationDir() string {
	if c.RevocationDir != "" {
		return c.RevocationDir
	}
	return filepath.Join(filepath.Dir(c.KeysDir), "revocations")
}

// liveTokensPerUser is the most tokens one user can hold unexpired under
// the handoff limits: a token bucket grants at most burst + rate × T in any
// span T, here one token lifetime.
func (c *Config) liveTokensPerUser() float64 {
	return float64(c.HandoffBurst) + math.Ceil(float64(c.HandoffsPerMinute)*c.TokenTTL.Minutes())
}

func (c *Config) retainRetired() time.Duration { return c.MaxTokenTTL + token.MaxLeeway }

// subjectRevocationTTL is how long a "sign out everywhere" entry is kept:
// past the longest token lifetime plus leeway, and at least an hour, so
// relying services can still end the sessions they opened from earlier
// tokens.
func (c *Config) subjectRevocationTTL() time.Duration {
	return max(c.MaxTokenTTL+token.MaxLeeway, time.Hour)
}

// publishFor is how long a rotated-in key is published before it signs:
// twice the JWKS max-age, so a verifier refreshing on schedule holds it
// even behind an HTTP cache that adds one more max-age.
func (c *Config) publishFor() time.Duration {
	return max(2*c.JWKSMaxAge, time.Second)
}

// bindServe registers every server flag.
func (c *Config) bindServe(fs *flag.FlagSet) {
	c.bindMint(fs)
	fs.StringVar(&c.Addr, "addr", c.Addr, "listen address")
	fs.StringVar(&c.PortalName, "portal-name", c.PortalName, "SERVER1's name on its pages and on the pages of the services it hands users to")
	fs.StringVar(&c.TLSCert, "tls-cert", c.TLSCert, "PEM certificate chain to serve https with (with --tls-key)")
	fs.StringVar(&c.TLSKey, "tls-key", c.TLSKey, "PEM private key of --tls-cert")
	fs.StringVar(&c.Audience, "audience", c.Audience, "SERVER2's identifier (token audience)")
	fs.StringVar(&c.HandoffURL, "handoff-url", c.HandoffURL, "SERVER2's handoff endpoint")
	fs.StringVar(&c.HandoffStartURL, "handoff-start-url", c.HandoffStartURL, "SERVER2's handoff start endpoint, where \"Continue\" links (empty: the unbound form POST)")
	fs.StringVar(&c.AudiencesFile, "audiences-file", c.AudiencesFile, "JSON registry of audiences (replaces --audience and --handoff-url)")
	fs.StringVar(&c.UsersFile, "users-file", c.UsersFile, "JSON list of users with bcrypt password hashes (default: demo users)")
	fs.DurationVar(&c.JWKSMaxAge, "jwks-max-age", c.JWKSMaxAge, "Cache-Control max-age of the JWKS")
	fs.StringVar(&c.APIKey, "api-key", c.APIKey, "service key for POST /api/v1/handoffs (empty disables)")
	fs.IntVar(&c.HandoffsPerMinute, "handoffs-per-minute", c.HandoffsPerMinute, "handoffs one user gets per minute once the burst is spent")
	fs.IntVar(&c.HandoffBurst, "handoff-burst", c.HandoffBurst, "handoffs one user may start at once")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log level: debug, info, warn, error")
	fs.TextVar(&c.LogFormat, "log-format", c.LogFormat, "log format: json (one object a line) or text (key=value, for people)")
	fs.StringVar(&c.ResultIssuer, "result-issuer", c.ResultIssuer, "the relying service whose result tokens are accepted at /handoffs/result (empty: the primary audience)")
	fs.StringVar(&c.ResultJWKSURL, "result-jwks-url", c.ResultJWKSURL, "the result issuer's JWKS URL (empty: <result-issuer>/.well-known/jwks.json)")
	fs.StringVar(&c.PprofAddr, "pprof-addr", c.PprofAddr, "loopback address to serve Go profiles (/debug/pprof/) on (empty: off)")
	c.bindRevocations(fs)
	fs.DurationVar(&c.RevocationListTTL, "revocation-list-ttl", c.RevocationListTTL, "lifetime of the signed revocation list")
	fs.DurationVar(&c.RotateEvery, "rotate-every", c.RotateEvery, "rotate the signing key automatically after it signed this long (0: never)")
}

// validate reports every problem at once.
func (c *Config) validate() error {
	var errs []error
	if c.Addr == "" {
		errs = append(errs, errors.New("addr is required"))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("tls-cert and tls-key are set together or not at all"))
	}
	if err := checkHTTPURL(c.Issuer); err != nil {
		errs = append(errs, fmt.Errorf("issuer: %w", err))
	}
	if c.KeysDir == "" {
		errs = append(errs, errors.New("keys-dir is required"))
	}
	if n := utf8.RuneCountInString(c.PortalName); strings.TrimSpace(c.PortalName) == "" || n > maxPortalName ||
		!utf8.ValidString(c.PortalName) || strings.ContainsFunc(c.PortalName, unicode.IsControl) {
		errs = append(errs, fmt.Errorf("portal-name %q must be printable text of 1 to %d characters", c.PortalName, maxPortalName))
	}
	if !slices.Contains(token.Algorithms(), token.Algorithm(c.KeyAlg)) {
		errs = append(errs, fmt.Errorf("key-alg %q: want one of %v", c.KeyAlg, token.Algorithms()))
	}
	if c.TokenTTL < time.Second || c.TokenTTL > c.MaxTokenTTL {
		errs = append(errs, fmt.Errorf("token-ttl %v must be between 1s and max-token-ttl %v", c.TokenTTL, c.MaxTokenTTL))
	}
	if c.JWKSMaxAge < 0 {
		errs = append(errs, errors.New("jwks-max-age must not be negative"))
	}
	if c.RevocationListTTL < time.Second || c.RevocationListTTL > token.MaxRevocationListTTL {
		errs = append(errs, fmt.Errorf("revocation-list-ttl %v must be between 1s and %v", c.RevocationListTTL, token.MaxRevocationListTTL))
	}
	if c.RotateEvery < 0 || (c.RotateEvery > 0 && c.RotateEvery < c.publishFor()) {
		errs = append(errs, fmt.Errorf("rotate-every %v must be 0 (off) or at least the publication time 2 × jwks-max-age (%v)", c.RotateEvery, c.publishFor()))
	}
	if c.HandoffsPerMinute < 1 {
		errs = append(errs, fmt.Errorf("handoffs-per-minute must be at least 1, got %d", c.HandoffsPerMinute))
	}
	if c.HandoffBurst < 1 {
		errs = append(errs, fmt.Errorf("handoff-burst must be at least 1, got %d", c.HandoffBurst))
	}
	if n := c.liveTokensPerUser(); n > maxMintedRecords {
		errs = append(errs, fmt.Errorf("handoff-burst + handoffs-per-minute × token-ttl allows %.0f live tokens per user, more than the %d this instance records", n, maxMintedRecords))
	}
	if _, err := c.logLevel(); err != nil {
		errs = append(errs, err)
	}
	if c.ResultIssuer != "" {
		if err := checkHTTPURL(c.ResultIssuer); err != nil {
			errs = append(errs, fmt.Errorf("result-issuer: %w", err))
		}
	}
	if c.ResultJWKSURL != "" {
		if err := checkHTTPURL(c.ResultJWKSURL); err != nil {
			errs = append(errs, fmt.Errorf("result-jwks-url: %w", err))
		}
	}
	if c.PprofAddr != "" {
		if err := shared.CheckLoopback(c.PprofAddr); err != nil {
			errs = append(errs, fmt.Errorf("pprof-addr: %w", err))
		}
	}
	return errors.Join(errs...)
}

func (c *Config) logLevel() (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return 0, fmt.Errorf("log-level %q: want debug, info, warn or error", c.LogLevel)
	}
	return l, nil
}

// checkHTTPURL accepts a configured service URL (shared.ParseServiceURL).
func checkHTTPURL(raw string) error {
	_, err := shared.ParseServiceURL(raw)
	return err
}

// audience is a relying service in the registry.
type audience struct {
	// ID is the service's identifier, the token's "aud".
	ID string `json:"audience"`
	// Name is shown to users ("Continue on Payments").
	Name string `json:"name"`
	// HandoffURL receives the auto-submitted form.
	HandoffURL string `json:"handoff_url"`
	// StartURL, when set, is the service's handoff start endpoint: the
	// "Continue" link, which binds the handoff to the browser. "" keeps
	// the unbound POST /handoffs form.
	StartURL string `json:"start_url,omitempty"`
}

// origin is the scheme and host of the handoff URL, for the CSP form-action.
func (a audience) origin() string {
	u, _ := url.Parse(a.HandoffURL) // checked by loadRegistry
	return u.Scheme + "://" + u.Host
}

// registry is the fixed list of services SERVER1 hands off to. Form targets
// come only from here, never from the request: otherwise a forged request
// could send a token to an attacker's URL.
type registry struct {
	list []audience
	byID map[string]audience
}

func (r *registry) lookup(id string) (audience, bool) {
	a, ok := r.byID[id]
	return a, ok
}

// primary is where the demo transfers are handed off.
func (r *registry) primary() audience { return r.list[0] }

func loadRegistry(c Config) (*registry, error) {
	list := []audience{{ID: c.Audience, Name: "Payments", HandoffURL: c.HandoffURL, StartURL: c.HandoffStartURL}}
	if c.AudiencesFile != "" {
		raw, err := os.ReadFile(c.AudiencesFile)
		if err != nil {
			return nil, fmt.Errorf("audiences-file: %w", err)
		}
		list = nil
		if err := json.Unmarshal(raw, &list, json.RejectUnknownMembers(true)); err != nil {
			return nil, fmt.Errorf("audiences-file %s: %w", c.AudiencesFile, err)
		}
		if len(list) == 0 {
			return nil, fmt.Errorf("audiences-file %s: no audiences", c.AudiencesFile)
		}
	}
	r := &registry{byID: make(map[string]audience)}
	var errs []error
	for i, a := range list {
		if a.ID == "" {
			errs = append(errs, fmt.Errorf("audience %d: audience is required", i))
			continue
		}
		if err := checkHTTPURL(a.HandoffURL); err != nil {
			errs = append(errs, fmt.Errorf("audience %q: handoff_url: %w", a.ID, err))
			continue
		}
		if a.StartURL != "" {
			if err := checkHTTPURL(a.StartURL); err != nil {
				errs = append(errs, fmt.Errorf("audience %q: start_url: %w", a.ID, err))
				continue
			}
		}
		if _, dup := r.byID[a.ID]; dup {
			errs = append(errs, fmt.Errorf("audience %q listed twice", a.ID))
			continue
		}
		if a.Name == "" {
			a.Name = a.ID
		}
		r.list = append(r.list, a)
		r.byID[a.ID] = a
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return r, nil
}

// user is someone who can sign in.
type user struct {
	Username     string `json:"username"`
	Name         string `json:"name"`
	PasswordHash string `json:"password_hash"`
}

// demoUsers are the built-in users. Their passwords are public (printed at
// start); the hashes are precomputed at bcrypt.DefaultCost so that start-up
// does not pay for hashing.
var demoUsers = []struct{ username, name, password, hash string }{
	{"alice", "Alice", "alice-demo-pw", "$2a$10$jGWsm0mGS//OJJDg7Nyjf.RzewWbGU1aV9W3WC3C53uJmC5drfUDO"},
	{"bob", "Bob", "bob-demo-pw", "$2a$10$WtTWqPOl3Oz//GKzOVwqf.urJHpgVzvRdPd5bhLqo.O8p81wRCzBa"},
}

// loadUsers reads the users file, or returns the demo users when there is
// none. demo reports the latter.
func loadUsers(c Config) (users map[string]user, demo bool, err error) {
	var list []user
	if c.UsersFile == "" {
		for _, d := range demoUsers {
			h := []byte(d.hash)
			if c.bcryptCost != 0 {
				if h, err = bcrypt.GenerateFromPassword([]byte(d.password), c.bcryptCost); err != nil {
					return nil, false, err
				}
			}
			list = append(list, user{Username: d.username, Name: d.name, PasswordHash: string(h)})
		}
		demo = true
	} else {
		raw, err := os.ReadFile(c.UsersFile)
		if err != nil {
			return nil, false, fmt.Errorf("users-file: %w", err)
		}
		if err := json.Unmarshal(raw, &list, json.RejectUnknownMembers(true)); err != nil {
			return nil, false, fmt.Errorf("users-file %s: %w", c.UsersFile, err)
		}
	}
	users = make(map[string]user, len(list))
	var errs []error
	for i, u := range list {
		if u.Username == "" {
			errs = append(errs, fmt.Errorf("user %d: username is required", i))
			continue
		}
		if len(u.Username) > maxUsernameLen {
			errs = append(errs, fmt.Errorf("user %d: username longer than %d bytes", i, maxUsernameLen))
			continue
		}
		if _, err := bcrypt.Cost([]byte(u.PasswordHash)); err != nil {
			errs = append(errs, fmt.Errorf("user %q: password_hash is not a bcrypt hash", u.Username))
			continue
		}
		if _, dup := users[u.Username]; dup {
			errs = append(errs, fmt.Errorf("user %q listed twice", u.Username))
			continue
		}
		if u.Name == "" {
			u.Name = u.Username
		}
		users[u.Username] = u
	}
	if err := errors.Join(errs...); err != nil {
		return nil, false, fmt.Errorf("users-file %s: %w", c.UsersFile, err)
	}
	return users, demo, nil
}

// serverConfig is the listener's configuration.
func (c *Config) serverConfig() shared.ServerConfig {
	return shared.ServerConfig{Addr: c.Addr, TLSCertFile: c.TLSCert, TLSKeyFile: c.TLSKey}
}
