package job

import (
	"fmt"
	"io"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/slipway-build/slipway/engine/dockerfile"
)

func checkImageFormat(format, compression string) error {
	switch format {
	case "", "oci":
		return nil
	case "docker":
		if compression == "zstd" {
			return fmt.Errorf("--image-format docker with --compression zstd: docker manifests cannot hold zstd layers; use --image-format oci or gzip")
		}
		return nil
	default:
		return fmt.Errorf("--image-format %q: use oci or docker", format)
	}
}

// withFormat gives img the manifest, config and layer media types of the
// format asked for (the kaniko fork's --image-format). The blobs stay the
// same: only their descriptors change, so cached and base layers are still
// mounted rather than uploaded.
func withFormat(img v1.Image, format string) (v1.Image, error) {
	if format == "" {
		return img, nil
	}
	manifest, config := types.OCIManifestSchema1, types.OCIConfigJSON
	if format == "docker" {
		manifest, config = types.DockerManifestSchema2, types.DockerConfigJSON
	}
	if mt, err := img.MediaType(); err == nil && mt == manifest {
		return img, nil
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("--image-format %s: %w", format, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("--image-format %s: %w", format, err)
	}
	out := mutate.ConfigMediaType(mutate.MediaType(empty.Image, manifest), config)
	adds := make([]mutate.Addendum, 0, len(layers))
	for _, l := range layers {
		mt, err := l.MediaType()
		if err != nil {
			return nil, fmt.Errorf("--image-format %s: %w", format, err)
		}
		if mt, err = layerMediaType(mt, format); err != nil {
			return nil, err
		}
		adds = append(adds, mutate.Addendum{Layer: l, MediaType: mt})
	}
	if out, err = mutate.Append(out, adds...); err != nil {
		return nil, fmt.Errorf("--image-format %s: %w", format, err)
	}
	// The config as built: the same diff IDs and history.
	return mutate.ConfigFile(out, cf)
}

func layerMediaType(mt types.MediaType, format string) (types.MediaType, error) {
	docker := map[types.MediaType]types.MediaType{
		types.OCILayer:                       types.DockerLayer,
		types.OCIUncompressedLayer:           types.DockerUncompressedLayer,
		types.OCIRestrictedLayer:             types.DockerForeignLayer,
		types.OCIUncompressedRestrictedLayer: types.DockerForeignLayer,
	}
	if format == "docker" {
		if mt == types.OCILayerZStd {
			return "", fmt.Errorf("--image-format docker: the image has zstd layers, which docker manifests cannot hold; use --image-format oci")
		}
		if d, ok := docker[mt]; ok {
			return d, nil
		}
		return mt, nil
	}
	for o, d := range docker {
		if d == mt && o != types.OCIUncompressedRestrictedLayer {
			return o, nil
		}
	}
	return mt, nil
}

// printPlan writes what --dryrun shows: each stage to build, in order,
// with its base and its instructions as written.
func printPlan(w io.Writer, plan *dockerfile.Plan) {
	for _, st := range plan.Stages {
		name := ""
		if st.Name != "" {
			name = " (" + st.Name + ")"
		}
		target := ""
		if st.Index == plan.Target {
			target = ", the target"
		}
		fmt.Fprintf(w, "stage %d%s%s: FROM %s\n", st.Index, name, target, st.Base)
		for _, cmd := range st.Commands {
			fmt.Fprintf(w, "  %s\n", strings.TrimSpace(fmt.Sprint(cmd)))
		}
	}
}
