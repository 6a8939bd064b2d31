package e2e

import (
	"net/http"
	"strings"
	"testing"
)

// TestServer2RevocationOffOnlyExplicitly: SERVER2 given SERVER1's JWKS URL
// without a revocation URL refuses to start (it used to start with
// revocation silently off and report ready); with SERVER2_REVOCATION_URL=off
// it starts and /readyz says "revocations":"off"; with discovery it polls
// the list and says "ok".
func TestServer2RevocationOffOnlyExplicitly(t *testing.T) {
	t.Parallel()
	c := StartCluster(t, ClusterConfig{})
	if code, body := c.Server2.get(t, "/readyz"); code != http.StatusOK || !strings.Contains(string(body), `"revocations":"ok"`) {
		t.Errorf("SERVER2 with the discovered list: /readyz = %d %s, want 200 with \"revocations\":\"ok\"", code, body)
	}

	s := c.AddServer2(t, map[string]string{"SERVER2_JWKS_URL": c.Issuer + "/.well-known/jwks.json"})
	if _, code := s.Exec(t, "serve"); code != 2 {
		t.Errorf("SERVER2 with a JWKS URL and no revocation URL: exit %d, want 2 (configuration error)", code)
	}
	if !strings.Contains(s.out.String(), "revocation-url is required with jwks-url") {
		t.Errorf("SERVER2 refusing to start does not say why:\n%s", tail(s.out.String(), 10))
	}

	s.Env["SERVER2_REVOCATION_URL"] = "off"
	s.Start(t)
	s.WaitReady(t)
	if code, body := s.get(t, "/readyz"); code != http.StatusOK || !strings.Contains(string(body), `"revocations":"off"`) {
		t.Errorf("SERVER2 with SERVER2_REVOCATION_URL=off: /readyz = %d %s, want 200 with \"revocations\":\"off\"", code, body)
	}
}
