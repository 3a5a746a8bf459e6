package publish_test

import (
	"context"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipway-build/slipway/e2e/harness"
	"github.com/slipway-build/slipway/engine/publish"
)

// The Uploader puts a layer's blob in every destination repository, once
// per repository, and names nothing: no tag exists until the push.
func TestUploaderUploadsBlobsAndNoTag(t *testing.T) {
	reg := harness.StartRegistry(t)
	c := reg.Client()
	dests := []string{reg.Host + "/up/one:a", reg.Host + "/up/one:b", reg.Host + "/up/two:a"}
	u, err := publish.NewUploader(context.Background(), c, publish.Options{Destinations: dests})
	if err != nil {
		t.Fatal(err)
	}
	l, err := random.Layer(1<<10, "")
	if err != nil {
		t.Fatal(err)
	}
	digest, _ := l.Digest()
	u.Upload(l)
	u.Wait()
	u.Stop()
	uploads := 0
	for _, d := range reg.UploadedBlobs(t) {
		if d == digest.String() {
			uploads++
		}
	}
	if uploads != 2 {
		t.Errorf("the layer was uploaded %d times, want 2: once to each repository", uploads)
	}
	for _, repo := range []string{"up/one", "up/two"} {
		ref, err := name.ParseReference(reg.Host + "/" + repo + "@" + digest.String())
		if err != nil {
			t.Fatal(err)
		}
		d := ref.(name.Digest)
		if _, err := remote.Layer(d, c.RemoteOptions(c.Reference(d, false), false)...); err != nil {
			t.Errorf("%s: %v", repo, err)
		}
		tags, err := remote.List(c.Reference(d, false).Context(), c.RemoteOptions(d, false)...)
		if err == nil && len(tags) > 0 {
			t.Errorf("%s has tags %v before any push", repo, tags)
		}
	}
}

// Without a push there is no Uploader, and a nil one uploads nothing.
func TestNoUploaderWithoutAPush(t *testing.T) {
	for _, opts := range []publish.Options{{NoPush: true, Destinations: []string{"127.0.0.1:1/x:y"}}, {NoPush: true}} {
		u, err := publish.NewUploader(context.Background(), nil, opts)
		if err != nil || u != nil {
			t.Errorf("NewUploader(%+v) = %v, %v; want nil, nil", opts, u, err)
		}
		l, _ := random.Layer(16, "")
		u.Upload(l)
		u.Wait()
		u.Stop()
	}
}
