package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/broker/keys"
	"github.com/handoffbroker/handoff/broker/token"
)

// jwksCooldown is SERVER2's default least time between JWKS refreshes
// caused by unknown kids.
const jwksCooldown = 10 * time.Second

// publishedKeys fetches SERVER1's JWKS.
func publishedKeys(t testing.TB, s *Server) []token.PublicKey {
	t.Helper()
	code, body := s.get(t, "/.well-known/jwks.json")
	if code != http.StatusOK {
		t.Fatalf("e2e: SERVER1 JWKS: status %d", code)
	}
	ks, err := keys.ParseJWKS(body)
	if err != nil {
		t.Fatalf("e2e: SERVER1 JWKS: %v", err)
	}
	return ks
}

// listedKey is one key as `server1 keys list --json` describes it.
type listedKey struct {
	ID          string    `json:"kid"`
	State       string    `json:"state"`
	ActivatesAt time.Time `json:"activates_at"`
}

// listKeys asks SERVER1's own CLI for its keys, so the suite never reads
// SERVER1's key files.
func listKeys(t testing.TB, s *Server) []listedKey {
	t.Helper()
	var keys []listedKey
	if err := json.Unmarshal([]byte(s.MustExec(t, "keys", "list", "--json")), &keys); err != nil {
		t.Fatalf("e2e: server1 keys list --json: %v", err)
	}
	if len(keys) == 0 {
		t.Fatal("e2e: server1 keys list --json: no keys")
	}
	return keys
}

func keyIDs(ks []token.PublicKey) []string {
	var ids []string
	for _, k := range ks {
		ids = append(ids, k.KeyID)
	}
	return ids
}

// explainOnly is a ReplayStore for a Verifier used only through Explain,
// which never consumes.
type explainOnly struct{}

func (explainOnly) Consume(context.Context, string, time.Time) error {
	return errors.New("e2e: explain-only verifier")
}

// signingKeyID verifies token against keys (without consuming it) and
// returns the kid of the key that signed it.
func signingKeyID(t testing.TB, c *Cluster, ks []token.PublicKey, tok string) string {
	t.Helper()
	static, err := keys.NewStatic(ks...)
	if err != nil {
		t.Fatal(err)
	}
	v, err := token.NewVerifier(token.VerifierConfig{Issuers: []token.TrustedIssuer{{Issuer: c.Issuer, Keys: static}}, Audience: c.Audience, Replay: explainOnly{}})
	if err != nil {
		t.Fatal(err)
	}
	ex := v.Explain(context.Background(), tok, token.Expect{AnyTask: true})
	if ex.Err != nil {
		t.Fatalf("e2e: a token SERVER1 just minted does not verify against its JWKS: %s", token.ReasonOf(ex.Err))
	}
	return ex.Token.Claims().KeyID
}

// TestNewKeyOnServer1: a key generated on SERVER1 while it runs starts
// signing; SERVER2, which cached the old JWKS, learns the new key through
// exactly one refresh triggered by the unknown kid, and the handoff works.
func TestNewKeyOnServer1(t *testing.T) {
	t.Parallel()
	c := StartCluster(t, ClusterConfig{})
	u := NewUser(t, c)
	u.HandOff(t, demoTask)
	oldKids := keyIDs(publishedKeys(t, c.Server1))

	// Keys that activate in the same second are ordered by kid, so a new
	// key generated in the old key's second might never sign. Wait for the
	// clock to leave the newest key's activation second.
	var latest time.Time
	for _, k := range listKeys(t, c.Server1) {
		if k.ActivatesAt.After(latest) {
			latest = k.ActivatesAt
		}
	}
	waitFor(t, 3*time.Second, "the second after the newest key activated", func() bool {
		return time.Now().Truncate(time.Second).After(latest)
	})
	c.Server1.MustExec(t, "keys", "generate")

	var newKeys []token.PublicKey
	var newKid string
	waitFor(t, 10*time.Second, "SERVER1 to publish the new key", func() bool {
		newKeys = publishedKeys(t, c.Server1)
		for _, id := range keyIDs(newKeys) {
			if !slices.Contains(oldKids, id) {
				newKid = id
				return true
			}
		}
		return false
	})

	home := u.Home(t)
	var h Handoff
	waitFor(t, 10*time.Second, "SERVER1 to sign with the new key", func() bool {
		h = u.StartHandoff(t, home, demoTask)
		return signingKeyID(t, c, newKeys, h.Token) == newKid
	})

	fetches := counter(t, c.Server2, metricJWKSFetches, "result", "ok")
	resp := u.Submit(t, h)
	if resp.Status != http.StatusSeeOther {
		t.Fatalf("handoff signed with the new key: %s, want 303", resp.describe())
	}
	checkTaskPage(t, u.Follow(t, resp), demoUser, demoTask, demoParams)
	if got := counter(t, c.Server2, metricJWKSFetches, "result", "ok") - fetches; got != 1 {
		t.Errorf("SERVER2 fetched the JWKS %v times for the new key, want exactly 1", got)
	}
}

// TestUnknownKidFlood: tokens naming kids SERVER1 never had (a flood meant
// to turn each request into a fetch at the issuer) are all refused as
// unknown_key, while SERVER1 serves its JWKS at most once per cool-down.
func TestUnknownKidFlood(t *testing.T) {
	t.Parallel()
	c := StartCluster(t, ClusterConfig{})

	const n = 500
	tokens := make([]string, n)
	for i := range tokens {
		// Each throwaway key's kid is its thumbprint: unknown to SERVER2.
		ring, err := keys.NewEphemeral(token.EdDSA)
		if err != nil {
			t.Fatal(err)
		}
		m, err := token.NewMinter(token.MinterConfig{Issuer: c.Issuer, Keys: ring})
		if err != nil {
			t.Fatal(err)
		}
		tok, err := m.Mint(token.MintRequest{Subject: demoUser, Audience: c.Audience, Task: token.Task{ID: demoTask, Action: demoAction, Params: demoParams}})
		if err != nil {
			t.Fatal(err)
		}
		tokens[i] = tok.Token
	}

	served := counter(t, c.Server1, metricJWKSServed)
	start := time.Now()
	var (
		mu      sync.Mutex
		answers = map[string]int{}
		wg      sync.WaitGroup
		next    = make(chan string)
	)
	for range 8 {
		wg.Go(func() {
			for tok := range next {
				status, reason, err := tryPostToken(c.Server2, tok)
				key := http.StatusText(status) + " " + reason
				if err != nil {
					key = "error: " + err.Error()
				}
				mu.Lock()
				answers[key]++
				mu.Unlock()
			}
		})
	}
	for _, tok := range tokens {
		next <- tok
	}
	close(next)
	wg.Wait()
	elapsed := time.Since(start)

	want := http.StatusText(http.StatusUnauthorized) + " unknown_key"
	if answers[want] != n {
		t.Errorf("answers to %d tokens with unknown kids: %v, want all %q", n, answers, want)
	}
	allowed := 1 + float64(elapsed/jwksCooldown)
	got := counter(t, c.Server1, metricJWKSServed) - served
	t.Logf("%d tokens in %v: SERVER1 served its JWKS %v times (at most %v allowed)", n, elapsed.Round(time.Millisecond), got, allowed)
	if got > allowed {
		t.Errorf("SERVER1 served its JWKS %v times in %v, want at most %v (one per %v cool-down)", got, elapsed, allowed, jwksCooldown)
	}

	// The flood did not stop SERVER2 from accepting good tokens.
	NewUser(t, c).HandOff(t, demoTask)
}
