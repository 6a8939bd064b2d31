package shared

import (
	"embed"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"os"

	"github.com/labstack/echo/v4"
)

//go:embed templates/*.html templates/site.css templates/favicon.svg
var sharedFiles embed.FS

var (
	siteCSS = mustRead("templates/site.css")
	// favicon is both servers' icon: two arrows passing a task across.
	favicon = mustRead("templates/favicon.svg")
)

func mustRead(name string) []byte {
	b, err := sharedFiles.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return b
}

// Renderer renders HTML pages. Every page template is parsed together with
// the shared layout; a page defines "title" and "content". html/template
// escapes everything it prints.
type Renderer struct {
	pages map[string]*template.Template
}

// NewRenderer parses the shared layout and error page plus the server's own
// page templates matched by patterns in pages. Templates may call {{service}}
// for the service name.
func NewRenderer(service string, pages fs.FS, patterns ...string) (*Renderer, error) {
	base, err := template.New("").Funcs(template.FuncMap{"service": func() string { return service }}).
		ParseFS(sharedFiles, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	r := &Renderer{pages: map[string]*template.Template{}}
	add := func(fsys fs.FS, pattern string) error {
		names, err := fs.Glob(fsys, pattern)
		if err != nil {
			return err
		}
		for _, name := range names {
			t, err := template.Must(base.Clone()).ParseFS(fsys, name)
			if err != nil {
				return err
			}
			r.pages[baseName(name)] = t
		}
		return nil
	}
	if err := add(sharedFiles, "templates/error.html"); err != nil {
		return nil, err
	}
	for _, p := range patterns {
		if err := add(pages, p); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func baseName(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return p[i+1:]
		}
	}
	return p
}

// Render implements echo.Renderer.
func (r *Renderer) Render(w io.Writer, name string, data any, _ echo.Context) error {
	t, ok := r.pages[name]
	if !ok {
		return fmt.Errorf("no page template %q", name)
	}
	return t.ExecuteTemplate(w, "layout", data)
}

// LogFormat is how a server writes its log lines. It is a flag value
// (encoding.TextUnmarshaler): "json" or "text".
type LogFormat string

const (
	// LogJSON writes one JSON object a line, for log collectors. The
	// default, and what containers use.
	LogJSON LogFormat = "json"
	// LogText writes slog's key=value lines, for people at a terminal
	// (the local demo).
	LogText LogFormat = "text"
)

// UnmarshalText accepts "json" or "text".
func (f *LogFormat) UnmarshalText(b []byte) error {
	switch v := LogFormat(b); v {
	case LogJSON, LogText:
		*f = v
		return nil
	default:
		return fmt.Errorf("log format %q: want json or text", b)
	}
}

// MarshalText returns the format's name; the zero LogFormat is "json".
func (f LogFormat) MarshalText() ([]byte, error) {
	if f == "" {
		return []byte(LogJSON), nil
	}
	return []byte(f), nil
}

// NewLogger returns the structured logger servers use, tagged with the
// service name: JSON lines unless format is LogText. A nil w is stderr.
func NewLogger(w io.Writer, service string, level slog.Level, format LogFormat) *slog.Logger {
	if w == nil {
		w = os.Stderr
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewJSONHandler(w, opts)
	if format == LogText {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(h).With("service", service)
}
