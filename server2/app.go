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

	"github.com/handoffbroker/handoff/broker"
	"github.com/handoffbroker/handoff/broker/revocation"
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
	// metadata fetch; it doubles up to 30s. Default 1s
	// (broker.Config.DiscoveryRetry).
	DiscoveryRetry time.Duration
	// Transport carries every fetch from the issuer (metadata, JWKS,
	// revocation list), for a private CA or a test server's certificate;
	// the fetch policy still checks every URL and redirect. Default
	// http.DefaultTransport.
	Transport http.RoundTripper
}

// App is SERVER2, the relying service: it verifies handoff tokens from the
// trusted issuer through a broker.RelyingParty, opens its own session for
// the task a token names, and serves the task API for bearer tokens.
type App struct {
	cfg      Config
	opts     Options
	log      *slog.Logger
	metrics  *Metrics
	rp       *broker.RelyingParty
	replay   replayBackend
	sessions *shared.Sessions[session]
	results  *resultSigner
	echo     *echo.Echo
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
		opts.Logger = shared.NewLogger(os.Stderr, "server2", cfg.LogLevel, cfg.LogFormat)
	}
	a := &App{cfg: cfg, opts: opts, log: opts.Logger, metrics: newMetrics()}
	var err error
	if a.results, err = newResultSigner(cfg, opts.Now); err != nil {
		return nil, err
	}
	if a.sessions, err = shared.NewSessions[session](shared.SessionsConfig{
		TTL: cfg.SessionTTL, MaxSessions: cfg.MaxSessions, MaxPerOwner: cfg.MaxSessionsPerSubject,
		Now: opts.Now, Rand: opts.Rand,
	}); err != nil {
		return nil, err
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
	} else if a.replay, err = openReplayStore(cfg.ReplayStore, opts.Now); err != nil {
		return nil, err
	}
	if a.rp, err = a.newRelyingParty(); err != nil {
		_ = a.replay.Close()
		return nil, err
	}
	a.registerGauges()
	if err := a.routes(); err != nil {
		_ = a.Close()
		return nil, err
	}
	return a, nil
}

// newRelyingParty is the one place SERVER2's configuration becomes a
// broker.Config: the replay store instrumented, fetches counted, sessions
// marked when a new revocation list names them.
func (a *App) newRelyingParty() (*broker.RelyingParty, error) {
	bc := a.cfg.brokerConfig()
	bc.Replay = newInstrumentedReplay(a.replay, a.metrics)
	bc.Transport = a.opts.Transport
	bc.DiscoveryRetry = a.opts.DiscoveryRetry
	bc.OnJWKSFetch = func(result string) { a.metrics.JWKSFetches.WithLabelValues(result).Inc() }
	bc.OnRevocationFetch = a.onRevocationFetch
	bc.Logger = a.log
	bc.Now = a.opts.Now
	// With a replay store replicas share (Redis), each replica records
	// the revocations it learns there; the relying party asks a token's
	// mark in the same round trip as its consume.
	if sh, ok := bc.Replay.(revocation.Sharer); ok {
		bc.RevocationShared = sh
	}
	return broker.New(bc)
}

// Start runs the background work until ctx is done: discovering the
// issuer's URLs when they were not configured, keeping its keys and
// revocation list fresh, re-reading the result signing keys of --keys-dir,
// and sweeping expired sessions and completions.
// It returns at once.
func (a *App) Start(ctx context.Context) {
	a.rp.Start(ctx)
	go func() {
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		reload := time.NewTicker(5 * time.Second)
		defer reload.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-reload.C:
				a.results.reload(a.log)
			case <-t.C:
				a.sessions.Sweep()
				if m, ok := a.replay.Completions.(*memoryCompletions); ok {
					m.sweep()
				}
			}
		}
	}()
}

// Handler returns the HTTP handler serving every route.
func (a *App) Handler() http.Handler { return a.echo }

// Metrics returns SERVER2's Prometheus series.
func (a *App) Metrics() *Metrics { return a.metrics }

// Close stops the relying party and releases the replay store.
func (a *App) Close() error { return errors.Join(a.rp.Close(), a.replay.Close()) }

// readyChecks are the /readyz conditions, the relying party's: SERVER1's
// keys are held, the replay store answers and a fresh revocation list is
// held ("off" when revocation is off).
func (a *App) readyChecks() []shared.Check {
	var checks []shared.Check
	for _, c := range a.rp.Checks() {
		check := c.Check
		checks = append(checks, shared.Check{Name: c.Name, Check: func(ctx context.Context) error {
			if err := check(ctx); errors.Is(err, broker.ErrRevocationOff) {
				return shared.ErrCheckOff
			} else {
				return err
			}
		}})
	}
	return checks
}

func (a *App) routes() error {
	r, err := shared.NewRenderer(ServiceName, templateFiles, "templates/*.html")
	if err != nil {
		return err
	}
	e := shared.NewEcho(shared.EchoConfig{Service: ServiceName, Logger: a.log, Metrics: a.metrics.Metrics, BodyLimit: "16K"})
	r.SetPortal(a.portal)
	e.Renderer = r
	e.GET("/readyz", shared.Readyz(a.readyChecks()...))
	e.GET("/", a.index)
	e.Match([]string{http.MethodGet, http.MethodHead, http.MethodPost}, "/handoff", echoHandler(a.rp.HandoffHandler(broker.HandoffConfig{
		Admit: a.reserveSession,
		Open:  a.openSession,
		Error: a.handoffRefused,
	})))
	e.GET("/handoff/start", echoHandler(a.rp.StartHandler(a.handoffRefused)))
	e.GET("/tasks/:id", a.taskPage)
	e.POST("/tasks/:id/complete", a.completeTask)
	e.POST("/tasks/:id/cancel", a.cancelTask)
	e.GET("/.well-known/jwks.json", a.handleJWKS)
	e.GET("/.well-known/handoff-configuration", a.handleMetadata)
	e.POST("/api/v1/tasks/:id/:action", echoBehind(a.rp.Middleware(a.expectTask, a.apiRefused), a.apiTask))
	a.echo = e
	return nil
}
