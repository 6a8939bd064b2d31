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
	pages  map[string]*template.Template
	portal func() Portal
}

// Portal is the service that sent the user, as the pages of a relying
// service name it and link back to it.
type Portal struct {
	// Name is what users call it: "Customer Portal".
	Name string
	// URL is its page for users.
	URL string
}

// NewRenderer parses the shared layout and error page plus the server's own
// page templates matched by patterns in pages. Templates may call {{service}}
// for the service name and {{portal}} for the Portal of SetPortal.
func NewRenderer(service string, pages fs.FS, patterns ...string) (*Renderer, error) {
	r := &Renderer{pages: map[string]*template.Template{}}
	base, err := template.New("").Funcs(template.FuncMap{
		"service": func() string { return service },
		"portal":  r.currentPortal,
	}).ParseFS(sharedFiles, "templates/layout.html")
	if err != nil {
		return nil, err
	}
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

// SetPortal makes every page, error pages included, name the service that
// sent the user and link back to it: f is asked at each render, so it may
// follow what the issuer's metadata says. Call it before serving.
func (r *Renderer) SetPortal(f func() Portal) { r.portal = f }

// currentPortal is the Portal pages show; zero (no link) without SetPortal.
func (r *Renderer) currentPortal() Portal {
	if r.portal == nil {
		return Portal{}
	}
	return r.portal()
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
