package e2e

import (
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/shared/sharedtest"
)

// demoBuildTimeout bounds the demo's own `go build` of both servers, which
// may compile from scratch while other packages test on the same cores.
const demoBuildTimeout = 5 * time.Minute

// textLogLine is one whole line of a server's text log (--log-format text).
var textLogLine = regexp.MustCompile(`^time=\S+ level=(DEBUG|INFO|WARN|ERROR) msg=("[^"]*"|\S+) service=(server1|server2)( |$)`)

// TestDemoStopsOnCtrlC runs the local demo as a person does, `make demo`
// and the script behind it, each in its own process group on free ports,
// and presses Ctrl-C (SIGINT to the whole group, as a terminal sends it):
// the demo exits without an error, make prints no error, and both servers
// log their graceful shutdown in whole text lines to the end.
func TestDemoStopsOnCtrlC(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		giveCmd []string
		// wantMakeSignal: make re-raises the SIGINT it got once its
		// recipe has exited, so it dies of SIGINT rather than exiting 0;
		// the shell then prints nothing, and make no error.
		wantMakeSignal bool
	}{
		{name: "ok/script", giveCmd: []string{"bash", "scripts/demo.sh"}},
		{name: "ok/make_demo", giveCmd: []string{"make", "--no-print-directory", "demo"}, wantMakeSignal: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := exec.LookPath(tt.giveCmd[0]); err != nil {
				t.Fatalf("e2e: %s is needed to run the demo: %v", tt.giveCmd[0], err)
			}
			p1, p2 := freePort(t), freePort(t)
			var stdout, stderr sharedtest.Buffer
			cmd := exec.Command(tt.giveCmd[0], tt.giveCmd[1:]...)
			cmd.Dir = root
			// As from a person's shell: not inside the make that may be
			// running this suite.
			env := slices.DeleteFunc(processEnv(), func(kv string) bool {
				return strings.HasPrefix(kv, "MAKEFLAGS=") || strings.HasPrefix(kv, "MFLAGS=") || strings.HasPrefix(kv, "MAKELEVEL=")
			})
			cmd.Env = append(env,
				fmt.Sprintf("HANDOFF_SERVER1_PORT=%d", p1),
				fmt.Sprintf("HANDOFF_SERVER2_PORT=%d", p2),
				"SERVER1_KEYS_DIR="+filepath.Join(t.TempDir(), "keys"),
			)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := cmd.Start(); err != nil {
				t.Fatalf("e2e: starting the demo: %v", err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			exited := false
			defer func() {
				if !exited {
					_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
					<-done
				}
				if t.Failed() {
					t.Logf("demo stdout:\n%s\ndemo stderr:\n%s", stdout.String(), stderr.String())
				}
			}()

			deadline := time.Now().Add(demoBuildTimeout)
			for !strings.Contains(stdout.String(), "Press Ctrl-C to stop.") {
				select {
				case err := <-done:
					exited = true
					t.Fatalf("e2e: the demo exited before it was running: %v", err)
				case <-time.After(pollInterval):
				}
				if time.Now().After(deadline) {
					t.Fatal("e2e: the demo did not announce itself")
				}
			}
			client := &http.Client{Timeout: httpTimeout}
			for _, url := range []string{fmt.Sprintf("http://localhost:%d/readyz", p1), fmt.Sprintf("http://127.0.0.1:%d/readyz", p2)} {
				waitFor(t, readyTimeout, url+" to answer 200", func() bool {
					res, err := client.Get(url)
					if err != nil {
						return false
					}
					res.Body.Close()
					return res.StatusCode == http.StatusOK
				})
			}

			if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
				t.Fatalf("e2e: Ctrl-C: %v", err)
			}
			select {
			case err = <-done:
				exited = true
			case <-time.After(stopTimeout):
				t.Fatal("e2e: the demo did not stop after Ctrl-C")
			}
			var ee *exec.ExitError
			switch {
			case err == nil:
			case tt.wantMakeSignal && errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGINT:
			default:
				t.Errorf("e2e: the demo ended with %v, want exit status 0", err)
			}

			logs := stderr.String()
			if strings.Contains(logs, "make:") {
				t.Errorf("e2e: make reported an error on Ctrl-C")
			}
			if !strings.HasSuffix(logs, "\n") {
				t.Errorf("e2e: the log ends in a cut line: %q", tail(logs, 1))
			}
			last := map[string]string{}
			for line := range strings.SplitSeq(strings.TrimSuffix(logs, "\n"), "\n") {
				m := textLogLine.FindStringSubmatch(line)
				if m == nil {
					t.Errorf("e2e: not a whole text log line: %q", line)
					continue
				}
				if strings.Contains(line, "msg=request") && strings.Contains(line, "route=/revocations") {
					t.Errorf("e2e: a revocation poll logged at info: %q", line)
				}
				if m[3] != "" {
					last[m[3]] = m[2]
				}
			}
			for _, service := range []string{"server1", "server2"} {
				if !strings.Contains(logs, `msg="shutting down" service=`+service) {
					t.Errorf("e2e: %s did not log its shutdown", service)
				}
				if last[service] != "stopped" {
					t.Errorf("e2e: %s's last log line is msg=%s, want msg=stopped", service, last[service])
				}
			}
		})
	}
}
