package shared

import (
	"flag"
	"fmt"
	"os"
	"strings"
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
