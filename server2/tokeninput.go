package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf16"

	"github.com/handoffbroker/handoff/shared/cli"
)

// maxTokenInput caps what verify and inspect read, from stdin or a file.
const maxTokenInput = 64 << 10

// tokenInput is the token a user handed verify or inspect, cleaned of the
// harmless paste mistakes.
type tokenInput struct {
	// Token is the input with Stripped removed.
	Token string
	// Stripped says what was removed: surrounding whitespace, quotes, a
	// "Bearer " prefix.
	Stripped []string
	// Hints name likely paste mistakes left in place, because removing
	// them could change which token is checked.
	Hints []string
}

// readTokenInput reads the token from the file operand, or from stdin
// when there is none or it is "-". A token itself given as the operand is
// refused, unprinted: argv is visible to other users (ps) and kept in
// shell history.
func readTokenInput(operands []string, stdin io.Reader, stderr io.Writer) (tokenInput, error) {
	if len(operands) > 1 {
		return tokenInput{}, cli.Usagef("want at most one FILE, got %d arguments", len(operands))
	}
	var r io.Reader = stdin
	if len(operands) == 1 && operands[0] != "-" {
		path := operands[0]
		f, err := os.Open(path)
		switch {
		case err != nil && cli.LooksLikeToken(path):
			return tokenInput{}, cli.Usage(errors.New("the argument is a token, not a FILE: a token on the command line is visible to other users (ps) and kept in shell history; pass it on stdin or in a file (it was not checked, and should be treated as exposed)"))
		case err != nil:
			return tokenInput{}, cli.Usage(err)
		}
		defer f.Close()
		r = f
	} else if f, ok := stdin.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			fmt.Fprintln(stderr, "Paste the token, then press Enter and Ctrl-D:")
		}
	}
	b, err := io.ReadAll(io.LimitReader(r, maxTokenInput+1))
	if err != nil {
		return tokenInput{}, fmt.Errorf("reading the token: %w", err)
	}
	if len(b) > maxTokenInput {
		return tokenInput{}, cli.Usagef("the input is over %d bytes: not a handoff token", maxTokenInput)
	}
	in := cleanToken(string(b))
	if in.Token == "" {
		return tokenInput{}, cli.Usage(errors.New("no token in the input"))
	}
	return in, nil
}

var urlEscape = regexp.MustCompile(`%[0-9A-Fa-f]{2}`)

// cleanToken removes surrounding whitespace, quotes and an
// "Authorization: Bearer " prefix, saying so (the line break ending the
// input goes silently), and hints at the mistakes
// it leaves: whitespace inside, URL encoding, a whole form body.
func cleanToken(raw string) tokenInput {
	var in tokenInput
	raw = strings.TrimRight(raw, "\r\n")
	s := strings.TrimSpace(raw)
	if s != raw {
		in.Stripped = append(in.Stripped, "surrounding whitespace")
	}
	for range 2 {
		if len(s) >= 2 && (s[0] == '"' || s[0] == '\'' || s[0] == '`') && s[len(s)-1] == s[0] {
			s = strings.TrimSpace(s[1 : len(s)-1])
			in.Stripped = append(in.Stripped, "surrounding quotes")
		}
		if name, rest, ok := strings.Cut(s, ":"); ok && strings.EqualFold(strings.TrimSpace(name), "Authorization") {
			s = strings.TrimSpace(rest)
			in.Stripped = append(in.Stripped, `an "Authorization:" header name`)
		}
		if len(s) > 7 && strings.EqualFold(s[:7], "Bearer ") {
			s = strings.TrimSpace(s[7:])
			in.Stripped = append(in.Stripped, `a "Bearer " prefix`)
		}
	}
	in.Stripped = slices.Compact(in.Stripped)
	in.Token = s
	if strings.HasPrefix(s, "token=") || strings.Contains(s, "&token=") {
		in.Hints = append(in.Hints, "this looks like a whole form body (token=...): pass only the value of token, URL-decoded")
	} else if urlEscape.MatchString(s) {
		in.Hints = append(in.Hints, "this looks URL-encoded (it has %XX escapes): decode it first; it was probably copied from a URL or a form body")
	}
	if strings.IndexFunc(s, unicode.IsSpace) >= 0 {
		in.Hints = append(in.Hints, "the token has whitespace inside, perhaps a line break from copying a wrapped line: join the lines (it was left in, so the token reads as malformed)")
	}
	if n := strings.Count(s, "."); n != 2 && s != "" {
		in.Hints = append(in.Hints, fmt.Sprintf("a handoff token has three parts separated by dots; this has %d: was it cut short when copied?", n+1))
	}
	return in
}

// printNotes tells the user, on stderr, what was stripped and what looks
// wrong in the input.
func printNotes(w io.Writer, in tokenInput) {
	for _, s := range in.Stripped {
		fmt.Fprintf(w, "note: stripped %s from the input\n", s)
	}
	for _, h := range in.Hints {
		fmt.Fprintf(w, "hint: %s\n", h)
	}
}

// unverifiedToken is a token's header and claims decoded without any
// check: nothing in it is to be trusted, and everything shown from it is
// labelled so.
type unverifiedToken struct {
	Header map[string]any
	Claims map[string]any
	// SignatureBytes is the decoded signature's length; the signature
	// itself is never shown.
	SignatureBytes int
}

// decodeUnverified splits a compact JWS and decodes its header and
// payload as JSON objects, checking nothing else.
func decodeUnverified(tok string) (unverifiedToken, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return unverifiedToken{}, fmt.Errorf("not a compact JWS: %d dot-separated parts, want 3", len(parts))
	}
	var u unverifiedToken
	if err := decodeSegment(parts[0], &u.Header); err != nil {
		return unverifiedToken{}, fmt.Errorf("header: %w", err)
	}
	if err := decodeSegment(parts[1], &u.Claims); err != nil {
		return unverifiedToken{}, fmt.Errorf("claims: %w", err)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return unverifiedToken{}, errors.New("signature: not unpadded base64url")
	}
	u.SignatureBytes = len(sig)
	return u, nil
}

func decodeSegment(seg string, v *map[string]any) error {
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return errors.New("not unpadded base64url")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil || *v == nil {
		return errors.New("not a JSON object")
	}
	return nil
}

// Display orders: the registered names first, the rest sorted.
var (
	headerOrder = []string{"alg", "typ", "kid"}
	claimOrder  = []string{"iss", "sub", "aud", "iat", "nbf", "exp", "jti", "task", "act", "nonce"}
)

func orderedKeys(m map[string]any, first []string) []string {
	var keys, rest []string
	for _, k := range first {
		if _, ok := m[k]; ok {
			keys = append(keys, k)
		}
	}
	for k := range m {
		if !slices.Contains(first, k) {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	return append(keys, rest...)
}

// display renders a decoded value on one line. Strings that hold
// non-printable characters are quoted with escapes, so a hostile token
// cannot send escape sequences to the terminal (terminal injection).
func display(v any) string {
	var s string
	switch v := v.(type) {
	case string:
		s = v
	default:
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			return fmt.Sprint(v)
		}
		s = strings.TrimSuffix(b.String(), "\n")
	}
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return strconv.QuoteToASCII(s)
	}
	return s
}

// numericTime reads a NumericDate claim; ok is false when v is not one.
func numericTime(v any) (time.Time, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, false
	}
	f, err := n.Float64()
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(int64(f), 0).UTC(), true
}

// relativeTime says when claim (iat, nbf or exp) at t stands from now,
// and whether the leeway covers it: "expired 2m13s ago; leeway 30s".
func relativeTime(claim string, t, now time.Time, leeway time.Duration) string {
	d := now.Sub(t).Round(time.Second)
	ago, in := d.String()+" ago", "in "+(-d).String()
	lw := "; leeway " + leeway.String()
	switch claim {
	case "exp":
		switch {
		case d > leeway:
			return "expired " + ago + lw
		case d > 0:
			return "expired " + ago + ", within the leeway of " + leeway.String()
		default:
			return "expires " + in
		}
	case "nbf":
		switch {
		case -d > leeway:
			return "not valid until " + in + lw
		case d < 0:
			return in + ", within the leeway of " + leeway.String()
		default:
			return "valid since " + ago
		}
	default:
		switch {
		case -d > leeway:
			return "issued " + in + ", in the future" + lw
		case d < 0:
			return "issued " + in + ", within the leeway of " + leeway.String()
		default:
			return "issued " + ago
		}
	}
}

// claimLine renders one claim value, times with their UTC date and
// relative wording.
func claimLine(name string, v any, now time.Time, leeway time.Duration) string {
	if name == "iat" || name == "nbf" || name == "exp" {
		if t, ok := numericTime(v); ok {
			return t.Format(time.RFC3339) + " (" + relativeTime(name, t, now, leeway) + ")"
		}
	}
	return display(v)
}

// timeReport is a NumericDate claim in the JSON output.
type timeReport struct {
	Time     time.Time `json:"time"`
	Relative string    `json:"relative"`
}

// claimTimes is the iat, nbf and exp claims as times, for the JSON output.
func claimTimes(claims map[string]any, now time.Time, leeway time.Duration) map[string]timeReport {
	out := map[string]timeReport{}
	for _, name := range []string{"iat", "nbf", "exp"} {
		if t, ok := numericTime(claims[name]); ok {
			out[name] = timeReport{Time: t, Relative: relativeTime(name, t, now, leeway)}
		}
	}
	return out
}

// writeJSON prints v as indented JSON. encoding/json escapes only the C0
// controls, so the other characters display would escape (DEL, the C1
// controls such as CSI, bidirectional overrides) are written as \u escapes
// too: the JSON means the same, and a terminal it is printed on gets no
// control sequence from a hostile token.
func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	var out strings.Builder
	for _, r := range string(b) {
		switch {
		case r == '\n' || unicode.IsPrint(r):
			out.WriteRune(r)
		case r > 0xffff:
			hi, lo := utf16.EncodeRune(r)
			fmt.Fprintf(&out, `\u%04x\u%04x`, hi, lo)
		default:
			fmt.Fprintf(&out, `\u%04x`, r)
		}
	}
	out.WriteByte('\n')
	_, err = io.WriteString(w, out.String())
	return err
}
