package main

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestPprofNotOnServiceListener: the profiles are never on SERVER2's own
// handler, whatever the configuration.
func TestPprofNotOnServiceListener(t *testing.T) {
	ta := newTestApp(t, func(c *Config, _ *Options) { c.PprofAddr = "127.0.0.1:0" })
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/cmdline"} {
		assert.Equal(t, http.StatusNotFound, ta.newBrowser().Get(path).StatusCode, path)
	}
}
