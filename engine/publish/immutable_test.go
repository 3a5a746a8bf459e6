package publish_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/slipway-build/slipway/engine/publish"
	"github.com/slipway-build/slipway/engine/registry"
)

// An ECR-like registry refuses to move a tag: with
// --push-ignore-immutable-tag-errors the push counts as done, as kaniko's.
func TestPublishImmutableTag(t *testing.T) {
	isolate(t)
	inner := ggcrregistry.New()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/manifests/v1") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"errors":[{"code":"TAG_INVALID","message":"The image tag 'v1' already exists in the 'team/app' repository and cannot be overwritten because the repository is immutable."}]}`))
			return
		}
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	c := registry.New(registry.Options{InsecureRegistries: []string{host}})
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}

	out := newOutputs(t)
	opts := out.options(host + "/team/app:v1")
	opts.SkipPushPermissionCheck = true
	if _, err := publish.Publish(context.Background(), img, c, opts); err == nil || !strings.Contains(err.Error(), "immutable") {
		t.Fatalf("Publish = %v, want the immutable tag error", err)
	}
	out.assertNothingWritten(t)

	opts.IgnoreImmutableTagErrors = true
	got, err := publish.Publish(context.Background(), img, c, opts)
	if err != nil {
		t.Fatalf("with IgnoreImmutableTagErrors: %v", err)
	}
	if want, _ := img.Digest(); got != want || read(t, out.digest) != want.String() {
		t.Errorf("digest %s, file %q; want %s", got, read(t, out.digest), want)
	}
}
