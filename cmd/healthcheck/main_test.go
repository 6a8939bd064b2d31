package main

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestRun(t *testing.T) {
	t.Parallel()
	status := func(code int) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) })
	}
	up := httptest.NewServer(status(http.StatusOK))
	t.Cleanup(up.Close)
	tests := []struct {
		name        string
		giveHandler http.Handler
		giveArgs    func(base string) []string
		wantCode    int
	}{
		{
			name:        "ok/ready",
			giveHandler: status(http.StatusOK),
			giveArgs:    func(base string) []string { return []string{base + "/readyz"} },
			wantCode:    0,
		},
		{
			name:        "fail/not_ready",
			giveHandler: status(http.StatusServiceUnavailable),
			giveArgs:    func(base string) []string { return []string{base + "/readyz"} },
			wantCode:    1,
		},
		{
			name:        "fail/redirect_to_a_ready_service",
			giveHandler: http.RedirectHandler(up.URL+"/readyz", http.StatusFound),
			giveArgs:    func(base string) []string { return []string{base + "/readyz"} },
			wantCode:    1,
		},
		{
			name: "fail/slower_than_timeout",
			giveHandler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				<-r.Context().Done()
			}),
			giveArgs: func(base string) []string { return []string{"--timeout", "50ms", base + "/readyz"} },
			wantCode: 1,
		},
		{
			name:     "fail/nothing_listening",
			giveArgs: func(string) []string { return []string{"http://" + closedAddr(t) + "/readyz"} },
			wantCode: 1,
		},
		{
			name:     "usage/no_url",
			giveArgs: func(string) []string { return nil },
			wantCode: 2,
		},
		{
			name:     "usage/not_http",
			giveArgs: func(string) []string { return []string{"ftp://127.0.0.1/readyz"} },
			wantCode: 2,
		},
		{
			name:     "usage/two_urls",
			giveArgs: func(base string) []string { return []string{base, base} },
			wantCode: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			base := "http://127.0.0.1:1"
			if tt.giveHandler != nil {
				srv := httptest.NewServer(tt.giveHandler)
				t.Cleanup(srv.Close)
				base = srv.URL
			}
			if got := run(tt.giveArgs(base), io.Discard); got != tt.wantCode {
				t.Errorf("run(%q) = %d, want %d", tt.giveArgs(base), got, tt.wantCode)
			}
		})
	}
}

// closedAddr returns a loopback address that nothing listens on any more.
func closedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
