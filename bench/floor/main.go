// Command floor is a benchmark peer, not a relying service: the least a
// server can do to answer SERVER2's handoff POST. net/http parses the form,
// one raw ed25519.Verify checks the token's signature over its JWS signing
// input with SERVER1's public key, and it answers 303. It checks no claim,
// no replay and opens no session, so it must never be deployed; it is the
// floor that `make compare` measures SERVER2 against.
//
// SERVER1's JWKS is fetched once at start and must hold exactly one Ed25519
// key.
package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18090", "listen address (loopback)")
	jwksURL := flag.String("jwks-url", "http://localhost:8081/.well-known/jwks.json", "SERVER1's JWKS, fetched once at start")
	flag.Parse()
	if err := run(*addr, *jwksURL); err != nil {
		fmt.Fprintf(os.Stderr, "floor: %v\n", err)
		os.Exit(1)
	}
}

func run(addr, jwksURL string) error {
	pub, err := fetchKey(jwksURL)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("POST /handoff", func(w http.ResponseWriter, r *http.Request) {
		if !verify(pub, r.PostFormValue("token")) {
			http.Error(w, "invalid token", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Location", "/done")
		w.WriteHeader(http.StatusSeeOther)
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// verify reports whether the compact JWS tok carries a valid Ed25519
// signature by pub over its signing input. Nothing else is checked.
func verify(pub ed25519.PublicKey, tok string) bool {
	i := strings.LastIndexByte(tok, '.')
	if i < 0 {
		return false
	}
	sig, err := base64.RawURLEncoding.DecodeString(tok[i+1:])
	if err != nil {
		return false
	}
	return ed25519.Verify(pub, []byte(tok[:i]), sig)
}

// fetchKey returns the one Ed25519 key of the JWKS at url.
func fetchKey(url string) (ed25519.PublicKey, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	var set struct {
		Keys []struct {
			Kty string `json:"kty"`
			Crv string `json:"crv"`
			X   string `json:"x"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		return nil, fmt.Errorf("JWKS: %w", err)
	}
	var keys []ed25519.PublicKey
	for _, k := range set.Keys {
		if k.Kty != "OKP" || k.Crv != "Ed25519" {
			continue
		}
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, errors.New("JWKS: malformed Ed25519 key")
		}
		keys = append(keys, x)
	}
	if len(keys) != 1 {
		return nil, fmt.Errorf("JWKS holds %d Ed25519 keys, want exactly one", len(keys))
	}
	return keys[0], nil
}
