package buildcontext

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
)

// tarFileSource is tar://PATH: a local tarball.
type tarFileSource struct {
	path string
	opts Options
}

func (s *tarFileSource) String() string { return "tar://" + s.path }

func (s *tarFileSource) Fetch(ctx context.Context, dest string) error {
	f, err := os.Open(s.path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("build context %s: %w: no file at %s", s, ErrNotFound, s.path)
		}
		return fmt.Errorf("build context %s: %w", s, err)
	}
	defer f.Close()
	if err := Extract(ctx, f, dest, s.opts.MaxSize); err != nil {
		return fmt.Errorf("build context %s: %w", s, err)
	}
	return nil
}

// stdinSource is tar://stdin, as kaniko reads it: the tarball on standard input.
type stdinSource struct {
	r    io.Reader
	opts Options
}

func (s *stdinSource) String() string { return "tar://stdin" }

func (s *stdinSource) Fetch(ctx context.Context, dest string) error {
	if err := Extract(ctx, s.r, dest, s.opts.MaxSize); err != nil {
		return fmt.Errorf("build context %s: %w", s, err)
	}
	return nil
}

// httpSource is an http(s) tarball. Credentials come from the URL's
// user:password and are sent as basic auth; they never reach logs.
type httpSource struct {
	url  *url.URL
	opts Options
}

func (s *httpSource) String() string { return redactURL(s.url.String()) }

func (s *httpSource) Fetch(ctx context.Context, dest string) error {
	u := *s.url
	u.User = nil
	u.Fragment = ""
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("build context %s: %w", s, err)
	}
	if s.url.User != nil {
		pw, _ := s.url.User.Password()
		req.SetBasicAuth(s.url.User.Username(), pw)
	}
	client := s.opts.httpClient()
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("build context %s: downloading: %w", s, unwrapURLError(err))
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		hint := "put credentials in the URL as https://USER:PASSWORD@host/…"
		if s.url.User != nil {
			hint = "the server refused the credentials in the URL"
		}
		return fmt.Errorf("build context %s: %w (HTTP %d): %s", s, ErrAuth, resp.StatusCode, hint)
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return fmt.Errorf("build context %s: %w (HTTP %d)", s, ErrNotFound, resp.StatusCode)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("build context %s: downloading: HTTP %s", s, resp.Status)
	}
	if resp.ContentLength > s.opts.MaxSize {
		return fmt.Errorf("build context %s: %w: the server says it is %s bytes, over the %d-byte limit", s, ErrTooLarge, strconv.FormatInt(resp.ContentLength, 10), s.opts.MaxSize)
	}
	if err := Extract(ctx, resp.Body, dest, s.opts.MaxSize); err != nil {
		return fmt.Errorf("build context %s: %w", s, err)
	}
	return nil
}

// unwrapURLError drops *url.Error's copy of the URL, which may still carry
// a query string with secrets, keeping the cause.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
