// Command testsummary runs `go test -json` with the given flags and
// packages, prints what plain `go test` prints (a line per package, and the
// whole output of every failing test), and ends with the tests that were
// skipped, grouped by what they were missing (Redis, Chromium, Docker,
// other) with their skip messages, and a count line:
//
//	tests: 812 passed, 0 failed, 14 skipped
//
// so a green local run never hides a skip. Its exit status is go test's.
// `make test` runs it; CI makes the skips fail instead by setting
// E2E_REQUIRE_REDIS, E2E_REQUIRE_BROWSER and E2E_REQUIRE_DOCKER.
//
// Usage:
//
//	go run ./scripts/testsummary [go test flags] [packages]
//
// The go command is $GO, or go from PATH.
package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], "", os.Stdout, os.Stderr))
}

// run runs go test -json args in dir and returns go test's exit status (2
// when it could not be started).
func run(args []string, dir string, stdout, stderr io.Writer) int {
	goCmd := cmp.Or(os.Getenv("GO"), "go")
	cmd := exec.Command(goCmd, append([]string{"test", "-json"}, args...)...)
	cmd.Dir = dir
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintf(stderr, "testsummary: %v\n", err)
		return 2
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(stderr, "testsummary: %v\n", err)
		return 2
	}
	s := newSummary(stdout)
	readErr := s.read(out)
	err = cmd.Wait()
	s.print()
	if readErr != nil {
		fmt.Fprintf(stderr, "testsummary: reading go test's output: %v\n", readErr)
	}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode()
	case err != nil:
		fmt.Fprintf(stderr, "testsummary: %v\n", err)
		return 2
	case readErr != nil:
		return 2
	}
	return 0
}

// event is one line of `go test -json` (cmd/test2json's TestEvent, with
// the build events of Go 1.24 and later).
type event struct {
	Time       time.Time
	Action     string
	Package    string
	ImportPath string
	Test       string
	Output     string
}

// skip is one skipped test and why.
type skip struct {
	pkg, test, message string
}

// summary replays go test's events as plain output and collects the
// results.
type summary struct {
	w io.Writer
	// output holds each running test's lines until it ends: printed if it
	// fails, read for the message if it skips.
	output         map[[2]string][]string
	passed, failed int
	// failedIn counts each package's failed tests, so a package that
	// fails with none (a build failure, a panic outside tests) counts
	// as one failure.
	failedIn map[string]int
	skips    []skip
}

func newSummary(w io.Writer) *summary {
	return &summary{w: w, output: map[[2]string][]string{}, failedIn: map[string]int{}}
}

// read replays the event stream r until it ends. A line that is not an
// event is printed as it is.
func (s *summary) read(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Action == "" {
			fmt.Fprintln(s.w, sc.Text())
			continue
		}
		s.handle(e)
	}
	return sc.Err()
}

func (s *summary) handle(e event) {
	key := [2]string{e.Package, e.Test}
	switch {
	case e.Action == "build-output":
		fmt.Fprint(s.w, e.Output)
	case e.Test == "" && e.Action == "output":
		// The package's own lines: "ok  pkg 1.2s", "FAIL pkg", and
		// output outside any test. test2json reports a passing package's
		// bare "PASS" too, which plain go test does not print.
		if strings.HasPrefix(e.Output, "FAIL") || strings.HasPrefix(e.Output, "panic: ") {
			s.flushUnfinished(e.Package)
		}
		if e.Output != "PASS\n" {
			fmt.Fprint(s.w, e.Output)
		}
	case e.Test == "" && e.Action == "fail":
		s.flushUnfinished(e.Package)
		if s.failedIn[e.Package] == 0 {
			s.failed++
		}
	case e.Test == "":
	case e.Action == "output":
		s.output[key] = append(s.output[key], e.Output)
	case e.Action == "pass":
		s.passed++
		delete(s.output, key)
	case e.Action == "fail":
		s.failed++
		s.failedIn[e.Package]++
		for _, l := range s.output[key] {
			if !isProgressLine(l) {
				fmt.Fprint(s.w, l)
			}
		}
		delete(s.output, key)
	case e.Action == "skip":
		s.skips = append(s.skips, skip{pkg: e.Package, test: e.Test, message: skipMessage(s.output[key])})
		delete(s.output, key)
	}
}

// flushUnfinished prints the output of pkg's tests that never ended, as
// when the test binary timed out or crashed: it is what explains the
// failure.
func (s *summary) flushUnfinished(pkg string) {
	var tests []string
	for key := range s.output {
		if key[0] == pkg {
			tests = append(tests, key[1])
		}
	}
	slices.Sort(tests)
	for _, test := range tests {
		key := [2]string{pkg, test}
		for _, l := range s.output[key] {
			if !isProgressLine(l) {
				fmt.Fprint(s.w, l)
			}
		}
		delete(s.output, key)
	}
}

// isProgressLine reports whether l is one of the lines only go test -v
// prints about a test's progress.
func isProgressLine(l string) bool {
	t := strings.TrimSpace(l)
	return strings.HasPrefix(t, "=== RUN") || strings.HasPrefix(t, "=== PAUSE") ||
		strings.HasPrefix(t, "=== CONT") || strings.HasPrefix(t, "=== NAME")
}

// logPrefix is the "file_test.go:42: " that t.Log puts before a message.
var logPrefix = regexp.MustCompile(`^\s*[\w.-]+\.go:\d+: `)

// skipMessage is the reason a skipped test gave: its last t.Log entry
// (t.Skip logs the reason last), without the file:line prefix, its
// continuation lines joined with spaces. Other output, a library's
// logging say, is not part of it.
func skipMessage(lines []string) string {
	var msg []string
	for _, l := range lines {
		switch {
		case logPrefix.MatchString(l):
			msg = []string{strings.TrimSpace(logPrefix.ReplaceAllString(l, ""))}
		case msg != nil && strings.HasPrefix(l, "        ") && !isProgressLine(l):
			msg = append(msg, strings.TrimSpace(l))
		default:
			if t := strings.TrimSpace(l); t != "" && !isProgressLine(l) && !strings.HasPrefix(t, "--- SKIP") {
				msg = nil
			}
		}
	}
	if len(msg) == 0 {
		return "(no message)"
	}
	return strings.Join(msg, " ")
}

// groups are the tools whose absence skips tests, in the order printed,
// each known by the variable that turns its skips into failures.
var groups = []struct{ name, variable string }{
	{"Redis", "E2E_REQUIRE_REDIS"},
	{"Chromium", "E2E_REQUIRE_BROWSER"},
	{"Docker", "E2E_REQUIRE_DOCKER"},
	{"Other", ""},
}

// group returns the index in groups of the tool a skip message names.
func group(message string) int {
	for i, g := range groups {
		if g.variable == "" || strings.Contains(message, g.variable) {
			return i
		}
	}
	return len(groups) - 1
}

// print writes the skipped tests, grouped by tool and then by message, and
// the count line.
func (s *summary) print() {
	if len(s.skips) > 0 {
		fmt.Fprintf(s.w, "\n==== skipped: %d ====\n", len(s.skips))
		for i, g := range groups {
			var in []skip
			for _, sk := range s.skips {
				if group(sk.message) == i {
					in = append(in, sk)
				}
			}
			if len(in) == 0 {
				continue
			}
			if g.variable != "" {
				fmt.Fprintf(s.w, "%s missing: %d skipped (%s=1 makes them fail)\n", g.name, len(in), g.variable)
			} else {
				fmt.Fprintf(s.w, "%s: %d skipped\n", g.name, len(in))
			}
			slices.SortStableFunc(in, func(a, b skip) int {
				return cmp.Or(strings.Compare(a.message, b.message), strings.Compare(a.pkg, b.pkg), strings.Compare(a.test, b.test))
			})
			for j, sk := range in {
				if j == 0 || sk.message != in[j-1].message {
					fmt.Fprintf(s.w, "  %s\n", sk.message)
				}
				fmt.Fprintf(s.w, "    %s %s\n", sk.pkg, sk.test)
			}
		}
	}
	fmt.Fprintf(s.w, "\ntests: %d passed, %d failed, %d skipped\n", s.passed, s.failed, len(s.skips))
}
