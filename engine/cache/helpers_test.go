package cache

import (
	"io"
	"log/slog"
)

// slogTo logs everything, debug included, as text to w.
func slogTo(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
