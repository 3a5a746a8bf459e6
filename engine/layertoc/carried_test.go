package layertoc

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/slipway-build/slipway/e2e/harness"
	"github.com/slipway-build/slipway/engine/registry"
)

// pushEStargz pushes the busybox base as eStargz to reg and returns its
// one layer, pulled back through client from host (reg's, or a proxy's).
func pushEStargz(t *testing.T, reg *harness.Registry, client *registry.Client, host string) v1.Layer {
	t.Helper()
	ctx := context.Background()
	ref, err := name.ParseReference(reg.Host + "/team/stargz:latest")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Client().Push(ctx, harness.EStargz(t, harness.BusyboxImage(t)), ref); err != nil {
		t.Fatal(err)
	}
	img, err := client.Pull(ctx, host+"/team/stargz:latest", v1.Platform{})
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers %v, %v", layers, err)
	}
	return layers[0]
}

func TestIndexReadsTheTableAnEStargzLayerCarries(t *testing.T) {
	store, reg, _ := startStore(t)
	ctx := context.Background()
	layer := pushEStargz(t, reg, reg.Client(), reg.Host)
	digest, err := layer.Digest()
	if err != nil {
		t.Fatal(err)
	}
	diffID, err := layer.DiffID()
	if err != nil {
		t.Fatal(err)
	}
	before := len(reg.BlobReads(t))
	var log bytes.Buffer
	idx := NewIndex(store, logTo(&log), CarriedTOCs(reg.Client()))
	toc := idx.Lookup(ctx, layer)
	if toc == nil {
		t.Fatalf("no table read from the eStargz layer:\n%s", log.String())
	}
	if passwd, ok := toc.Inline("/etc/passwd"); !ok || !bytes.Contains(passwd, []byte("app:x:1000:1000")) {
		t.Errorf("/etc/passwd inlined as %q, %v", passwd, ok)
	}
	if _, ok := toc.Inline("/etc/group"); !ok {
		t.Error("/etc/group is not inlined")
	}
	idx.Wait()
	reads := reg.BlobReads(t)[before:]
	if len(reads) == 0 {
		t.Fatal("the registry's log shows no read of the layer")
	}
	for _, r := range reads {
		if r != digest.String()+" 206" {
			t.Errorf("a read other than a range of the layer: %s (all: %v)", r, reads)
		}
	}
	if got, err := store.Get(ctx, diffID); err != nil || got == nil || len(got.Entries) != len(toc.Entries) {
		t.Errorf("the table is not stored for the next build: %v, %v", got, err)
	}
	if strings.Contains(log.String(), "level=WARN") {
		t.Errorf("warnings:\n%s", log.String())
	}
}

// A registry, or a proxy before it, that ignores Range answers with the
// whole blob: the Index gives no table, warns, and the caller reads the
// layer.
func TestIndexWarnsWhenTheRegistryIgnoresRange(t *testing.T) {
	store, reg, _ := startStore(t)
	proxyHost := reg.IgnoringRange(t)
	opts := reg.ClientOptions()
	opts.InsecureRegistries = append(opts.InsecureRegistries, proxyHost)
	client := registry.New(opts)
	layer := pushEStargz(t, reg, client, proxyHost)

	var log bytes.Buffer
	idx := NewIndex(store, logTo(&log), CarriedTOCs(client))
	if toc := idx.Lookup(context.Background(), layer); toc != nil {
		t.Fatal("a table from a registry that ignores Range")
	}
	if !strings.Contains(log.String(), "level=WARN") || !strings.Contains(log.String(), "ignored the Range header") ||
		!strings.Contains(log.String(), proxyHost+"/team/stargz") {
		t.Errorf("no warning naming the layer's registry and the ignored Range:\n%s", log.String())
	}
}

// Ranged reads authenticate as pulls do: against a registry with TLS from
// its own CA and htpasswd credentials, the table is read by range.
func TestCarriedTablesAreReadFromARegistryWithAuthAndTLS(t *testing.T) {
	harness.SkipIfShort(t, "the distribution registry")
	reg := harness.StartRegistry(t, harness.WithHtpasswd("builder", "s3cret"), harness.WithTLS())
	layer := pushEStargz(t, reg, reg.Client(), reg.Host)
	var log bytes.Buffer
	idx := NewIndex(nil, logTo(&log), CarriedTOCs(reg.Client()))
	toc := idx.Lookup(context.Background(), layer)
	if toc == nil {
		t.Fatalf("no table read:\n%s", log.String())
	}
	if _, ok := toc.Inline("/etc/passwd"); !ok {
		t.Error("/etc/passwd is not inlined")
	}
	digest, err := layer.Digest()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reg.BlobReads(t) {
		if r != digest.String()+" 206" && strings.HasPrefix(r, digest.String()) {
			t.Errorf("a read other than a range of the layer: %s", r)
		}
	}
}
