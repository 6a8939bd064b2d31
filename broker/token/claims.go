package token

import (
	"strconv"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// maxNumericDate is 9999-12-31T23:59:59Z: later times are refused as
// nonsense rather than risk overflow in arithmetic on them.
const maxNumericDate = 253402300799

// incomingClaims is a handoff token's payload as decoded (decodePayload),
// before the signature is checked. Times and "aud" stay raw so their JSON
// types can be checked strictly.
type incomingClaims struct {
	Issuer    *string        `json:"iss"`
	Subject   *string        `json:"sub"`
	Audience  jsontext.Value `json:"aud"`
	IssuedAt  jsontext.Value `json:"iat"`
	NotBefore jsontext.Value `json:"nbf"`
	Expiry    jsontext.Value `json:"exp"`
	ID        *string        `json:"jti"`
	Task      *Task          `json:"task"`
	Actor     *Actor         `json:"act"`
	Nonce     *string        `json:"nonce"`
	Outcome   *string        `json:"outcome"`
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
		{"sub", in.Subject != nil}, {"aud", in.Audience != nil},
		{"exp", in.Expiry != nil}, {"iat", in.IssuedAt != nil}, {"jti", in.ID != nil},
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
	if c.ExpiresAt, err = numericDate("exp", in.Expiry); err != nil {
		return c, err
	}
	if c.IssuedAt, err = numericDate("iat", in.IssuedAt); err != nil {
		return c, err
	}
	if in.NotBefore != nil {
		if c.NotBefore, err = numericDate("nbf", in.NotBefore); err != nil {
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
func checkAudience(raw jsontext.Value, want string) error {
	if raw.Kind() != '"' {
		return reject(ReasonWrongAudience, "aud", "aud must be a single string")
	}
	var got string
	if err := json.Unmarshal(raw, &got); err != nil {
		return rejectWrap(ReasonInvalidClaim, "aud", err)
	}
	if got != want {
		return reject(ReasonWrongAudience, "aud", "token is for another audience")
	}
	return nil
}

// numericDate parses an RFC 7519 NumericDate strictly: a non-negative JSON
// integer of at most maxNumericDate. Strings, fractions, exponents and
// negative numbers are refused.
func numericDate(name string, raw jsontext.Value) (time.Time, error) {
	s := string(raw)
	if s == "" || len(s) > 12 {
		return time.Time{}, reject(ReasonInvalidClaim, name, "not a NumericDate")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return time.Time{}, reject(ReasonInvalidClaim, name, "not a non-negative integer NumericDate")
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
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
