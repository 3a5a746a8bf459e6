package harness

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/containerd/stargz-snapshotter/estargz/zstdchunked"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
)

// EStargz returns img with every layer rewritten as eStargz by the
// estargz package, each layer's manifest descriptor annotated with its
// table's digest and uncompressed size, as stargz-snapshotter's converters
// write them. The config (environment, command, platform) is img's.
func EStargz(t testing.TB, img v1.Image) v1.Image {
	t.Helper()
	out, err := chunkedImage(img, false)
	if err != nil {
		t.Fatalf("converting the image to eStargz: %v", err)
	}
	return out
}

// ZstdChunked returns img with every layer rewritten as zstd:chunked by
// the estargz package's zstdchunked, annotated as stargz-snapshotter's
// converter annotates them: the table's position and checksum, and the
// eStargz TOC digest too.
func ZstdChunked(t testing.TB, img v1.Image) v1.Image {
	t.Helper()
	out, err := chunkedImage(img, true)
	if err != nil {
		t.Fatalf("converting the image to zstd:chunked: %v", err)
	}
	return out
}

type zstdChunked struct {
	*zstdchunked.Compressor
	*zstdchunked.Decompressor
}

func chunkedImage(img v1.Image, zstdFrames bool) (v1.Image, error) {
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	var converted []v1.Layer
	var annotations []map[string]string
	for i, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			return nil, err
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, err
		}
		ann := map[string]string{}
		var opts []estargz.Option
		mediaType := types.OCILayer
		if zstdFrames {
			c := zstdChunked{&zstdchunked.Compressor{CompressionLevel: zstd.SpeedDefault, Metadata: ann}, &zstdchunked.Decompressor{}}
			opts, mediaType = append(opts, estargz.WithCompression(c)), types.OCILayerZStd
		}
		b, err := estargz.Build(io.NewSectionReader(bytes.NewReader(data), 0, int64(len(data))), opts...)
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i+1, err)
		}
		blob, err := io.ReadAll(b)
		b.Close()
		if err != nil {
			return nil, err
		}
		size, err := b.UncompressedSize()
		if err != nil {
			return nil, err
		}
		layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(blob)), nil
		}, tarball.WithMediaType(mediaType))
		if err != nil {
			return nil, err
		}
		converted = append(converted, layer)
		ann[estargz.TOCJSONDigestAnnotation] = b.TOCDigest().String()
		ann[estargz.StoreUncompressedSizeAnnotation] = strconv.FormatInt(size, 10)
		annotations = append(annotations, ann)
	}
	return assemble(img, converted, annotations)
}

// Reannotated returns img with each layer's manifest annotations passed
// through edit, for images that claim what their layers are not.
func Reannotated(t testing.TB, img v1.Image, edit func(annotations map[string]string)) v1.Image {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	var annotations []map[string]string
	for _, d := range m.Layers {
		a := maps.Clone(d.Annotations)
		if a == nil {
			a = map[string]string{}
		}
		edit(a)
		annotations = append(annotations, a)
	}
	out, err := assemble(img, layers, annotations)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// assemble is an OCI image of layers, with their annotations, and of img's
// config and history.
func assemble(img v1.Image, layers []v1.Layer, annotations []map[string]string) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	out := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	out = mutate.ConfigMediaType(out, types.OCIConfigJSON)
	for i, layer := range layers {
		var history v1.History
		if i < len(cf.History) {
			history = cf.History[i]
		}
		out, err = mutate.Append(out, mutate.Addendum{Layer: layer, History: history, Annotations: annotations[i]})
		if err != nil {
			return nil, err
		}
	}
	ocf, err := out.ConfigFile()
	if err != nil {
		return nil, err
	}
	ocf = ocf.DeepCopy()
	ocf.OS, ocf.Architecture, ocf.Variant = cf.OS, cf.Architecture, cf.Variant
	ocf.Created, ocf.Config = cf.Created, cf.Config
	out, err = mutate.ConfigFile(out, ocf)
	if err != nil {
		return nil, err
	}
	if _, err := out.Digest(); err != nil {
		return nil, err
	}
	return out, nil
}

// fetchStatusLine matches the registry's log line for a completed GET of
// a blob, with the response's status.
var fetchStatusLine = regexp.MustCompile(`http\.request\.method=GET .*/blobs/sha256:([0-9a-f]{64}).* http\.response\.status=(\d+)`)

// BlobReads lists the GETs of blobs the registry answered so far, from its
// log, as "sha256:<hex> <status>": 200 for a whole blob, 206 for a range.
func (r *Registry) BlobReads(t testing.TB) []string {
	t.Helper()
	return r.loggedDigests(t, fetchStatusLine)
}

// IgnoringRange starts a proxy on loopback before r that drops the Range
// header of every request, as registries and caches that ignore it do, and
// returns its host ("127.0.0.1:PORT"), plain HTTP.
func (r *Registry) IgnoringRange(t testing.TB) string {
	t.Helper()
	if r.CAFile != "" {
		t.Fatal("IgnoringRange proxies plain-HTTP registries only")
	}
	target := &url.URL{Scheme: "http", Host: r.Host}
	proxy := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.Out.Header.Del("Range")
	}})
	t.Cleanup(proxy.Close)
	return strings.TrimPrefix(proxy.URL, "http://")
}
