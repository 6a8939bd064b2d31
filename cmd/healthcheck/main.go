// Command healthcheck is the container health probe of the server images.
// They are built FROM scratch, with no shell or curl, so the compose file's
// healthcheck runs this instead:
//
//	healthcheck [--timeout 2s] http://127.0.0.1:8081/readyz
//
// It sends one GET and exits 0 when the answer is 200 OK, 1 for any other
// answer or none, and 2 for a usage error. It follows no redirect and reads
// no more than it needs, so a misbehaving server cannot hold it up past the
// timeout.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

// run probes the URL in args and returns the exit status.
func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	timeout := fs.Duration("timeout", 2*time.Second, "give up after this long")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: healthcheck [--timeout D] URL")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	u, err := url.Parse(fs.Arg(0))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		fmt.Fprintf(stderr, "healthcheck: %q is not an http(s) URL\n", fs.Arg(0))
		return 2
	}
	if err := probe(u.String(), *timeout); err != nil {
		fmt.Fprintf(stderr, "healthcheck: %v\n", err)
		return 1
	}
	return 0
}

// probe GETs rawURL and returns nil only for a 200 OK within timeout.
func probe(rawURL string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return err
	}
	client := &http.Client{
		// A redirect could point the probe at another service that is up
		// while this one is not.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Request.URL.Path + " answered " + resp.Status)
	}
	return nil
}
