// Package seconds rounds times to the one-second resolution of an RFC 7519
// NumericDate.
package seconds

import "time"

// Ceil rounds t up to a whole second. "iat" has one-second resolution, so a
// token whose iat equals a given second may have been issued, and used, just
// before that instant: rounding down would let it through.
func Ceil(t time.Time) time.Time {
	if r := t.Truncate(time.Second); !r.Equal(t) {
		return r.Add(time.Second)
	}
	return t
}

// After returns the first whole second strictly after t. A token issued at
// or before t has an iat of at most t's second, so every such token has an
// iat before After(t), even when t sits exactly on a second (where Ceil
// would return t itself and let a token issued at that instant through).
func After(t time.Time) time.Time {
	return t.Truncate(time.Second).Add(time.Second)
}
