package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLoadTool_PageModeSignsInThroughTheLoginForm runs e2e/load --mode page
// against a real SERVER1: it must sign in through the login form (CSRF
// cookie and field, rotated at sign-in) and get every signed-in
// POST /handoffs answered with an auto-submit page carrying a token.
func TestLoadTool_PageModeSignsInThroughTheLoginForm(t *testing.T) {
	c := StartCluster(t, ClusterConfig{Server1Env: map[string]string{
		"SERVER1_HANDOFF_BURST": "100", "SERVER1_HANDOFFS_PER_MINUTE": "60",
	}})
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", dir+string(os.PathSeparator), "./load")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build ./load:\n%s", out)
	summaryFile := filepath.Join(dir, "summary.json")

	load := exec.Command(filepath.Join(dir, "load"), "--mode", "page", "--target", c.Server1.URL,
		"--audience", c.Audience, "--n", "40", "--concurrency", "4", "--verify-time", "100ms",
		"--json", summaryFile)
	load.Env = append(processEnv(), "LOAD_PASSWORD=alice-demo-pw")
	out, err = load.CombinedOutput()
	require.NoError(t, err, "load --mode page:\n%s", out)

	raw, err := os.ReadFile(summaryFile)
	require.NoError(t, err)
	var got struct {
		Sent     int         `json:"sent"`
		Accepted int         `json:"accepted"`
		Status   map[int]int `json:"status"`
		Failed   bool        `json:"failed"`
	}
	require.NoError(t, json.Unmarshal(raw, &got))
	assert.Equal(t, 40, got.Sent)
	assert.Equal(t, 40, got.Accepted, "every POST /handoffs rendered a page with a token")
	assert.Equal(t, map[int]int{200: 40}, got.Status)
	assert.False(t, got.Failed)
}
