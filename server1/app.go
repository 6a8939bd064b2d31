package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/handoffbroker/handoff/broker/keys"
	"github.com/handoffbroker/handoff/broker/revocation"
	"github.com/handoffbroker/handoff/broker/token"
	"github.com/handoffbroker/handoff/shared"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"golang.org/x/crypto/bcrypt"
)

//go:embed templates/*.html
var templateFS embed.FS

// options are SERVER1's dependencies that are not configuration.
type options struct {
	// Logger receives request, audit and error logs. Default: JSON on
	// stderr at the configured level.
	Logger *slog.Logger
	// Now returns the current time: for tokens, sessions, sign-in and
	// handoff limits, keys and revocations. Default time.Now.
	Now func() time.Time
}

// app is SERVER1: the issuer's HTTP handlers and the state they share.
type app struct {
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	echo    *echo.Echo
	metrics *metrics
	keys    *keys.Keyring
	minter  *token.Minter
	// revocations is the shared record of revoked tokens, subjects and
	// keys; revocationList signs it for /revocations.
	revocations    *revocation.State
	revocationList *revocation.Publisher
	// minted remembers this instance's live tokens, so a user can cancel
	// only their own.
	minted *mintedTokens
	// handoffs limits how fast each user can have tokens minted.
	handoffs *handoffLimiter
	registry *registry
	// pages holds each audience's auto-submit page, by audience id.
	pages    map[string]*autosubmitPage
	tasks    *taskBook
	sessions *shared.Sessions[struct{}]
	logins   *loginLimiter
	// bcryptGate bounds concurrent password hash comparisons.
	bcryptGate *workGate
	users      map[string]user
	// demoUsers is true when the built-in users are in use.
	demoUsers bool
	// dummyHash is compared against when the username is unknown.
	dummyHash     []byte
	secureCookies bool
	// apiKeyDigest is the SHA-256 of Config.APIKey; zero when disabled.
	apiKeyDigest [sha256.Size]byte
	rand         io.Reader
	discovery    []byte
	// results verifies the outcomes relying services send back and
	// records them.
	results *results
}

// newApp validates cfg, opens the keyring (generating a key when the
// directory has none), loads users and the audience registry and registers
// every route. The returned app serves HTTP through ServeHTTP; run starts
// the listener and the key reload loop.
func newApp(cfg Config, opts options) (*app, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		level, _ := cfg.logLevel()
		opts.Logger = shared.NewLogger(os.Stderr, "server1", level, cfg.LogFormat)
	}
	log := opts.Logger
	reg, err := loadRegistry(cfg)
	if err != nil {
		return nil, err
	}
	users, demo, err := loadUsers(cfg)
	if err != nil {
		return nil, err
	}
	ring, err := cfg.openKeyring(opts.Now)
	if err != nil {
		return nil, err
	}
	if len(ring.Keys()) == 0 {
		info, err := ring.Generate(token.Algorithm(cfg.KeyAlg), time.Time{})
		if err != nil {
			return nil, err
		}
		log.Info("generated signing key", "kid", info.ID, "alg", string(info.Algorithm), "dir", cfg.KeysDir)
	}
	minter, err := token.NewMinter(token.MinterConfig{
		Issuer: cfg.Issuer, Keys: ring, DefaultTTL: cfg.TokenTTL, MaxTTL: cfg.MaxTokenTTL, Now: opts.Now,
	})
	if err != nil {
		return nil, err
	}
	revocations, err := revocation.NewState(revocation.StateConfig{Dir: cfg.revocationDir(), Now: opts.Now})
	if err != nil {
		return nil, err
	}
	revocationList, err := revocation.NewPublisher(revocations, minter, cfg.RevocationListTTL)
	if err != nil {
		return nil, err
	}
	a := &app{
		cfg:            cfg,
		log:            log,
		now:            opts.Now,
		metrics:        newMetrics(),
		keys:           ring,
		minter:         minter,
		revocations:    revocations,
		revocationList: revocationList,
		minted:         newMintedTokens(opts.Now, maxMintedRecords, int(cfg.liveTokensPerUser())),
		handoffs:       newHandoffLimiter(cfg.HandoffsPerMinute, cfg.HandoffBurst),
		registry:       reg,
		tasks:          demoTasks(reg),
		logins:         newLoginLimiter(func(name string) bool { _, ok := users[name]; return ok }),
		bcryptGate:     newWorkGate(runtime.GOMAXPROCS(0), 4*runtime.GOMAXPROCS(0)),
		users:          users,
		demoUsers:      demo,
		secureCookies:  strings.HasPrefix(cfg.Issuer, "https://"),
		rand:           rand.Reader,
	}
	if a.sessions, err = newSessionStore(opts.Now, a.rand); err != nil {
		return nil, err
	}
	if a.results, err = newResults(cfg, reg, opts.Now); err != nil {
		return nil, err
	}
	if cfg.APIKey != "" {
		a.apiKeyDigest = sha256.Sum256([]byte(cfg.APIKey))
	}
	a.dummyHash = dummyHash(users)
	if a.discovery, err = discoveryDocument(cfg, reg); err != nil {
		return nil, err
	}
	renderer, err := shared.NewRenderer(cfg.PortalName, templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	a.echo = shared.NewEcho(shared.EchoConfig{
		Service: cfg.PortalName, Logger: log, Metrics: a.metrics.Metrics,
		PolledRoutes: []string{revocationsPath},
	})
	a.echo.Renderer = renderer
	if a.pages, err = newAutosubmitPages(renderer, reg); err != nil {
		return nil, err
	}
	a.routes()
	return a, nil
}

// dummyHash returns the user hash of the highest bcrypt cost, compared
// against when the username is unknown, so that a failed sign-in for an
// unknown user costs as much as one for a known user. The comparison's
// result is ignored.
func dummyHash(users map[string]user) []byte {
	var hash []byte
	best := -1
	for _, u := range users {
		if c, err := bcrypt.Cost([]byte(u.PasswordHash)); err == nil && c > best {
			best, hash = c, []byte(u.PasswordHash)
		}
	}
	return hash
}

// revocationsPath serves the signed revocation list every relying service
// polls.
const revocationsPath = "/revocations"

func (a *app) routes() {
	e := a.echo
	forms := a.csrf("form:"+csrfField+",header:"+echo.HeaderXCSRFToken, nil)
	// The API takes the token only from the header: a cross-site form can
	// set form fields but not headers.
	api := a.csrf("header:"+echo.HeaderXCSRFToken, a.skipAPICSRF)

	e.GET("/", a.handleIndex, forms)
	e.GET("/login", a.handleLoginForm, forms)
	e.POST("/login", a.handleLogin, forms)
	e.POST("/logout", a.handleLogout, forms)
	e.POST("/logout-everywhere", a.handleLogoutEverywhere, forms)
	e.POST("/handoffs", a.handleHandoff, forms)
	e.GET("/handoffs/bound", a.handleBoundHandoff)
	e.POST("/handoffs/result", a.handleResult)
	e.POST("/api/v1/handoffs", a.handleAPIHandoff, api)
	e.POST("/api/v1/handoffs/:jti/revoke", a.handleAPIRevoke, api)
	e.GET("/.well-known/jwks.json", a.handleJWKS)
	e.GET("/.well-known/handoff-configuration", a.handleDiscovery)
	e.GET(revocationsPath, a.handleRevocations)
	e.GET("/readyz", shared.Readyz(
		shared.Check{Name: "signing_key", Check: a.checkSigningKey},
		shared.Check{Name: "revocation_list", Check: a.checkRevocationList},
	))
}

// ServeHTTP serves SERVER1's routes.
func (a *app) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.echo.ServeHTTP(w, r) }

// errCSRF is the rejection of a state-changing request that did not prove
// it came from one of SERVER1's own pages (cross-site request forgery).
func errCSRF(cause error) error {
	return &shared.Error{
		Status: http.StatusForbidden, Code: "csrf_invalid",
		Title:    "This form has expired or was not sent from this site.",
		Detail:   "Go back, reload the page and try again.",
		Internal: cause,
	}
}

// csrf returns echo's double-submit CSRF middleware: a random token in a
// SameSite=Lax cookie that the form (or header) must echo back. Browsers
// that send Sec-Fetch-Site are checked on it instead; a cross-site
// state-changing request is refused outright.
func (a *app) csrf(lookup string, skip middleware.Skipper) echo.MiddlewareFunc {
	return middleware.CSRFWithConfig(middleware.CSRFConfig{
		Skipper:        skip,
		TokenLookup:    lookup,
		CookieName:     csrfCookie,
		CookieMaxAge:   int(csrfMaxAge / time.Second),
		CookiePath:     "/",
		CookieHTTPOnly: true,
		CookieSecure:   a.secureCookies,
		CookieSameSite: http.SameSiteLaxMode,
		ErrorHandler:   func(err error, _ echo.Context) error { return errCSRF(err) },
		AllowSecFetchSiteFunc: func(c echo.Context) (bool, error) {
			if c.Request().Header.Get(echo.HeaderSecFetchSite) == "cross-site" {
				return false, errCSRF(errors.New("cross-site request"))
			}
			return false, nil
		},
	})
}

// skipAPICSRF skips the CSRF check for callers that use an API key (not
// ambient browser credentials, so not forgeable cross-site) and for requests
// without a session (they carry no authority to abuse; the handler answers
// 401).
func (a *app) skipAPICSRF(c echo.Context) bool {
	if hasAPIKey(c) {
		return true
	}
	_, signedIn := a.currentUser(c)
	return !signedIn
}

func (a *app) checkSigningKey(context.Context) error {
	if slices.ContainsFunc(a.keys.Keys(), func(k keys.Info) bool { return k.State == keys.Current }) {
		return nil
	}
	return errors.New("no current signing key")
}

// reloadKeys re-reads the keys directory and logs when the signing key
// changed.
func (a *app) reloadKeys() error {
	before := a.currentKeyID()
	if err := a.keys.Reload(); err != nil {
		return err
	}
	if after := a.currentKeyID(); after != before {
		a.log.Info("signing key changed", "kid", after, "previous_kid", before)
	}
	return nil
}

func (a *app) currentKeyID() string {
	for _, k := range a.keys.Keys() {
		if k.State == keys.Current {
			return k.ID
		}
	}
	return ""
}

// watchKeys reloads the keyring and the revocation state every interval
// until ctx is done, so keys and revocations written by another process
// take effect without a restart; it starts automatic rotations when they
// are due. Every pruneEvery it deletes expired keys and revocations. A
// failure is logged once until the error changes.
func (a *app) watchKeys(ctx context.Context, interval, pruneEvery time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	keysErr, revErr, rotateErr := &loggedError{}, &loggedError{}, &loggedError{}
	lastPrune := a.now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		keysErr.report(a.log, "reloading signing keys", a.reloadKeys())
		revErr.report(a.log, "reloading revocations", a.revocations.Reload())
		rotateErr.report(a.log, "automatic key rotation", a.rotateIfDue())
		if now := a.now(); now.Sub(lastPrune) >= pruneEvery {
			lastPrune = now
			a.prune()
		}
	}
}

// loggedError logs a recurring failure once until it changes, and its
// recovery.
type loggedError struct{ last string }

func (l *loggedError) report(log *slog.Logger, what string, err error) {
	switch {
	case err != nil && err.Error() != l.last:
		l.last = err.Error()
		log.Warn(what+" failed", "error", l.last)
	case err == nil && l.last != "":
		l.last = ""
		log.Info(what + " works again")
	}
}

// prune deletes expired keys and revocation entries. Instances sharing the
// directories may prune the same file at once; the loser's error is
// harmless, so it is only logged.
func (a *app) prune() {
	if gone, err := a.keys.Prune(); err != nil {
		a.log.Warn("pruning expired keys failed", "error", err.Error())
	} else if len(gone) > 0 {
		a.log.Info("pruned expired keys", "kids", gone)
	}
	if n, err := a.revocations.Prune(); err != nil {
		a.log.Warn("pruning expired revocations failed", "error", err.Error())
	} else if n > 0 {
		a.log.Info("pruned expired revocations", "count", n)
	}
	a.minted.sweep()
	a.sessions.Sweep()
}

// rotateIfDue starts a rotation when Config.RotateEvery is set, the current
// key has signed that long and no rotation is under way. Instances sharing
// the directory may both start one in the same instant; the later key then
// wins (see keys.Keyring.Rotate).
func (a *app) rotateIfDue() error {
	if a.cfg.RotateEvery <= 0 {
		return nil
	}
	now := a.now()
	due := false
	for _, k := range a.keys.Keys() {
		switch {
		case k.State == keys.Next:
			return nil
		case k.State == keys.Current && !now.Before(k.ActivatesAt.Add(a.cfg.RotateEvery)):
			due = true
		}
	}
	if !due {
		return nil
	}
	info, err := a.keys.Rotate(token.Algorithm(a.cfg.KeyAlg), a.cfg.publishFor())
	if errors.Is(err, keys.ErrRotationInProgress) {
		return nil
	}
	if err != nil {
		return err
	}
	a.log.Info("key rotation started", "kid", info.ID, "alg", string(info.Algorithm),
		"activates_at", info.ActivatesAt.UTC().Format(time.RFC3339))
	return nil
}

// run serves until ctx is done. ready is called with the bound address.
func (a *app) run(ctx context.Context, ready func(addr string)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go a.watchKeys(ctx, time.Second, time.Minute)
	if a.results.keys != nil {
		a.results.keys.Start(ctx)
	}
	if a.cfg.PprofAddr != "" {
		go func() {
			if err := shared.ServePprof(ctx, a.cfg.PprofAddr, a.log, nil); err != nil {
				a.log.Error("pprof server stopped", "error", err.Error())
			}
		}()
	}
	return shared.Serve(ctx, a.echo, a.cfg.serverConfig(), a.log, ready)
}

// discoveryDocument is the body of /.well-known/handoff-configuration.
func discoveryDocument(cfg Config, reg *registry) ([]byte, error) {
	jwksURI, err := url.JoinPath(cfg.Issuer, "/.well-known/jwks.json")
	if err != nil {
		return nil, fmt.Errorf("issuer: %w", err)
	}
	revocationURI, err := url.JoinPath(cfg.Issuer, revocationsPath)
	if err != nil {
		return nil, fmt.Errorf("issuer: %w", err)
	}
	boundURI, err := url.JoinPath(cfg.Issuer, "/handoffs/bound")
	if err != nil {
		return nil, fmt.Errorf("issuer: %w", err)
	}
	homeURI, err := url.JoinPath(cfg.Issuer, "/")
	if err != nil {
		return nil, fmt.Errorf("issuer: %w", err)
	}
	iu, err := url.Parse(cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("issuer: %w", err)
	}
	doc := struct {
		Issuer             string            `json:"issuer"`
		JWKSURI            string            `json:"jwks_uri"`
		RevocationEndpoint string            `json:"revocation_endpoint"`
		TokenTypes         []string          `json:"token_types_supported"`
		SigningAlgs        []token.Algorithm `json:"signing_alg_values_supported"`
		HandoffEndpoints   map[string]string `json:"handoff_endpoints"`
		BoundEndpoint      string            `json:"bound_handoff_endpoint"`
		HandoffOrigins     []string          `json:"handoff_origins"`
		DisplayName        string            `json:"display_name"`
		HomepageURI        string            `json:"homepage_uri"`
	}{
		Issuer:             cfg.Issuer,
		JWKSURI:            jwksURI,
		RevocationEndpoint: revocationURI,
		TokenTypes:         []string{token.HandoffTokenType},
		SigningAlgs:        token.Algorithms(),
		HandoffEndpoints:   make(map[string]string),
		BoundEndpoint:      boundURI,
		HandoffOrigins:     []string{iu.Scheme + "://" + iu.Host},
		DisplayName:        cfg.PortalName,
		HomepageURI:        homeURI,
	}
	for _, a := range reg.list {
		doc.HandoffEndpoints[a.ID] = a.HandoffURL
	}
	return marshalJSON(doc)
}
