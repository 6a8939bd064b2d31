package fetch

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// maxAge finds the max-age directive (RFC 9111 §5.2.2.1) in Cache-Control
// header values.
func maxAge(values []string) (time.Duration, bool) {
	const ceiling = 1 << 31 // RFC 9111 §1.2.2: treat larger values as this
	for _, v := range values {
		for _, dir := range strings.Split(v, ",") {
			name, arg, found := strings.Cut(strings.TrimSpace(dir), "=")
			if !found || !strings.EqualFold(strings.TrimSpace(name), "max-age") {
				continue
			}
			n, err := strconv.ParseUint(strings.Trim(strings.TrimSpace(arg), `"`), 10, 64)
			if errors.Is(err, strconv.ErrRange) {
				n = ceiling
			} else if err != nil {
				return 0, false
			}
			return time.Duration(min(n, ceiling)) * time.Second, true
		}
	}
	return 0, false
}
