package shared

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/handoffbroker/handoff/broker/fetch"
)

// EnvName returns the environment variable bound to a flag: the prefix, an
// underscore, and the flag name upper-cased with dashes as underscores.
// EnvName("SERVER1", "keys-dir") is "SERVER1_KEYS_DIR".
func EnvName(prefix, flagName string) string {
	return prefix + "_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// ParseFlagsAndEnv parses args into fs, then fills every flag not given on the
// command line from its environment variable (see EnvName). The command line
// wins over the environment, which wins over the default.
func ParseFlagsAndEnv(fs *flag.FlagSet, prefix string, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		if v, ok := os.LookupEnv(EnvName(prefix, f.Name)); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s: %w", EnvName(prefix, f.Name), e)
			}
		}
	})
	return err
}

// ParseServiceURL parses raw, a configured URL of a service (an issuer,
// an audience's endpoints, a result endpoint): what fetch.CheckURL
// requires of every URL (absolute http or https, a host, no credentials),
// no query or fragment, and a host fit to write into a
// Content-Security-Policy header (checkURLHost). A refused URL is never
// repeated with its credentials.
func ParseServiceURL(raw string) (*url.URL, error) {
	if err := fetch.CheckURL(raw); err != nil {
		return nil, err
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%q must not carry a query or a fragment", raw)
	}
	if err := checkURLHost(u); err != nil {
		return nil, err
	}
	return u, nil
}

// checkURLHost returns an error unless u's host (and port) is made only of
// letters, digits and ". : - [ ]": a configured URL's origin is written
// into Content-Security-Policy headers, and url.Parse accepts a host with
// ";" or "'", which would end a directive and inject another.
func checkURLHost(u *url.URL) error {
	for _, r := range u.Host {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case r == '.', r == ':', r == '-', r == '[', r == ']':
		default:
			return fmt.Errorf("host %q has a character other than letters, digits and . : - [ ]", u.Host)
		}
	}
	return nil
}
