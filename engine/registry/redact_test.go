package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"
)

const uploadToken = "3qysKmscwxX6VkG9nVE2o8TZhpr8ot6VfrDM9C3hyrd7Ik5hbWUiOiJzbGlw"

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"no url here", "no url here"},
		{"GET http://127.0.0.1:5000/v2/: connection refused", "GET http://127.0.0.1:5000/v2/: connection refused"},
		{
			`Patch "http://127.0.0.1:5000/v2/app/blobs/uploads/c0cd?_state=` + uploadToken + `": read: connection reset by peer`,
			`Patch "http://127.0.0.1:5000/v2/app/blobs/uploads/c0cd?_state=REDACTED": read: connection reset by peer`,
		},
		{
			"PUT https://r.example/v2/app/blobs/uploads/x?_state=" + uploadToken + "&digest=sha256%3Aabc: EOF",
			"PUT https://r.example/v2/app/blobs/uploads/x?_state=REDACTED&digest=sha256%3Aabc: EOF",
		},
		{
			"GET https://bucket.s3.example/blob?X-Amz-Signature=deadbeef&scope=repository%3Aapp%3Apull failed",
			"GET https://bucket.s3.example/blob?X-Amz-Signature=REDACTED&scope=repository%3Aapp%3Apull failed",
		},
		{"fetch https://user:hunter2@r.example/v2/ failed", "fetch https://user:REDACTED@r.example/v2/ failed"},
	} {
		if got := Redact(tc.in); got != tc.want {
			t.Errorf("Redact(%q)\n = %q\nwant %q", tc.in, got, tc.want)
		}
	}
}

// TestRetryWarningRedactsUploadToken: a connection reset during a blob
// upload is retried with a warning that names the upload URL, whose
// _state is the registry's session token.
func TestRetryWarningRedactsUploadToken(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))

	reset := fmt.Errorf("uploading layer: %w", &url.Error{
		Op:  "Patch",
		URL: "http://127.0.0.1:5000/v2/app/blobs/uploads/c0cd?_state=" + uploadToken,
		Err: syscall.ECONNRESET,
	})
	calls := 0
	_, err := retry(context.Background(), log, "pushing 127.0.0.1:5000/app", 1, time.Millisecond, func() (int, error) {
		calls++
		return 0, reset
	})
	if !errors.Is(err, syscall.ECONNRESET) || calls != 2 {
		t.Fatalf("retry = %v after %d calls, want the reset after 2", err, calls)
	}
	c := New(Options{})
	explained := c.explain("pushing to 127.0.0.1:5000/app", "127.0.0.1:5000", false, err)
	for what, s := range map[string]string{"the retry warning": buf.String(), "the error": explained.Error()} {
		if strings.Contains(s, uploadToken) {
			t.Errorf("%s shows the upload token:\n%s", what, s)
		}
		if !strings.Contains(s, "_state=REDACTED") {
			t.Errorf("%s does not show the redacted URL:\n%s", what, s)
		}
	}
}
