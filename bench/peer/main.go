// Command peer is a benchmark peer, not a relying service: SERVER2's
// handoff job written the way a team would usually write it, to measure
// SERVER2 against (`make compare`). It uses echo v4, golang-jwt v5 with
// keyfunc v3 for SERVER1's JWKS, a mutex map or go-redis SET NX for used
// token ids, a cookie session in a map, one JSON request log line and one
// JSON audit line per handoff.
//
// It checks what such a team checks: alg EdDSA, iss, aud, exp, nbf and iat,
// a jti present and unused. It does not check the token type, the task,
// browser binding, Origin or revocation, and bounds nothing (sessions, body
// size), so it must never be deployed.
//
// POST /handoff answers 303 to /tasks/{id} on accept, 409 with
// {"reason":"replayed"} for a used jti, 401 for any other refusal and 503
// when Redis fails.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"
)

func main() {
	var cfg config
	flag.StringVar(&cfg.Addr, "addr", "127.0.0.1:18091", "listen address (loopback)")
	flag.StringVar(&cfg.Issuer, "issuer", "http://localhost:8081", `the accepted "iss"`)
	flag.StringVar(&cfg.Audience, "audience", "http://127.0.0.1:8082", `the required "aud"`)
	flag.StringVar(&cfg.JWKSURL, "jwks-url", "http://localhost:8081/.well-known/jwks.json", "SERVER1's JWKS")
	flag.StringVar(&cfg.Redis, "redis", "", "a redis:// URL for used token ids (empty: a map in memory)")
	flag.Parse()
	if err := run(cfg); err != nil {
		fmt.Fprintf(os.Stderr, "peer: %v\n", err)
		os.Exit(1)
	}
}

type config struct {
	Addr, Issuer, Audience, JWKSURL, Redis string
}

// claims are the token's claims this peer reads.
type claims struct {
	jwt.RegisteredClaims
	Task struct {
		ID string `json:"id"`
	} `json:"task"`
}

type session struct {
	Subject, Task string
	Expires       time.Time
}

type peer struct {
	log      *slog.Logger
	parser   *jwt.Parser
	keyfunc  jwt.Keyfunc
	used     jtiStore
	mu       sync.Mutex
	sessions map[string]session
}

// jtiStore records used token ids: consume reports false for one seen
// before.
type jtiStore interface {
	consume(ctx context.Context, jti string, exp time.Time) (bool, error)
}

type memoryStore struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

func (s *memoryStore) consume(_ context.Context, jti string, exp time.Time) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.seen[jti]; ok {
		return false, nil
	}
	s.seen[jti] = exp
	return true, nil
}

type redisStore struct{ c *redis.Client }

func (s redisStore) consume(ctx context.Context, jti string, exp time.Time) (bool, error) {
	return s.c.SetNX(ctx, "jti:"+jti, 1, time.Until(exp)+time.Minute).Result()
}

func run(cfg config) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e, closeStore, err := newServer(ctx, cfg, os.Stdout)
	if err != nil {
		return err
	}
	defer closeStore()
	go func() {
		<-ctx.Done()
		_ = e.Close()
	}()
	if err := e.Start(cfg.Addr); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// newServer fetches the JWKS (keyfunc keeps it fresh until ctx ends),
// opens the jti store and returns the peer's routes, logging to logs.
func newServer(ctx context.Context, cfg config, logs io.Writer) (*echo.Echo, func(), error) {
	kf, err := keyfunc.NewDefaultCtx(ctx, []string{cfg.JWKSURL})
	if err != nil {
		return nil, nil, err
	}
	p := &peer{
		log:     slog.New(slog.NewJSONHandler(logs, nil)),
		keyfunc: kf.Keyfunc,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{"EdDSA"}),
			jwt.WithIssuer(cfg.Issuer),
			jwt.WithAudience(cfg.Audience),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(30*time.Second),
		),
		used:     &memoryStore{seen: map[string]time.Time{}},
		sessions: map[string]session{},
	}
	closeStore := func() {}
	if cfg.Redis != "" {
		opt, err := redis.ParseURL(cfg.Redis)
		if err != nil {
			return nil, nil, err
		}
		c := redis.NewClient(opt)
		if err := c.Ping(ctx).Err(); err != nil {
			c.Close()
			return nil, nil, err
		}
		p.used = redisStore{c}
		closeStore = func() { c.Close() }
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.Use(p.requestLog)
	e.GET("/readyz", func(c echo.Context) error { return c.NoContent(http.StatusNoContent) })
	e.POST("/handoff", p.handoff)
	return e, closeStore, nil
}

func (p *peer) requestLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		p.log.Info("request", "method", c.Request().Method, "path", c.Path(),
			"status", c.Response().Status, "duration", time.Since(start))
		return nil
	}
}

func (p *peer) handoff(c echo.Context) error {
	var cl claims
	if _, err := p.parser.ParseWithClaims(c.FormValue("token"), &cl, p.keyfunc); err != nil || cl.ID == "" || cl.ExpiresAt == nil {
		p.log.Info("handoff refused", "reason", "invalid_token")
		return c.JSON(http.StatusUnauthorized, map[string]string{"reason": "invalid_token"})
	}
	fresh, err := p.used.consume(c.Request().Context(), cl.ID, cl.ExpiresAt.Time)
	switch {
	case err != nil:
		return c.JSON(http.StatusServiceUnavailable, map[string]string{"reason": "unavailable"})
	case !fresh:
		p.log.Info("handoff refused", "reason", "replayed", "jti", cl.ID, "sub", cl.Subject)
		return c.JSON(http.StatusConflict, map[string]string{"reason": "replayed"})
	}
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	sid := hex.EncodeToString(id)
	expires := time.Now().Add(15 * time.Minute)
	p.mu.Lock()
	p.sessions[sid] = session{Subject: cl.Subject, Task: cl.Task.ID, Expires: expires}
	p.mu.Unlock()
	c.SetCookie(&http.Cookie{Name: "peer_session", Value: sid, Path: "/", Expires: expires, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	p.log.Info("handoff accepted", "jti", cl.ID, "sub", cl.Subject, "task_id", cl.Task.ID)
	return c.Redirect(http.StatusSeeOther, "/tasks/"+cl.Task.ID)
}
