package tasks

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/tektoncd/pipeline/pkg/resolution/resolver/bundle"
	"sigs.k8s.io/yaml"

	"github.com/slipway-build/slipway/e2e/harness"
)

// The bundles are read back by Tekton's own bundle resolver code from a
// real registry.
func TestBundlesResolveWithTektonsResolver(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the distribution registry; run without -short")
	}
	reg := harness.StartRegistry(t)
	bundles, err := Bundles(reg.Host + "/catalog")
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bundles {
		ref, err := name.ParseReference(b.Ref, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, b.Image); err != nil {
			t.Fatal(err)
		}
		res, err := bundle.GetEntry(context.Background(), authn.DefaultKeychain, bundle.RequestOptions{Bundle: b.Ref, EntryName: b.Name, Kind: b.Kind})
		if err != nil {
			t.Fatalf("%s: Tekton's resolver refused the bundle: %v", b.Ref, err)
		}
		var obj struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(res.Data(), &obj); err != nil {
			t.Fatal(err)
		}
		if obj.Metadata.Name != b.Name || strings.ToLower(obj.Kind) != b.Kind {
			t.Errorf("%s resolved to %s %q", b.Ref, obj.Kind, obj.Metadata.Name)
		}
	}
}
