package publish_test

import (
	"context"
	"slices"
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

// Once every blob went up ahead, the push writes the manifest and nothing
// else: the client's Pusher remembers the uploads, so no blob is checked
// again, and the registry is pinged once for the repository, not once
// per upload.
func TestPushAfterUploadsWritesOnlyTheManifest(t *testing.T) {
	reg := harness.StartRegistry(t)
	c := reg.Client()
	dest := reg.Host + "/up/app:v1"
	opts := publish.Options{Destinations: []string{dest}}
	img, err := random.Image(1<<10, 3)
	if err != nil {
		t.Fatal(err)
	}
	// StartRegistry's own requests come first.
	start := len(reg.Requests(t))
	u, err := publish.NewUploader(context.Background(), c, opts)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		u.Upload(l)
	}
	u.UploadConfig(img)
	u.Wait()
	before := len(reg.Requests(t))
	if _, err := publish.Publish(context.Background(), img, c, opts); err != nil {
		t.Fatal(err)
	}
	u.Stop()
	reqs := reg.Requests(t)
	var push []string
	for _, r := range reqs[before:] {
		push = append(push, r.Method+" "+r.Path)
	}
	want := []string{"HEAD /v2/up/app/manifests/v1", "PUT /v2/up/app/manifests/v1"}
	if !slices.Equal(push, want) {
		t.Errorf("the push after the uploads made the requests %q, want only %q", push, want)
	}
	pings := 0
	for _, r := range reqs[start:] {
		if r.Method == "GET" && r.Path == "/v2/" {
			pings++
		}
	}
	if pings != 1 {
		t.Errorf("the uploads and the push pinged the registry %d times, want once", pings)
	}
}
