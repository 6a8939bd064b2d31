package token

import (
	"strconv"
	"time"

	"github.com/go-json-experiment/json/jsontext"
)

// maxNumericDate is 9999-12-31T23:59:59Z: later times are refused as
// nonsense rather than risk overflow in arithmetic on them.
const maxNumericDate = 253402300799

// incomingClaims is a handoff token's payload as decoded (decodePayload),
// before the signature is checked. Times and "aud" stay raw so their JSON
// types can be checked strictly, once the signature verified.
type incomingClaims struct {
	Issuer    *string     `json:"iss"`
	Subject   *string     `json:"sub"`
	Audience  rawAudience `json:"aud"`
	IssuedAt  rawDate     `json:"iat"`
	NotBefore rawDate     `json:"nbf"`
	Expiry    rawDate     `json:"exp"`
	ID        *string     `json:"jti"`
	Task      *Task       `json:"task"`
	Actor     *Actor      `json:"act"`
	Nonce     *string     `json:"nonce"`
	Outcome   *string     `json:"outcome"`
}

// rawDate is a time claim as decoded: present or not (JSON null counts as
// present), and its JSON text when short enough to be a NumericDate. It
// holds the text in place, so decoding allocates nothing.
type rawDate struct {
	set bool
	n   uint8 // bytes of b in use; all of b for a value longer than any NumericDate
	b   [maxNumericDateLen + 1]byte
}

// maxNumericDateLen is the length of maxNumericDate in digits.
const maxNumericDateLen = 12

// UnmarshalJSONFrom keeps any one JSON value; numericDate judges it.
func (d *rawDate) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	v, err := dec.ReadValue()
	if err != nil {
		return err
	}
	d.set = true
	d.n = uint8(copy(d.b[:], v))
	return nil
}

func (d *rawDate) text() []byte { return d.b[:d.n] }

// rawAudience is "aud" as decoded: present or not, and its value when it is
// a single JSON string.
type rawAudience struct {
	set      bool
	isString bool
	value    string
}

// UnmarshalJSONFrom keeps a string's value and only the kind of anything
// else; checkAudience refuses all but a string.
func (a *rawAudience) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	a.set = true
	if dec.PeekKind() != '"' {
		return dec.SkipValue()
	}
	tok, err := dec.ReadToken()
	if err != nil {
		return err
	}
	a.isString, a.value = true, tok.String()
	return nil
}

func (in *incomingClaims) unverifiedIssuer() *string { return in.Issuer }

// checkClaims validates a handoff token's claims at now. in is the payload
// of jws, whose signature and issuer the pipeline has checked.
func (v *Verifier) checkClaims(in *incomingClaims, jws verifiedJWS, now time.Time) (Claims, error) {
	var c Claims
	// Presence first, so a missing claim is named as missing.
	for _, req := range []struct {
		name    string
		present bool
	}{
		{"sub", in.Subject != nil}, {"aud", in.Audience.set},
		{"exp", in.Expiry.set}, {"iat", in.IssuedAt.set}, {"jti", in.ID != nil},
		{"task", in.Task != nil},
	} {
		if !req.present {
			return c, reject(ReasonMissingClaim, req.name, "required claim is absent")
		}
	}
	c.Issuer, c.Subject, c.ID, c.Task, c.Actor = jws.issuer, *in.Subject, *in.ID, *in.Task, in.Actor
	c.KeyID, c.Algorithm = jws.key.KeyID, jws.key.Algorithm
	if in.Nonce != nil {
		c.Nonce = *in.Nonce
	}
	if err := checkAudience(in.Audience, v.cfg.Audience); err != nil {
		return c, err
	}
	c.Audience = v.cfg.Audience
	var err error
	if c.ExpiresAt, err = numericDate("exp", in.Expiry.text()); err != nil {
		return c, err
	}
	if c.IssuedAt, err = numericDate("iat", in.IssuedAt.text()); err != nil {
		return c, err
	}
	if in.NotBefore.set {
		if c.NotBefore, err = numericDate("nbf", in.NotBefore.text()); err != nil {
			return c, err
		}
	}
	if err := checkStrings(c); err != nil {
		return c, err
	}
	if v.typ == ResultTokenType {
		if c.Outcome, err = checkOutcome(in.Outcome); err != nil {
			return c, err
		}
	}
	return c, v.validity.check(now, c.IssuedAt, c.NotBefore, c.ExpiresAt)
}

// checkAudience requires "aud" to be a single string equal to want. An array
// is refused even when it contains want: a token meant for several services
// could be replayed from one to another.
func checkAudience(aud rawAudience, want string) error {
	if !aud.isString {
		return reject(ReasonWrongAudience, "aud", "aud must be a single string")
	}
	if aud.value != want {
		return reject(ReasonWrongAudience, "aud", "token is for another audience")
	}
	return nil
}

// numericDate parses an RFC 7519 NumericDate strictly: a non-negative JSON
// integer of at most maxNumericDate. Strings, fractions, exponents and
// negative numbers are refused.
func numericDate(name string, s []byte) (time.Time, error) {
	if len(s) == 0 || len(s) > maxNumericDateLen {
		return time.Time{}, reject(ReasonInvalidClaim, name, "not a NumericDate")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return time.Time{}, reject(ReasonInvalidClaim, name, "not a non-negative integer NumericDate")
		}
	}
	n, err := strconv.ParseInt(string(s), 10, 64)
	if err != nil || n > maxNumericDate || (len(s) > 1 && s[0] == '0') {
		return time.Time{}, reject(ReasonInvalidClaim, name, "NumericDate out of range")
	}
	return time.Unix(n, 0), nil
}

func checkStrings(c Claims) error {
	switch {
	case c.Subject == "" || len(c.Subject) > maxStringLen:
		return reject(ReasonInvalidClaim, "sub", "sub must be 1 to %d bytes", maxStringLen)
	case c.ID == "" || len(c.ID) > maxIDLen:
		return reject(ReasonInvalidClaim, "jti", "jti must be 1 to %d bytes", maxIDLen)
	case c.Actor != nil && (c.Actor.Subject == "" || len(c.Actor.Subject) > maxStringLen):
		return reject(ReasonInvalidClaim, "act", "act.sub must be 1 to %d bytes", maxStringLen)
	case len(c.Nonce) > maxStringLen:
		return reject(ReasonInvalidClaim, "nonce", "nonce must be at most %d bytes", maxStringLen)
	}
	if err := c.Task.validate(); err != nil {
		return rejectWrap(ReasonInvalidClaim, "task", err)
	}
	return nil
}
