package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeModule writes a small module whose tests pass, fail, skip for want
// of Redis or Chromium or for another reason, and a package that does not
// build; it returns its directory.
func writeModule(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"go.mod": "module example.com/sum\n\ngo 1.22\n",
		"demo/demo_test.go": `package demo

import "testing"

func TestPass(t *testing.T) { t.Log("quiet when it passes") }

func TestFail(t *testing.T) {
	t.Log("the detail")
	t.Error("boom")
}

const noRedis = "redis not reachable at 127.0.0.1:1; set E2E_REQUIRE_REDIS=1 to fail instead"

func TestRedisA(t *testing.T) { t.Skip(noRedis) }

func TestRedisB(t *testing.T) { t.Skip(noRedis) }

func TestBrowser(t *testing.T) {
	t.Run("page", func(t *testing.T) {
		t.Skip("no Chromium found; set E2E_REQUIRE_BROWSER=1 to fail instead of skipping")
	})
}

func TestMeasure(t *testing.T) { t.Skip("a measurement: set E2E_MEASURE=1 to run it") }
`,
		"okpkg/ok_test.go": `package okpkg

import "testing"

func TestOK(t *testing.T) {}
`,
		"broken/broken_test.go": `package broken

import "testing"

func TestBroken(t *testing.T) { nope() }
`,
	}
	for name, body := range files {
		path := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, []byte(body), 0o644))
	}
	return dir
}

// TestRun runs real go test processes on writeModule's packages.
func TestRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go test on a module of its own")
	}
	t.Setenv("GOWORK", "off")
	t.Setenv("GOFLAGS", "")
	dir := writeModule(t)

	t.Run("fail/skips_and_failures", func(t *testing.T) {
		var out, errOut bytes.Buffer
		code := run([]string{"-count=1", "./..."}, dir, &out, &errOut)
		got := out.String()

		assert.Equal(t, 1, code, "go test's exit status")
		assert.Contains(t, got, "--- FAIL: TestFail")
		assert.Contains(t, got, "the detail", "a failing test's whole output")
		assert.Contains(t, got, "boom")
		assert.NotContains(t, got, "quiet when it passes", "a passing test's output, as plain go test")
		assert.NotContains(t, got, "=== RUN")
		assert.Regexp(t, `(?m)^ok\s+example.com/sum/okpkg`, got)
		assert.Contains(t, got+errOut.String(), "undefined: nope", "the build failure")
		assert.Regexp(t, `(?m)^FAIL\s+example.com/sum/broken`, got)

		_, summary, ok := strings.Cut(got, "==== skipped: 4 ====\n")
		require.True(t, ok, "the skip summary:\n%s", got)
		assert.Equal(t, `Redis missing: 2 skipped (E2E_REQUIRE_REDIS=1 makes them fail)
  redis not reachable at 127.0.0.1:1; set E2E_REQUIRE_REDIS=1 to fail instead
    example.com/sum/demo TestRedisA
    example.com/sum/demo TestRedisB
Chromium missing: 1 skipped (E2E_REQUIRE_BROWSER=1 makes them fail)
  no Chromium found; set E2E_REQUIRE_BROWSER=1 to fail instead of skipping
    example.com/sum/demo TestBrowser/page
Other: 1 skipped
  a measurement: set E2E_MEASURE=1 to run it
    example.com/sum/demo TestMeasure

tests: 3 passed, 2 failed, 4 skipped
`, summary)
	})

	t.Run("ok/all_pass", func(t *testing.T) {
		var out, errOut bytes.Buffer
		code := run([]string{"-count=1", "./okpkg"}, dir, &out, &errOut)

		assert.Equal(t, 0, code)
		assert.NotContains(t, out.String(), "skipped:")
		assert.True(t, strings.HasSuffix(out.String(), "\ntests: 1 passed, 0 failed, 0 skipped\n"), out.String())
	})

	t.Run("fail/no_go_command", func(t *testing.T) {
		t.Setenv("GO", filepath.Join(dir, "no-such-go"))
		var out, errOut bytes.Buffer
		code := run([]string{"./okpkg"}, dir, &out, &errOut)

		assert.Equal(t, 2, code)
		assert.Contains(t, errOut.String(), "testsummary: ")
	})
}

func TestSkipMessage(t *testing.T) {
	tests := []struct {
		name string
		give []string
		want string
	}{
		{name: "ok/one_line", give: []string{"=== RUN   TestX\n", "    x_test.go:12: no redis\n", "--- SKIP: TestX (0.00s)\n"}, want: "no redis"},
		{name: "ok/last_entry", give: []string{"    x_test.go:3: first\n", "    x_test.go:4: second\n"}, want: "second"},
		{name: "ok/continuation", give: []string{"    x_test.go:4: second\n", "        and more\n", "--- SKIP: TestX (0.00s)\n"}, want: "second and more"},
		{name: "ok/stray_output_left_out", give: []string{"redis: 2026/12/02 pool.go:770: dial failed\n", "    x_test.go:9: no redis\n", "--- SKIP: TestX (0.00s)\n"}, want: "no redis"},
		{name: "ok/none", give: []string{"--- SKIP: TestX (0.00s)\n"}, want: "(no message)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, skipMessage(tt.give))
		})
	}
}

// TestUnfinishedTestOutput: a test still running when its binary dies (a
// timeout, a crash) has its output printed before the package's FAIL line.
func TestUnfinishedTestOutput(t *testing.T) {
	stream := strings.Join([]string{
		`{"Action":"run","Package":"p","Test":"TestHang"}`,
		`{"Action":"output","Package":"p","Test":"TestHang","Output":"=== RUN   TestHang\n"}`,
		`{"Action":"output","Package":"p","Test":"TestHang","Output":"    hang_test.go:9: waiting for the server\n"}`,
		`{"Action":"output","Package":"p","Output":"panic: test timed out after 1s\n"}`,
		`{"Action":"output","Package":"p","Output":"FAIL\tp\t1.01s\n"}`,
		`{"Action":"fail","Package":"p"}`,
		`not json: printed as it is`,
	}, "\n") + "\n"
	var out bytes.Buffer
	s := newSummary(&out)
	require.NoError(t, s.read(strings.NewReader(stream)))
	s.print()

	assert.Equal(t, "    hang_test.go:9: waiting for the server\n"+
		"panic: test timed out after 1s\n"+
		"FAIL\tp\t1.01s\n"+
		"not json: printed as it is\n"+
		"\ntests: 0 passed, 1 failed, 0 skipped\n", out.String())
}
