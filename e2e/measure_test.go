package e2e

import (
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// measureRuns is how many handoffs TestMeasureHandoffClick times.
const measureRuns = 20

// TestMeasureHandoffClick times the browser handoff, from the click on
// "Continue on Payments" to SERVER2's task page, measureRuns times in one
// Chromium, and logs the median and p90. It is a measurement, not a test:
// it runs only with E2E_MEASURE=1 and asserts no duration.
//
//	E2E_MEASURE=1 go test -run TestMeasureHandoffClick -count=1 -v ./e2e
func TestMeasureHandoffClick(t *testing.T) {
	if os.Getenv("E2E_MEASURE") != "1" {
		t.Skip("a measurement: set E2E_MEASURE=1 to run it")
	}
	chromium(t)
	c := StartCluster(t, ClusterConfig{Server1Env: map[string]string{
		"SERVER1_HANDOFF_BURST":       strconv.Itoa(measureRuns + 5),
		"SERVER1_HANDOFFS_PER_MINUTE": "600",
	}})
	b := NewBrowser(t)
	b.SignIn(t, c, demoUser, demoPassword)
	var took []time.Duration
	for i := range measureRuns + 1 {
		b.Do(t, "open SERVER1's list",
			chromedp.Navigate(c.Server1.URL+"/"),
			chromedp.WaitVisible(chromedp.ID("continue-"+demoTask)),
		)
		start := time.Now()
		b.HandOff(t, demoTask)
		d := time.Since(start)
		if i > 0 { // the first run warms the JWKS cache and the connections
			took = append(took, d)
		}
	}
	for _, p := range b.HandoffPosts(c) {
		c.NoteSecret(tokenOf(t, p))
	}
	slices.Sort(took)
	t.Logf("click to task page, %d runs: median %v, p90 %v, min %v, max %v",
		len(took), took[len(took)/2-1].Round(time.Millisecond), took[(len(took)*9+9)/10-1].Round(time.Millisecond),
		took[0].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond))
}
