package registry

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// retry runs op up to 1+retries times, doubling the delay after each
// failure, as kaniko's --push-retry and --image-download-retry do. Errors no
// retry can fix (credentials, unknown names, untrusted certificates) end it
// at once.
func retry[T any](ctx context.Context, log *slog.Logger, what string, retries int, delay time.Duration, op func() (T, error)) (T, error) {
	for attempt := 0; ; attempt++ {
		v, err := op()
		if err == nil || attempt >= retries || permanent(err) {
			return v, err
		}
		log.Warn(fmt.Sprintf("Retrying %s in %s (attempt %d of %d)", what, delay, attempt+2, retries+1), "error", Redact(err.Error()))
		select {
		case <-ctx.Done():
			return v, err
		case <-time.After(delay):
		}
		delay *= 2
	}
}
