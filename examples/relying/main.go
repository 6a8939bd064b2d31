// Command relying is a complete relying service on the broker's public API
// and net/http alone: it accepts a handoff from an issuer (SERVER1) by form
// POST, opens a session that expiry or revocation ends, and serves a Bearer API.
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/handoffbroker/handoff/broker"
	"github.com/handoffbroker/handoff/broker/token"
)

func main() {
	issuer := flag.String("issuer", "http://localhost:8081", "the issuer's URL (SERVER1)")
	audience := flag.String("audience", "http://127.0.0.1:8090", "this service's identifier, the tokens' aud")
	addr := flag.String("addr", "127.0.0.1:8090", "listen address")
	ttl := flag.Duration("session-ttl", 15*time.Minute, "lifetime of a session, from its token's issue")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	rp, err := broker.NewRelyingParty(ctx, broker.Config{Issuer: *issuer, Audience: *audience})
	if err != nil {
		log.Fatal(err)
	}
	defer rp.Close()

	var mu sync.Mutex
	sessions := map[string]token.Claims{} // a real service has its own store, swept
	mux := http.NewServeMux()
	// The issuer's "Continue" link starts here: a binding secret for this
	// browser, then on to the issuer to mint a token bound to it.
	mux.Handle("GET /handoff/start", rp.StartHandler(nil))
	mux.Handle("/handoff", rp.HandoffHandler(broker.HandoffConfig{
		Open: func(w http.ResponseWriter, r *http.Request, c *token.Claims) error {
			id := rand.Text()
			mu.Lock()
			sessions[id] = *c
			mu.Unlock()
			http.SetCookie(w, &http.Cookie{Name: "session", Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
			http.Redirect(w, r, "/task", http.StatusSeeOther)
			return nil
		},
	}))
	mux.HandleFunc("GET /task", func(w http.ResponseWriter, r *http.Request) {
		var id string
		if ck, err := r.Cookie("session"); err == nil {
			id = ck.Value
		}
		mu.Lock()
		c, ok := sessions[id]
		if ok = ok && time.Since(c.IssuedAt) <= *ttl && rp.HeldRevocation(c.Ref()) == nil; !ok {
			delete(sessions, id) // none, expired, or its token's jti, key or subject revoked
		}
		mu.Unlock()
		if !ok {
			http.Error(w, "no session", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "%s may %s %s\n", c.Subject, c.Task.Action, c.Task.ID)
	})
	expect := func(r *http.Request) (token.Expect, error) {
		return token.Expect{Task: &token.Task{ID: r.PathValue("id"), Action: r.PathValue("action")}}, nil
	}
	mux.Handle("POST /api/tasks/{id}/{action}", rp.Middleware(expect, nil)(http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) {
			c, _ := broker.ClaimsFromContext(r.Context())
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]string{"status": "done", "task_id": c.Task.ID, "subject": c.Subject})
		})))
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := rp.Ready(r.Context()); err != nil {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})

	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { <-ctx.Done(); _ = srv.Shutdown(context.Background()) }()
	log.Printf("listening on http://%s", *addr)
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
