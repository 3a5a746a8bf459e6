// Package logging sets up the log every step writes: kaniko's look
// ("INFO[0001] Retrieving image manifest busybox"), or JSON for log
// collectors, at kaniko's verbosity names.
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"strings"
	"sync"
	"time"
)

// LevelTrace is below slog's debug, for kaniko's "trace" verbosity.
const LevelTrace = slog.LevelDebug - 4

// Options are the steps' --verbosity, --log-format and --log-timestamp.
type Options struct {
	Verbosity string // panic, fatal, error, warn, info (default), debug, trace
	Format    string // text (default), color, json
	Timestamp bool
}

// New returns a logger writing to w.
func New(w io.Writer, opts Options) (*slog.Logger, error) {
	level, err := ParseLevel(opts.Verbosity)
	if err != nil {
		return nil, err
	}
	switch opts.Format {
	case "", "text", "color":
		return slog.New(&textHandler{w: w, level: level, color: opts.Format == "color", timestamp: opts.Timestamp, start: time.Now(), mu: &sync.Mutex{}}), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})), nil
	default:
		return nil, fmt.Errorf("unknown --log-format %q: use text, color or json", opts.Format)
	}
}

// ParseLevel maps kaniko's verbosity names to slog levels.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "", "info":
		return slog.LevelInfo, nil
	case "debug":
		return slog.LevelDebug, nil
	case "trace":
		return LevelTrace, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error", "fatal", "panic":
		return slog.LevelError, nil
	default:
		return 0, fmt.Errorf("unknown --verbosity %q: use panic, fatal, error, warn, info, debug or trace", s)
	}
}

type textHandler struct {
	w         io.Writer
	level     slog.Level
	color     bool
	timestamp bool
	start     time.Time
	attrs     []slog.Attr
	mu        *sync.Mutex
}

func (h *textHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *textHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	name, color := levelName(r.Level)
	if h.color {
		fmt.Fprintf(&b, "\x1b[%dm%s\x1b[0m", color, name)
	} else {
		b.WriteString(name)
	}
	if h.timestamp {
		fmt.Fprintf(&b, "[%s] ", r.Time.Format(time.RFC3339))
	} else {
		fmt.Fprintf(&b, "[%04d] ", int(r.Time.Sub(h.start).Seconds()))
	}
	b.WriteString(r.Message)
	attrs := append([]slog.Attr(nil), h.attrs...)
	r.Attrs(func(a slog.Attr) bool { attrs = append(attrs, a); return true })
	for _, a := range attrs {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
	}
	b.WriteByte('\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, b.String())
	return err
}

func (h *textHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), attrs...)
	return &c
}

// WithGroup is flattened: the text format has no nesting.
func (h *textHandler) WithGroup(string) slog.Handler { return h }

func levelName(l slog.Level) (string, int) {
	switch {
	case l >= slog.LevelError:
		return "ERRO", 31
	case l >= slog.LevelWarn:
		return "WARN", 33
	case l >= slog.LevelInfo:
		return "INFO", 36
	case l >= slog.LevelDebug:
		return "DEBU", 37
	default:
		return "TRAC", 37
	}
}
