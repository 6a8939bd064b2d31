package shared

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"
)

// CheckLoopback returns an error unless addr is host:port with host a
// loopback IP address or "localhost": the profiling endpoint shows the
// process's memory and stacks, so it must never listen where anyone but
// the machine's own users can reach it.
func CheckLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("host %q is not a loopback address", host)
}

// ServePprof serves the net/http/pprof endpoints under /debug/pprof/ on
// addr, a loopback address (CheckLoopback), on its own listener apart from
// the service's, until ctx is done. (Importing net/http/pprof also
// registers them on http.DefaultServeMux, which neither server serves.)
// ready, if not nil, is called with the bound address. It is for profiling
// a running server: off unless an operator asks for it.
func ServePprof(ctx context.Context, addr string, log *slog.Logger, ready func(addr string)) error {
	if err := CheckLoopback(addr); err != nil {
		return fmt.Errorf("pprof address: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	// "localhost" is resolved by the system: refuse whatever it resolved
	// to unless that is loopback too.
	if ta, ok := ln.Addr().(*net.TCPAddr); !ok || !ta.IP.IsLoopback() {
		_ = ln.Close()
		return fmt.Errorf("pprof address: %s is not a loopback address", ln.Addr())
	}
	srv := &http.Server{Handler: loopbackHostOnly(mux), ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	log.Info("pprof listening", "addr", ln.Addr().String())
	if ready != nil {
		ready(ln.Addr().String())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	_ = srv.Close()
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// loopbackHostOnly answers 403 to a request whose Host is not a loopback
// IP literal or localhost, and to one a web page sent. The first stops
// DNS rebinding: a page whose name an attacker re-points at 127.0.0.1
// reaches the loopback listener from the user's browser, but with the
// attacker's name in Host. The second stops a page's blind requests to
// 127.0.0.1 (a CPU profile or trace costs the server CPU even unread):
// browsers mark those with Origin or Sec-Fetch-Site, go tool pprof and
// curl send neither.
func loopbackHostOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		ip := net.ParseIP(host)
		if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			http.Error(w, "forbidden: Host must be a loopback address or localhost", http.StatusForbidden)
			return
		}
		if site := r.Header.Get("Sec-Fetch-Site"); r.Header.Get("Origin") != "" || (site != "" && site != "none") {
			http.Error(w, "forbidden: not for requests from web pages", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}
