package layer

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/stream"
)

// bigRoot is a root whose layer spans many compression blocks, so that a
// reader started with the compression sees the file grow.
func bigRoot(t *testing.T) (string, []Change) {
	t.Helper()
	root := t.TempDir()
	var changes []Change
	for i := range 6 {
		b := make([]byte, 1<<20)
		rand.Read(b)
		p := fmt.Sprintf("/big%d.bin", i)
		if err := os.WriteFile(filepath.Join(root, p), b, 0o644); err != nil {
			t.Fatal(err)
		}
		changes = append(changes, Change{Path: p})
	}
	return root, changes
}

// readAll reads l's compressed stream to its end on a goroutine of wg, as
// an upload would.
func readAll(wg *sync.WaitGroup, l v1.Layer, got *[]byte, readErr *error) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		rc, err := l.Compressed()
		if err != nil {
			*readErr = err
			return
		}
		defer rc.Close()
		*got, *readErr = io.ReadAll(rc)
	}()
}

func TestUploadReadsTheLayerWhileItIsWritten(t *testing.T) {
	root, changes := bigRoot(t)
	for _, c := range []Compression{Gzip, Zstd, Uncompressed} {
		t.Run(string(c), func(t *testing.T) {
			var (
				wg         sync.WaitGroup
				streamed   []byte
				readErr    error
				earlyErr   error
				earlyMedia string
			)
			opts := Options{Compression: c, TempDir: t.TempDir(), Upload: func(l v1.Layer) {
				// Before the file is complete, nothing is known of it
				// but its media type.
				_, earlyErr = l.Digest()
				mt, _ := l.MediaType()
				earlyMedia = string(mt)
				readAll(&wg, l, &streamed, &readErr)
			}}
			l, err := Write(root, changes, opts)
			if err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			if !errors.Is(earlyErr, stream.ErrNotComputed) {
				t.Errorf("Digest while writing: %v, want stream.ErrNotComputed", earlyErr)
			}
			if mt, _ := l.MediaType(); earlyMedia != string(mt) {
				t.Errorf("media type while writing %q, after %q", earlyMedia, mt)
			}
			if readErr != nil {
				t.Fatal(readErr)
			}
			rc, err := l.Compressed()
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			want, _ := io.ReadAll(rc)
			if !bytes.Equal(streamed, want) {
				t.Fatalf("the upload read %d bytes, the layer file holds %d; they differ", len(streamed), len(want))
			}
		})
	}
}

func TestUploadOfAFailedWriteFails(t *testing.T) {
	root, changes := bigRoot(t)
	changes = append(changes, Change{Path: "/zz-gone"})
	var (
		wg      sync.WaitGroup
		readErr error
		got     []byte
	)
	_, err := Write(root, changes, Options{TempDir: t.TempDir(), Upload: func(l v1.Layer) {
		readAll(&wg, l, &got, &readErr)
	}})
	if err == nil {
		t.Fatal("Write of a missing path succeeded")
	}
	wg.Wait()
	// io.ReadAll turns io.EOF into nil: an upload that saw the end of
	// the stream would commit a truncated blob.
	if readErr == nil {
		t.Fatalf("the upload read %d bytes and then the end of a layer whose Write failed (%v)", len(got), err)
	}
}

// TestUploadStreamsToARegistry uploads the layer through
// go-containerregistry while it is written: the registry receives one
// streamed upload, committed under the digest Write returns, and is never
// asked whether it has the blob.
func TestUploadStreamsToARegistry(t *testing.T) {
	root, changes := bigRoot(t)
	var (
		mu       sync.Mutex
		requests []string
	)
	reg := registry.New()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/blobs/") {
			mu.Lock()
			requests = append(requests, r.Method)
			mu.Unlock()
		}
		reg.ServeHTTP(w, r)
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	repo, err := name.NewRepository(u.Host + "/app")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg        sync.WaitGroup
		uploadErr error
	)
	l, err := Write(root, changes, Options{TempDir: t.TempDir(), Upload: func(l v1.Layer) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			uploadErr = remote.WriteLayer(repo, l)
		}()
	}})
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if uploadErr != nil {
		t.Fatal(uploadErr)
	}
	d, _ := l.Digest()
	got, err := remote.Layer(repo.Digest(d.String()))
	if err != nil {
		t.Fatal(err)
	}
	if size, _ := l.Size(); size == 0 {
		t.Fatal("empty layer")
	}
	if gotSize, err := got.Size(); err != nil {
		t.Fatalf("the registry has no blob %s: %v", d, err)
	} else if want, _ := l.Size(); gotSize != want {
		t.Errorf("registry blob size %d, layer %d", gotSize, want)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"POST", "PATCH", "PUT"}
	if strings.Join(requests[:min(3, len(requests))], " ") != strings.Join(want, " ") {
		t.Errorf("blob requests %v, want the upload %v first (no HEAD, no mount)", requests, want)
	}
}
