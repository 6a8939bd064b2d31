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

//go:embed templates/*.html templates/site.css
var sharedFiles embed.FS

var siteCSS = func() []byte {
	b, err := sharedFiles.ReadFile("templates/site.css")
	if err != nil {
		panic(err)
	}
	return b
}()

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

// NewLogger returns the JSON structured logger servers use, tagged with the
// service name.
func NewLogger(w io.Writer, service string, level slog.Level) *slog.Logger {
	if w == nil {
		w = os.Stderr
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})).With("service", service)
}
