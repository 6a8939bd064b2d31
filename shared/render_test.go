package shared

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/handoffbroker/handoff/shared/sharedtest"
	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/html"
)

// TestRenderer_portal: with SetPortal every page, the error page included,
// links back to the portal; without it, none does.
func TestRenderer_portal(t *testing.T) {
	tests := []struct {
		name       string
		givePortal *Portal
		wantLink   string
		wantText   string
		wantRetry  string
	}{
		{name: "ok/portal", givePortal: &Portal{Name: "Customer Portal", URL: "http://portal.test/"},
			wantLink: "http://portal.test/", wantText: "Back to Customer Portal", wantRetry: "Start again on Customer Portal"},
		{name: "ok/no_portal", wantRetry: "Start again"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _, _ := newTestEcho(t)
			if tt.givePortal != nil {
				p := *tt.givePortal
				e.Renderer.(*Renderer).SetPortal(func() Portal { return p })
			}
			e.GET("/x", func(echo.Context) error {
				return &Error{Status: http.StatusUnauthorized, Code: "expired", Title: "Expired.", Retry: "http://portal.test/"}
			})
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodGet, "/x", nil)
			req.Header.Set("Accept", "text/html")

			e.ServeHTTP(rec, req)

			require.Equal(t, http.StatusUnauthorized, rec.Code)
			doc, err := html.Parse(strings.NewReader(rec.Body.String()))
			require.NoError(t, err)
			link := byID(doc, "portal-link")
			retry := byID(doc, "retry")
			if tt.wantLink == "" {
				assert.Nil(t, link, "no portal, no link")
			} else {
				require.NotNil(t, link, rec.Body.String())
				href, _ := sharedtest.Attr(link, "href")
				assert.Equal(t, tt.wantLink, href)
				assert.Equal(t, tt.wantText, sharedtest.Text(link))
			}
			require.NotNil(t, retry)
			assert.Equal(t, tt.wantRetry, sharedtest.Text(retry))
		})
	}
}

func byID(doc *html.Node, id string) *html.Node {
	return sharedtest.Find(doc, func(n *html.Node) bool { v, _ := sharedtest.Attr(n, "id"); return v == id })
}
