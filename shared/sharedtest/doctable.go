package sharedtest

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

// DocTable reads the first Markdown table after the first line of the file
// at path that contains after (a heading, say), and returns its body rows:
// one slice of cells per row, each cell trimmed of spaces and of the
// backticks around code. The header and separator rows are left out; a
// table may be indented (inside a list item). It fails t when the line or
// the table is missing. Tests use it to hold docs/PROTOCOL.md to the code.
func DocTable(t testing.TB, path, after string) [][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	lines := strings.Split(string(b), "\n")
	start := -1
	for i, l := range lines {
		if strings.Contains(l, after) {
			start = i + 1
			break
		}
	}
	if start < 0 {
		t.Fatalf("%s: no line contains %q", path, after)
	}
	var rows [][]string
	inTable := false
	for _, l := range lines[start:] {
		l = strings.TrimSpace(l)
		if !strings.HasPrefix(l, "|") {
			if inTable {
				break
			}
			continue
		}
		inTable = true
		var cells []string
		for c := range strings.SplitSeq(strings.Trim(l, "|"), "|") {
			cells = append(cells, strings.Trim(strings.TrimSpace(c), "`"))
		}
		rows = append(rows, cells)
	}
	if len(rows) < 2 {
		t.Fatalf("%s: no table after %q", path, after)
	}
	return rows[2:]
}

// DocumentedRoutes returns "METHOD /path" for each route in the table of
// routes after the line containing heading in the Markdown file at path:
// its first column holds the methods (comma-separated), its second the
// path.
func DocumentedRoutes(t testing.TB, path, heading string) []string {
	t.Helper()
	var out []string
	for _, row := range DocTable(t, path, heading) {
		if len(row) < 2 {
			t.Fatalf("%s: route row %q has no path", path, row)
		}
		for m := range strings.SplitSeq(row[0], ",") {
			out = append(out, strings.TrimSpace(m)+" "+row[1])
		}
	}
	return out
}

// EchoRoutes returns "METHOD /path" for each route e serves, its :name
// parameters written {name} as the docs write them.
func EchoRoutes(e *echo.Echo) []string {
	var out []string
	for _, r := range e.Routes() {
		segs := strings.Split(r.Path, "/")
		for i, s := range segs {
			if name, ok := strings.CutPrefix(s, ":"); ok {
				segs[i] = "{" + name + "}"
			}
		}
		out = append(out, r.Method+" "+strings.Join(segs, "/"))
	}
	return out
}

// MatchRoutes fails t for each route served but not documented and each
// documented but not served, naming the server.
func MatchRoutes(t testing.TB, server string, documented, served []string) {
	t.Helper()
	for _, r := range served {
		if !slices.Contains(documented, r) {
			t.Errorf("%s serves %s, which docs/PROTOCOL.md does not list", server, r)
		}
	}
	for _, r := range documented {
		if !slices.Contains(served, r) {
			t.Errorf("docs/PROTOCOL.md lists %s, which %s does not serve", r, server)
		}
	}
	if len(served) != len(slices.Compact(slices.Sorted(slices.Values(served)))) {
		t.Errorf("%s registers a route twice: %v", server, served)
	}
}
