package shared

import (
	"bytes"
	"encoding/xml"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFavicon: every page names the icon, and the icon is served there,
// cacheable, as an SVG image.
func TestFavicon(t *testing.T) {
	e, _, _ := newTestEcho(t)
	var page bytes.Buffer
	require.NoError(t, e.Renderer.Render(&page, "error.html", map[string]any{}, nil))
	m := regexp.MustCompile(`<link rel="icon" href="([^"]+)" type="image/svg\+xml">`).FindStringSubmatch(page.String())
	require.NotNil(t, m, "the layout names the icon")
	assert.Equal(t, FaviconPath, m[1])

	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, m[1], nil))
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "image/svg+xml", rec.Header().Get("Content-Type"))
	assert.Equal(t, "public, max-age=86400", rec.Header().Get("Cache-Control"))
	assert.Equal(t, "nosniff", rec.Header().Get("X-Content-Type-Options"), "security headers as on every response")
	var svg struct {
		XMLName xml.Name
		ViewBox string `xml:"viewBox,attr"`
	}
	require.NoError(t, xml.Unmarshal(rec.Body.Bytes(), &svg))
	assert.Equal(t, "svg", svg.XMLName.Local)
	assert.Equal(t, "0 0 32 32", svg.ViewBox)
	assert.Less(t, rec.Body.Len(), 1024, "a small icon")
}
