package registry_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/slipway-build/slipway/e2e/harness"
	"github.com/slipway-build/slipway/engine/registry"
)

// A layer of a pulled image is read a range at a time from its registry;
// a registry that sends the whole blob instead is told apart, and a layer
// from elsewhere has no registry blob.
func TestLayerBlobReadsRanges(t *testing.T) {
	isolate(t)
	reg := harness.StartRegistry(t)
	ctx := context.Background()
	proxyHost := reg.IgnoringRange(t)
	opts := reg.ClientOptions()
	opts.InsecureRegistries = append(opts.InsecureRegistries, proxyHost)
	c := registry.New(opts)
	if _, err := c.Push(ctx, harness.BusyboxImage(t), mustTag(t, reg.Host+"/team/base:latest")); err != nil {
		t.Fatal(err)
	}
	local, err := harness.BusyboxImage(t).Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := local[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	want, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}

	for _, host := range []string{reg.Host, proxyHost} {
		img, err := c.Pull(ctx, host+"/team/base:latest", amd64)
		if err != nil {
			t.Fatal(err)
		}
		layers, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		blob, err := c.LayerBlob(ctx, layers[0])
		if err != nil || blob == nil {
			t.Fatalf("LayerBlob = %v, %v", blob, err)
		}
		if blob.Size() != int64(len(want)) {
			t.Errorf("size %d, want %d", blob.Size(), len(want))
		}
		got := make([]byte, 100)
		_, err = blob.ReadAt(got, 1000)
		if host == proxyHost {
			if !errors.Is(err, registry.ErrRangeIgnored) {
				t.Errorf("through a proxy that drops Range: %v, want ErrRangeIgnored", err)
			}
			continue
		}
		if err != nil || !bytes.Equal(got, want[1000:1100]) {
			t.Errorf("ReadAt(100 bytes at 1000) = %v; the bytes match: %v", err, bytes.Equal(got, want[1000:1100]))
		}
		if _, err := blob.ReadAt(got, blob.Size()-10); err == nil {
			t.Error("a read past the blob's end succeeded")
		}
	}

	if blob, err := c.LayerBlob(ctx, local[0]); blob != nil || err != nil {
		t.Errorf("LayerBlob of a layer not pulled from a registry = %v, %v; want nil, nil", blob, err)
	}
}
