package tasks

import (
	"archive/tar"
	"bytes"
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/tektoncd/pipeline/pkg/resolution/resolver/bundle"
)

// Bundle is one Tekton bundle: an image whose single layer holds one
// resource, annotated as Tekton's bundle resolver reads it.
type Bundle struct {
	// Kind is the lower-case, singular kind: "task" or "stepaction".
	Kind string
	Name string
	Ref  string
	// Image is the bundle, ready to push.
	Image v1.Image
}

// Bundles returns a bundle for every published Task and StepAction, named
// by BundleRef under repo (BundleRepo when empty).
func Bundles(repo string, opts ...Option) ([]Bundle, error) {
	o := makeOptions(opts)
	if repo == "" {
		repo = BundleRepo
	}
	var out []Bundle
	for _, r := range []struct {
		kind, apiVersion, name string
		obj                    any
	}{
		{"task", "tekton.dev/v1", BuildName, BuildTask(opts...)},
		{"task", "tekton.dev/v1", WarmName, WarmTask(opts...)},
		{"stepaction", "tekton.dev/v1beta1", BuildName, BuildStepAction(opts...)},
	} {
		data, err := toYAML(r.obj)
		if err != nil {
			return nil, err
		}
		img, err := bundleImage(r.kind, r.apiVersion, r.name, data)
		if err != nil {
			return nil, fmt.Errorf("bundling %s %s: %w", r.kind, r.name, err)
		}
		out = append(out, Bundle{Kind: r.kind, Name: r.name, Ref: fmt.Sprintf("%s/%s/%s:%s", repo, r.kind, r.name, o.version), Image: img})
	}
	return out, nil
}

// bundleImage lays one resource out as `tkn bundle push` does: a tar layer
// holding the YAML as a single file, annotated with its kind, name and
// apiVersion, with fixed times so a bundle's digest depends on its content.
func bundleImage(kind, apiVersion, name string, data []byte) (v1.Image, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(data); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	layer := static.NewLayer(buf.Bytes(), types.OCIUncompressedLayer)
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	return mutate.Append(img, mutate.Addendum{
		Layer: layer,
		Annotations: map[string]string{
			bundle.BundleAnnotationKind:       kind,
			bundle.BundleAnnotationName:       name,
			bundle.BundleAnnotationAPIVersion: apiVersion,
		},
	})
}
