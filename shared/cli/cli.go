// Package cli runs the subcommands of SERVER1 and SERVER2 the same way:
// `PROG help [COMMAND]`, -h and --help on every command (exit 0, on
// stdout), --version from the build information, a usage line and only
// the command's own flags in each command's help, and one prefix on every
// error ("server1 mint: ..."), whatever the command returned.
//
// Exit status: 0 success, 1 failure, 2 bad usage; a command chooses
// another with Exit.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"

	"github.com/handoffbroker/handoff/shared"
)

// Exit statuses every command shares.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// Command is one subcommand. Name may have two words ("keys generate").
type Command struct {
	Name string
	// Operands follows "[flags]" in the usage line, e.g. "[--] KID".
	Operands string
	// Summary is one line for the command list, and heads the help.
	Summary string
	// Help, when set, is printed after the usage line: what the command
	// does and what its exit statuses mean.
	Help string
	// Setup registers the command's flags on fs (and nothing else) and
	// returns the function that runs it: that parses args with fs (Parse,
	// or its own parsing for operands among flags) and does the work.
	Setup func(fs *flag.FlagSet) func(ctx context.Context, args []string) error
}

// Program is a server binary's command line.
type Program struct {
	Name    string // "server1"
	Summary string
	// Default is the command run when the first argument is a flag or
	// there is none ("serve").
	Default  string
	Commands []Command
	// BuildInfo returns the build information for --version. Default
	// debug.ReadBuildInfo.
	BuildInfo func() (*debug.BuildInfo, bool)
}

// usageError is a command-line mistake.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// Usage marks err as a command-line mistake: exit status 2, with the
// command's usage line.
func Usage(err error) error { return usageError{err} }

// Usagef is Usage(fmt.Errorf(format, args...)).
func Usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// IsUsage reports whether err is, or wraps, a Usage error.
func IsUsage(err error) bool {
	var ue usageError
	return errors.As(err, &ue)
}

// ExitError ends a command with Code. Err, when set, is printed as any
// error is; nil when the command has already said everything (verify's
// verdict).
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// Exit returns an *ExitError.
func Exit(code int, err error) error { return &ExitError{Code: code, Err: err} }

// Parse reads fs's flags from args, then their environment variables
// (shared.ParseFlagsAndEnv with envPrefix), and refuses operands.
// Mistakes are Usage errors; -h and --help return flag.ErrHelp.
func Parse(fs *flag.FlagSet, envPrefix string, args []string) error {
	if err := shared.ParseFlagsAndEnv(fs, envPrefix, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return Usage(err)
	}
	if fs.NArg() > 0 {
		return Usagef("unexpected argument %s", Quote(fs.Arg(0)))
	}
	return nil
}

// Run runs the command args name and returns the exit status. Output the
// user asked for (help, version) goes to stdout; errors and usage
// mistakes to stderr, each with the one prefix "PROG COMMAND: ".
func (p *Program) Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "-h", "-help", "--help":
			p.printOverview(stdout)
			return ExitOK
		case "-version", "--version":
			fmt.Fprintln(stdout, p.Version())
			return ExitOK
		case "help":
			return p.help(args[1:], stdout, stderr)
		}
	}
	name := p.Default
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	cmd, rest, err := p.lookup(name, args)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", p.Name, err)
		fmt.Fprintf(stderr, "Run '%s help' for the commands.\n", p.Name)
		return ExitUsage
	}
	fs := p.flagSet(cmd)
	runCmd := cmd.Setup(fs)
	err = runCmd(ctx, rest)
	prefix := p.Name + " " + cmd.Name
	var exit *ExitError
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, flag.ErrHelp):
		p.printCommand(stdout, cmd)
		return ExitOK
	case errors.As(err, &exit):
		if exit.Err != nil {
			printError(stderr, prefix, exit.Err)
		}
		return exit.Code
	case IsUsage(err):
		printError(stderr, prefix, err)
		fmt.Fprintf(stderr, "usage: %s\nRun '%s help %s' for its flags.\n", p.usageLine(cmd), p.Name, cmd.Name)
		return ExitUsage
	default:
		printError(stderr, prefix, err)
		return ExitFailure
	}
}

// printError prints err after prefix, each line of it (errors.Join puts
// one problem on each) with the prefix.
func printError(w io.Writer, prefix string, err error) {
	for line := range strings.SplitSeq(err.Error(), "\n") {
		fmt.Fprintf(w, "%s: %s\n", prefix, line)
	}
}

// lookup finds the command name (or "name SUB", taking SUB from args).
func (p *Program) lookup(name string, args []string) (Command, []string, error) {
	for _, c := range p.Commands {
		if c.Name == name {
			return c, args, nil
		}
	}
	group := p.group(name)
	if len(group) == 0 {
		return Command{}, nil, fmt.Errorf("unknown command %s", Quote(name))
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return Command{}, nil, fmt.Errorf("%s needs a subcommand: %s", name, strings.Join(subNames(group), ", "))
	}
	for _, c := range group {
		if c.Name == name+" "+args[0] {
			return c, args[1:], nil
		}
	}
	return Command{}, nil, fmt.Errorf("unknown %s subcommand %s: want %s", name, Quote(args[0]), strings.Join(subNames(group), ", "))
}

// group is the commands "name SUB".
func (p *Program) group(name string) []Command {
	var group []Command
	for _, c := range p.Commands {
		if strings.HasPrefix(c.Name, name+" ") {
			group = append(group, c)
		}
	}
	return group
}

func subNames(group []Command) []string {
	var names []string
	for _, c := range group {
		_, sub, _ := strings.Cut(c.Name, " ")
		names = append(names, sub)
	}
	return names
}

// help runs `PROG help [COMMAND [SUB]]`.
func (p *Program) help(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		p.printOverview(stdout)
		return ExitOK
	}
	name := strings.Join(args, " ")
	for _, c := range p.Commands {
		if c.Name == name {
			p.printCommand(stdout, c)
			return ExitOK
		}
	}
	if group := p.group(name); len(group) > 0 {
		fmt.Fprintf(stdout, "usage: %s %s SUBCOMMAND [flags]\n\n", p.Name, name)
		p.printList(stdout, group)
		fmt.Fprintf(stdout, "\nRun '%s help %s SUBCOMMAND' for its flags.\n", p.Name, name)
		return ExitOK
	}
	fmt.Fprintf(stderr, "%s help: unknown command %s\nRun '%s help' for the commands.\n", p.Name, Quote(name), p.Name)
	return ExitUsage
}

func (p *Program) flagSet(c Command) *flag.FlagSet {
	fs := flag.NewFlagSet(p.Name+" "+c.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

func (p *Program) usageLine(c Command) string {
	line := p.Name + " " + c.Name
	if c.Name == p.Default {
		line = p.Name + " [" + c.Name + "]"
	}
	fs := p.flagSet(c)
	c.Setup(fs)
	hasFlags := false
	fs.VisitAll(func(*flag.Flag) { hasFlags = true })
	if hasFlags {
		line += " [flags]"
	}
	if c.Operands != "" {
		line += " " + c.Operands
	}
	return line
}

// printCommand is a command's help: usage line, summary, help text and
// its own flags.
func (p *Program) printCommand(w io.Writer, c Command) {
	fmt.Fprintf(w, "usage: %s\n\n%s\n", p.usageLine(c), c.Summary)
	if c.Help != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimRight(c.Help, "\n"))
	}
	fs := p.flagSet(c)
	c.Setup(fs)
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	if len(names) == 0 {
		return
	}
	fmt.Fprintln(w, "\nflags:")
	fs.SetOutput(w)
	fs.PrintDefaults()
}

func (p *Program) printOverview(w io.Writer) {
	fmt.Fprintf(w, "%s: %s\n\nusage: %s COMMAND [flags]   (no command: %s)\n\ncommands:\n", p.Name, p.Summary, p.Name, p.Default)
	p.printList(w, p.Commands)
	fmt.Fprintf(w, "  %-16s %s\n", "help [COMMAND]", "show the commands, or one command's usage and flags")
	fmt.Fprintf(w, "\nRun '%s help COMMAND' (or '%s COMMAND -h') for a command's flags; '%s --version' for the build.\n", p.Name, p.Name, p.Name)
	fmt.Fprintf(w, "Every flag can be set by the environment variable named after it: --keys-dir is %s_KEYS_DIR.\n", strings.ToUpper(p.Name))
}

func (p *Program) printList(w io.Writer, cmds []Command) {
	width := 16
	for _, c := range cmds {
		width = max(width, len(c.Name))
	}
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-*s %s\n", width, c.Name, c.Summary)
	}
}

// Version describes the build: the module version, and the VCS revision
// and time when the build recorded them (builds with -buildvcs=false, as
// CI's, do not).
func (p *Program) Version() string {
	read := p.BuildInfo
	if read == nil {
		read = debug.ReadBuildInfo
	}
	bi, ok := read()
	if !ok {
		return p.Name + " (no build information)"
	}
	s := p.Name + " " + bi.Main.Version
	if bi.Main.Version == "" {
		s = p.Name + " (unknown version)"
	}
	settings := map[string]string{}
	for _, kv := range bi.Settings {
		settings[kv.Key] = kv.Value
	}
	if rev := settings["vcs.revision"]; rev != "" {
		s += " revision " + rev
		if settings["vcs.modified"] == "true" {
			s += " (modified)"
		}
	}
	if t := settings["vcs.time"]; t != "" {
		s += " committed " + t
	}
	if bi.GoVersion != "" {
		s += " built with " + bi.GoVersion
	}
	return s
}

// CommandNames lists the commands, for tests that walk every one.
func (p *Program) CommandNames() []string {
	var names []string
	for _, c := range p.Commands {
		names = append(names, c.Name)
	}
	return slices.Clip(names)
}

// LooksLikeToken reports whether a command-line word is probably a JWT
// pasted in the wrong place: a compact JWS starts with the base64url of
// `{"`, and has two dots.
func LooksLikeToken(s string) bool {
	return strings.HasPrefix(s, "eyJ") || len(s) > 40 && strings.Count(s, ".") == 2 && !strings.ContainsAny(s, "/\\")
}

// maxQuoted is the longest word Quote shows; command names, subcommands
// and stray words a user means are shorter.
const maxQuoted = 64

// Quote is a command-line word for an error message: quoted with Go
// escapes, unless it looks like a token (LooksLikeToken) or is over 64
// bytes, when it is left out, so a token pasted as a command name or
// argument is not echoed back to the terminal, a log or a CI transcript.
func Quote(s string) string {
	switch {
	case LooksLikeToken(s):
		return "(not shown: it looks like a token; a token on the command line is visible to other users (ps) and kept in shell history, so treat it as exposed)"
	case len(s) > maxQuoted:
		return fmt.Sprintf("(not shown: %d bytes)", len(s))
	}
	return strconv.Quote(s)
}

// Params is a repeatable name=value flag (--param amount=250.00), for task
// parameters. A name given twice is refused.
type Params map[string]string

func (p Params) String() string { return "" }

// Set adds one name=value.
func (p Params) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return errors.New("want name=value")
	}
	if _, dup := p[k]; dup {
		return fmt.Errorf("parameter %q given twice", k)
	}
	p[k] = val
	return nil
}
