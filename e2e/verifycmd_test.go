package e2e

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

// verifyToken runs `server2 verify -` with SERVER2's configuration (the
// issuer's JWKS and revocation list discovered, as serve finds them) and
// returns its output and exit code.
func verifyToken(t testing.TB, c *Cluster, token string) (string, int) {
	t.Helper()
	out, code := c.Server2.ExecInput(t, token, "verify", "-")
	if strings.Contains(out, token) {
		t.Errorf("server2 verify printed the token")
	}
	return out, code
}

// TestVerifyCommandRevoked: `server2 verify`, run beside a real SERVER1,
// reports a token revoked by jti (`server1 revoke-token`), by subject
// ("sign out everywhere") and by key (`server1 keys revoke`) as revoked,
// with exit 1, where it called each valid just before the revocation. It
// fetches the revocation list itself, so no wait for SERVER2's poll is
// needed; the running SERVER2 refuses the same tokens.
func TestVerifyCommandRevoked(t *testing.T) {
	t.Parallel()
	c := StartCluster(t, ClusterConfig{})
	alice, bob := NewUser(t, c), NewUser(t, c)
	byJTI, jti := alice.apiHandoff(t, alice.Home(t), demoTask)
	bobHome := bob.SignIn(t, "bob", "bob-demo-pw")
	bySubject := bob.StartHandoff(t, bobHome, bobsTask).Token
	byKey := c.Mint(t, mintRequest{Subject: "carol"})
	for name, token := range map[string]string{"jti": byJTI, "subject": bySubject, "key": byKey} {
		if out, code := verifyToken(t, c, token); code != 0 || !strings.Contains(out, "✓ revocation") {
			t.Fatalf("server2 verify of the %s token before any revocation: exit %d\n%s", name, code, out)
		}
	}

	checkInspect(t, c, byKey)
	checkUnreachableKeys(t, c, byKey)

	c.Server1.MustExec(t, "revoke-token", "--jti", jti)
	if p := bob.SubmitForm(t, bobHome, "logout-everywhere", nil); p.Status != http.StatusSeeOther {
		t.Fatalf("bob's sign out everywhere: %s, want 303", p.describe())
	}
	checkRevoked := func(name, token, wantLine string) {
		t.Helper()
		out, code := verifyToken(t, c, token)
		if code != 1 || !strings.Contains(out, "token rejected: revoked") || strings.Contains(out, "token valid") {
			t.Errorf("server2 verify of the token revoked by %s: exit %d, want 1 and \"token rejected: revoked\"\n%s", name, code, out)
		}
		if !strings.Contains(out, wantLine) {
			t.Errorf("server2 verify of the token revoked by %s does not say %q\n%s", name, wantLine, out)
		}
	}
	checkRevoked("jti", byJTI, "[revoked: the token was revoked]")
	checkRevoked("subject", bySubject, "[revoked: the subject's tokens issued before")

	kid := signingKeyID(t, c, publishedKeys(t, c.Server1), byKey)
	c.Server1.MustExec(t, "keys", "revoke", kid)
	// The running SERVER1 re-reads its key directory every second.
	waitFor(t, readyTimeout, "SERVER1 to stop publishing the revoked key", func() bool {
		return !slices.Contains(keyIDs(publishedKeys(t, c.Server1)), kid)
	})
	checkRevoked("key", byKey, "[revoked: the signing key was revoked; SERVER1 no longer publishes it]")

	fresh := c.Mint(t, mintRequest{Subject: "carol"})
	if out, code := verifyToken(t, c, fresh); code != 0 {
		t.Errorf("server2 verify of a token the replacement key signed: exit %d, want 0\n%s", code, out)
	}
	waitFor(t, 3*revocationBound, "SERVER2 to hold the list of the three revocations", func() bool {
		return counter(t, c.Server2, metricRevocationEntries) >= 3
	})
	for name, token := range map[string]string{"jti": byJTI, "subject": bySubject, "key": byKey} {
		if p := postToken(t, c.Server2, token); p.Status != http.StatusUnauthorized {
			t.Errorf("SERVER2 given the token revoked by %s: %s, want 401", name, p.describe())
		}
	}
}

// checkInspect: `server2 inspect`, the real binary, decodes a token with
// every line labelled UNVERIFIED, and never prints it.
func checkInspect(t testing.TB, c *Cluster, token string) {
	t.Helper()
	out, code := c.Server2.ExecInput(t, "Bearer "+token+"\n", "inspect")
	if code != 0 || strings.Contains(out, token) || strings.Contains(out, token[strings.LastIndexByte(token, '.')+1:]) {
		t.Fatalf("server2 inspect: exit %d, want 0 without the token or its signature in the output\n%s", code, out)
	}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.HasPrefix(l, "UNVERIFIED") {
			t.Errorf("server2 inspect printed a line not labelled UNVERIFIED: %q", l)
		}
	}
	if !strings.Contains(out, "UNVERIFIED claim  sub    carol") {
		t.Errorf("server2 inspect does not show the subject\n%s", out)
	}
}

// checkUnreachableKeys: with SERVER1's JWKS unreachable, `server2 verify`
// cannot check the signature, and says so with exit 2, not 1 (the token
// is fine) and not 0.
func checkUnreachableKeys(t testing.TB, c *Cluster, token string) {
	t.Helper()
	out, code := c.Server2.ExecInput(t, token, "verify", "--jwks-url", "http://127.0.0.1:1/jwks.json",
		"--revocation-url", "off", "--fetch-allowed-hosts", "127.0.0.1:1")
	if code != 2 || !strings.Contains(out, "token not checked: ") || strings.Contains(out, token) {
		t.Errorf("server2 verify with SERVER1's JWKS unreachable: exit %d, want 2 and \"token not checked\"\n%s", code, out)
	}
}
