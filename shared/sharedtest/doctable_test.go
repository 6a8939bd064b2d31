package sharedtest_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/handoffbroker/handoff/shared/sharedtest"
	"github.com/stretchr/testify/assert"
)

func TestDocumentedRoutes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "doc.md")
	doc := "# Doc\n\n### A\n\n| method | path |\n| --- | --- |\n| GET | `/` |\n| GET, HEAD | `/x/{id}` |\n\ntext\n\n### B\n\n- item\n\n  | member | value |\n  | --- | --- |\n  | `m` | v |\n"
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	assert.Equal(t, []string{"GET /", "GET /x/{id}", "HEAD /x/{id}"}, sharedtest.DocumentedRoutes(t, path, "### A"))
	assert.Equal(t, [][]string{{"m", "v"}}, sharedtest.DocTable(t, path, "### B"), "an indented table, code unquoted")
}
