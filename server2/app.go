package main

import (
	"context"
	"crypto/rand"
	"embed"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/handoffbroker/handoff/broker/fetch"
	"github.com/handoffbroker/handoff/broker/keys"
	"github.com/handoffbroker/handoff/broker/token"
	"github.com/handoffbroker/handoff/shared"
	"github.com/labstack/echo/v4"
)

// ServiceName is SERVER2's name in pages.
const ServiceName = "Payments"

//go:embed templates/*.html
var templateFiles embed.FS

// Options are SERVER2's dependencies that are not configuration.
type Options struct {
	// Logger receives request, audit and error logs. Default: JSON on
	// stderr at the configured level.
	Logger *slog.Logger
	// Now returns the current time. Default time.Now.
	Now func() time.Time
	// Rand is the source of session ids and CSRF tokens. Default
	// crypto/rand.Reader.
	Rand io.Reader
	// ReplayStore, when set, replaces the store Config.ReplayStore names
	// (for tests that inject faults). Its readiness check always passes.
	// It also records completed tasks if it has MarkDone and IsDone (as
	// redisstore.Store does); otherwise they are recorded in memory.
	ReplayStore token.ReplayStore
	// DiscoveryRetry is the first wait before retrying a failed issuer
	// metadata fetch; it doubles up to 30s. Default 1s.
	DiscoveryRetry time.Duration
	// Transport carries every fetch from the issuer (metadata, JWKS,
	// revocation list), for a private CA or a test server's certificate;
	// the fetch policy still checks every URL and redirect. Default
	// http.DefaultTransport.
	Transport http.RoundTripper
}

// App is SERVER2, the relying service: it verifies handoff tokens from the
// trusted issuer, opens its own session for the task a token names, and
// serves the task API for bearer tokens.
type App struct {
	cfg      Config
	opts     Options
	log      *slog.Logger
	metrics  *Metrics
	keys     *issuerKeys
	fetch    *fetch.Policy
	replay   replayBackend
	verifier *token.Verifier
	sessions *shared.Sessions[session]
	echo     *echo.Echo

	revocations *issuerRevocations
}

// NewApp builds SERVER2 from cfg. It does not touch the network: call
// Start to fetch the issuer's keys in the background.
func NewApp(cfg Config, opts Options) (*App, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	if opts.Logger == nil {
		opts.Logger = shared.NewLogger(os.Stderr, "server2", cfg.LogLevel)
	}
	if opts.DiscoveryRetry <= 0 {
		opts.DiscoveryRetry = time.Second
	}
	fetch, err := cfg.fetchPolicy()
	if err != nil {
		return nil, err
	}
	a := &App{
		cfg:     cfg,
		opts:    opts,
		log:     opts.Logger,
		metrics: newMetrics(),
		keys:    &issuerKeys{},
		fetch:   fetch,

		revocations: &issuerRevocations{failOpen: cfg.RevocationFailOpen},
	}
	if a.sessions, err = shared.NewSessions[session](shared.SessionsConfig{
		TTL: cfg.SessionTTL, MaxSessions: cfg.MaxSessions, MaxPerOwner: cfg.MaxSessionsPerSubject,
		Now: opts.Now, Rand: opts.Rand,
	}); err != nil {
		return nil, err
	}
	if cfg.JWKSURL != "" {
		rk, err := a.newRemoteKeys(cfg.JWKSURL)
		if err != nil {
			return nil, err
		}
		a.keys.remote.Store(rk)
	}

	if opts.ReplayStore != nil {
		a.replay = replayBackend{
			Store:       opts.ReplayStore,
			Check:       func(context.Context) error { return nil },
			Close:       func() error { return nil },
			Completions: newMemoryCompletions(opts.Now),
		}
		if cs, ok := opts.ReplayStore.(completionStore); ok {
			a.replay.Completions = cs
		}
	} else {
		rb, err := openReplayStore(cfg.ReplayStore, opts.Now)
		if err != nil {
			return nil, err
		}
		a.replay = rb
	}
	switch cfg.RevocationURL {
	case RevocationOff:
		a.revocations.off.Store(true)
		a.log.Warn("revocation checks are off (revocation-url=off): revoked tokens, subjects and keys are accepted")
	case "":
		// Discovered in Start, with the JWKS URL (validate requires
		// revocation-url whenever jwks-url is set).
	default:
		rr, err := a.newRemoteRevocations(cfg.RevocationURL)
		if err != nil {
			_ = a.replay.Close()
			return nil, err
		}
		a.revocations.remote.Store(rr)
	}
	v, err := token.NewVerifier(token.VerifierConfig{
		Issuers:     []token.TrustedIssuer{{Issuer: cfg.TrustedIssuer, Keys: a.keys}},
		Audience:    cfg.Audience,
		Replay:      newInstrumentedReplay(a.replay.Store, a.replay.Kind, a.metrics),
		Revocation:  a.revocations,
		Leeway:      cfg.Leeway,
		MaxLifetime: cfg.MaxTokenLifetime,
		Now:         opts.Now,
	})
	if err != nil {
		_ = a.replay.Close()
		return nil, err
	}
	a.verifier = v

	a.registerGauges()

	if err := a.routes(); err != nil {
		_ = a.replay.Close()
		return nil, err
	}
	return a, nil
}

// newRemoteKeys builds the cached JWKS client for jwksURL, counting every
// fetch in JWKSFetches.
func (a *App) newRemoteKeys(jwksURL string) (*keys.Remote, error) {
	c := a.cfg
	return keys.NewRemote(keys.RemoteConfig{
		URL:                jwksURL,
		Policy:             a.fetch,
		Client:             &http.Client{Timeout: c.JWKSTimeout, Transport: a.opts.Transport},
		Timeout:            c.JWKSTimeout,
		MinRefresh:         c.JWKSMinRefresh,
		MaxRefresh:         max(c.JWKSMinRefresh, min(time.Hour, c.JWKSMaxStale)),
		UnknownKidCooldown: c.JWKSCooldown,
		MaxStale:           c.JWKSMaxStale,
		Now:                a.opts.Now,
		OnFetch:            func(result string) { a.metrics.JWKSFetches.WithLabelValues(result).Inc() },
	})
}

// Start runs the background work until ctx is done: discovering the JWKS
// URL when it was not configured, keeping the issuer's keys fresh, and
// sweeping expired sessions and completions. It returns at once.
func (a *App) Start(ctx context.Context) {
	if rr := a.revocations.remote.Load(); rr != nil {
		rr.Start(ctx)
	}
	if rk := a.keys.remote.Load(); rk != nil {
		rk.Start(ctx)
	} else {
		go discoverLoop(ctx, a.log, metadataClient(a.fetch, a.cfg.JWKSTimeout, a.opts.Transport), a.fetch, a.opts.DiscoveryRetry, 30*time.Second,
			func(md issuerMetadata) error {
				rk, err := a.newRemoteKeys(md.JWKSURI)
				if err != nil {
					return err
				}
				// The list is in place before the keys: no token passes
				// verification while revocation is still undecided.
				if err := a.startDiscoveredRevocations(ctx, md.RevocationEndpoint); err != nil {
					return err
				}
				if !a.keys.remote.CompareAndSwap(nil, rk) {
					return errors.New("JWKS URL already set")
				}
				rk.Start(ctx)
				return nil
			})
	}
	go func() {
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				a.sessions.Sweep()
				if m, ok := a.replay.Completions.(*memoryCompletions); ok {
					m.sweep()
				}
			}
		}
	}()
}

// errNoRevocationEndpoint fails discovery when the issuer advertises no
// revocation list and revocation was not turned off explicitly.
var errNoRevocationEndpoint = errors.New(`the issuer's handoff configuration has no revocation_endpoint: set revocation-url to its revocation list, or to "off" to run without revocation checks`)

// startDiscoveredRevocations starts polling the revocation list the
// issuer advertises, unless one is configured or revocation is off. An
// issuer that advertises none fails discovery (retried): revocation is off
// only when configured so.
func (a *App) startDiscoveredRevocations(ctx context.Context, endpoint string) error {
	switch {
	case a.revocations.remote.Load() != nil || a.revocations.off.Load():
		return nil
	case endpoint == "":
		return errNoRevocationEndpoint
	}
	rr, err := a.newRemoteRevocations(endpoint)
	if err != nil {
		return err
	}
	if a.revocations.remote.CompareAndSwap(nil, rr) {
		rr.Start(ctx)
	}
	return nil
}

// Handler returns the HTTP handler serving every route.
func (a *App) Handler() http.Handler { return a.echo }

// Metrics returns SERVER2's Prometheus series.
func (a *App) Metrics() *Metrics { return a.metrics }

// Close releases the replay store.
func (a *App) Close() error { return a.replay.Close() }

// readyChecks are the /readyz conditions: SERVER1's keys are held, the
// replay store answers and a fresh revocation list is held (unless
// revocation is off).
func (a *App) readyChecks() []shared.Check {
	return []shared.Check{
		{Name: "jwks", Check: func(context.Context) error {
			if !a.keys.Ready() {
				return errors.New("no usable JWKS")
			}
			return nil
		}},
		{Name: "replay_store", Check: a.replay.Check},
		{Name: "revocations", Check: a.revocations.check},
	}
}

func (a *App) routes() error {
	r, err := shared.NewRenderer(ServiceName, templateFiles, "templates/*.html")
	if err != nil {
		return err
	}
	e := shared.NewEcho(shared.EchoConfig{Service: ServiceName, Logger: a.log, Metrics: a.metrics.Metrics, BodyLimit: "16K"})
	e.Renderer = r
	e.GET("/readyz", shared.Readyz(a.readyChecks()...))
	e.GET("/", a.index)
	e.POST("/handoff", a.postHandoff)
	e.Match([]string{http.MethodGet, http.MethodHead}, "/handoff", a.getHandoff)
	e.GET("/tasks/:id", a.taskPage)
	e.POST("/tasks/:id/complete", a.completeTask)
	e.POST("/api/v1/tasks/:id/:action", a.apiTask)
	a.echo = e
	return nil
}
