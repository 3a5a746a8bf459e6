package flagvalue

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Size parses a size in bytes: a number with an optional binary suffix,
// "500MiB", "5GiB", "2g", "1024".
func Size(flag, v string) (int64, error) {
	s := strings.TrimSuffix(strings.TrimSpace(strings.ToLower(v)), "b")
	s = strings.TrimSuffix(s, "i")
	mult := int64(1)
	if n := len(s); n > 0 {
		if i := strings.IndexByte("kmgt", s[n-1]); i >= 0 {
			mult = int64(1) << (10 * (i + 1))
			s = s[:n-1]
		}
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	// NaN and sizes past int64 (inf, 1e30g) would convert to a negative
	// size.
	if err != nil || !(n >= 0 && n*float64(mult) < math.MaxInt64) {
		return 0, fmt.Errorf("%s %q: want a size such as 500MiB or 5GiB", flag, v)
	}
	return int64(n * float64(mult)), nil
}
