package flagvalue

import "testing"

func TestSize(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "1024": 1024, "1k": 1 << 10, "500MiB": 500 << 20, "5GiB": 5 << 30, "2g": 2 << 30, "1.5G": 3 << 29, "1TB": 1 << 40, "10B": 10,
	} {
		if got, err := Size("--cache-dir-max-size", in); err != nil || got != want {
			t.Errorf("Size(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "lots", "-1G", "5X", "nan", "inf", "1e30g"} {
		if _, err := Size("--cache-dir-max-size", in); err == nil {
			t.Errorf("Size(%q): want an error", in)
		}
	}
}
