package publish_test

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/slipway-build/slipway/e2e/harness"
	"github.com/slipway-build/slipway/engine/publish"
	"github.com/slipway-build/slipway/engine/registry"
)

// outputs are every local output of a publish, under one directory.
type outputs struct {
	dir                                            string
	tar, layout, digest, nameDigest, nameTagDigest string
	imageURL, images                               string
}

func newOutputs(t *testing.T) outputs {
	dir := t.TempDir()
	return outputs{
		dir:           dir,
		tar:           filepath.Join(dir, "image.tar"),
		layout:        filepath.Join(dir, "layout"),
		digest:        filepath.Join(dir, "results", "digest"),
		nameDigest:    filepath.Join(dir, "results", "image-name-with-digest"),
		nameTagDigest: filepath.Join(dir, "results", "image-name-tag-with-digest"),
		imageURL:      filepath.Join(dir, "results", "IMAGE_URL"),
		images:        filepath.Join(dir, "results", "IMAGES"),
	}
}

func (o outputs) options(dests ...string) publish.Options {
	return publish.Options{
		Destinations:               dests,
		TarPath:                    o.tar,
		OCILayoutPath:              o.layout,
		DigestFile:                 o.digest,
		ImageNameWithDigestFile:    o.nameDigest,
		ImageNameTagWithDigestFile: o.nameTagDigest,
		ImageURLFile:               o.imageURL,
		ImagesFile:                 o.images,
	}
}

// assertNothingWritten checks that a failed publish left no output and no
// temporary file behind.
func (o outputs) assertNothingWritten(t *testing.T) {
	t.Helper()
	var found []string
	_ = filepath.Walk(o.dir, func(path string, info os.FileInfo, err error) error {
		if err == nil && path != o.dir && !(info.IsDir() && path == filepath.Dir(o.digest)) {
			found = append(found, path)
		}
		return nil
	})
	if len(found) > 0 {
		t.Errorf("failed publish left %v", found)
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func isolate(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	t.Setenv("HOME", t.TempDir())
}

func TestPublishEveryOutput(t *testing.T) {
	isolate(t)
	tests := []struct {
		name  string
		opts  []harness.Option
		setup func(t *testing.T, reg *harness.Registry) registry.Options
	}{
		{"plain HTTP", nil, func(t *testing.T, reg *harness.Registry) registry.Options {
			return registry.Options{InsecureRegistries: []string{reg.Host}}
		}},
		{"htpasswd via DOCKER_CONFIG", []harness.Option{harness.WithHtpasswd("ci", "pw")}, func(t *testing.T, reg *harness.Registry) registry.Options {
			t.Setenv("DOCKER_CONFIG", reg.DockerConfigDir(t))
			return registry.Options{InsecureRegistries: []string{reg.Host}}
		}},
		{"TLS with registry certificate", []harness.Option{harness.WithTLS()}, func(t *testing.T, reg *harness.Registry) registry.Options {
			return registry.Options{RegistryCertificates: map[string]string{reg.Host: reg.CAFile}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := harness.StartRegistry(t, tt.opts...)
			c := registry.New(tt.setup(t, reg))
			img := harness.BusyboxImage(t)
			out := newOutputs(t)
			dests := []string{reg.Host + "/team/app:v1", reg.Host + "/other/app"}
			digest, err := publish.Publish(context.Background(), img, c, out.options(dests...))
			if err != nil {
				t.Fatal(err)
			}
			want, _ := img.Digest()
			if digest != want {
				t.Errorf("Publish = %s, want %s", digest, want)
			}

			// Every destination holds the image.
			for _, d := range dests {
				ref, _ := name.ParseReference(d)
				desc, err := remote.Get(c.Reference(ref, false), c.RemoteOptions(ref, false)...)
				if err != nil {
					t.Fatalf("destination %s: %v", d, err)
				}
				if desc.Digest != want {
					t.Errorf("%s digest = %s, want %s", d, desc.Digest, want)
				}
			}

			// kaniko's digest file formats.
			if got := read(t, out.digest); got != want.String() {
				t.Errorf("digest file = %q, want %q", got, want.String())
			}
			// Tekton's results, without newlines.
			if got := read(t, out.imageURL); got != reg.Host+"/team/app:v1" {
				t.Errorf("IMAGE_URL = %q", got)
			}
			if got, wantImages := read(t, out.images), reg.Host+"/team/app@"+want.String()+","+reg.Host+"/other/app@"+want.String(); got != wantImages {
				t.Errorf("IMAGES = %q, want %q", got, wantImages)
			}
			wantName := reg.Host + "/team/app@" + want.String() + "\n" + reg.Host + "/other/app@" + want.String() + "\n"
			if got := read(t, out.nameDigest); got != wantName {
				t.Errorf("image-name-with-digest file = %q, want %q", got, wantName)
			}
			wantTag := reg.Host + "/team/app:v1@" + want.String() + "\n" + reg.Host + "/other/app:latest@" + want.String() + "\n"
			if got := read(t, out.nameTagDigest); got != wantTag {
				t.Errorf("image-name-tag-with-digest file = %q, want %q", got, wantTag)
			}

			// The tarball loads under every destination tag.
			wantConfig, _ := img.ConfigName()
			for _, d := range []string{reg.Host + "/team/app:v1", reg.Host + "/other/app:latest"} {
				tag, _ := name.NewTag(d)
				fromTar, err := tarball.ImageFromPath(out.tar, &tag)
				if err != nil {
					t.Fatalf("loading %s from the tarball: %v", d, err)
				}
				if got, _ := fromTar.ConfigName(); got != wantConfig {
					t.Errorf("tarball %s config = %s, want %s", d, got, wantConfig)
				}
			}

			// The OCI layout's index holds exactly the image.
			idx, err := layout.ImageIndexFromPath(out.layout)
			if err != nil {
				t.Fatal(err)
			}
			m, err := idx.IndexManifest()
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Manifests) != 1 || m.Manifests[0].Digest != want {
				t.Errorf("layout index = %+v, want one manifest %s", m.Manifests, want)
			}
			assertOnlyOutputs(t, out)
		})
	}
}

// assertOnlyOutputs checks that no staging file was left beside an output.
func assertOnlyOutputs(t *testing.T, out outputs) {
	t.Helper()
	for dir, want := range map[string][]string{
		out.dir:                  {"image.tar", "layout", "results"},
		filepath.Dir(out.digest): {"IMAGES", "IMAGE_URL", "digest", "image-name-tag-with-digest", "image-name-with-digest"},
	} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range entries {
			got = append(got, e.Name())
		}
		sort.Strings(got)
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s holds %v, want %v", dir, got, want)
		}
	}
}

func TestPublishRefusedCredentials(t *testing.T) {
	isolate(t)
	reg := harness.StartRegistry(t, harness.WithHtpasswd("ci", "pw"))
	for _, skipCheck := range []bool{false, true} {
		name := "permission check"
		if skipCheck {
			name = "push itself"
		}
		t.Run(name, func(t *testing.T) {
			t.Setenv("DOCKER_CONFIG", harness.DockerConfigDir(t, reg.Host, "ci", "wrong"))
			c := registry.New(registry.Options{InsecureRegistries: []string{reg.Host}})
			out := newOutputs(t)
			opts := out.options(reg.Host + "/team/app:v1")
			opts.SkipPushPermissionCheck = skipCheck
			err := publish.Check(context.Background(), c, opts)
			if skipCheck {
				if err != nil {
					t.Fatalf("Check with SkipPushPermissionCheck asked the registry: %v", err)
				}
				_, err = publish.Publish(context.Background(), harness.BusyboxImage(t), c, opts)
			}
			if err == nil {
				t.Fatal("a wrong password was accepted")
			}
			t.Logf("error: %v", err)
			for _, want := range []string{reg.Host + "/team/app", "UNAUTHORIZED", "check the credentials for " + reg.Host} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			out.assertNothingWritten(t)
			assertNoTag(t, reg, reg.Host+"/team/app:v1")
		})
	}
}

// assertNoTag checks with the right credentials that ref was not pushed.
func assertNoTag(t *testing.T, reg *harness.Registry, ref string) {
	t.Helper()
	r, _ := name.ParseReference(ref)
	c := reg.Client()
	if _, err := remote.Head(c.Reference(r, false), c.RemoteOptions(r, false)...); err == nil {
		t.Errorf("%s exists after a failed publish", ref)
	}
}

func TestPublishSecondDestinationFails(t *testing.T) {
	isolate(t)
	open := harness.StartRegistry(t)
	locked := harness.StartRegistry(t, harness.WithHtpasswd("ci", "pw"))
	c := registry.New(registry.Options{InsecureRegistries: []string{open.Host, locked.Host}})
	out := newOutputs(t)
	opts := out.options(open.Host+"/team/app:v1", locked.Host+"/team/app:v1")
	// Past the early check, so that the first push really happens.
	opts.SkipPushPermissionCheck = true
	_, err := publish.Publish(context.Background(), harness.BusyboxImage(t), c, opts)
	if err == nil || !strings.Contains(err.Error(), locked.Host) {
		t.Fatalf("Publish = %v, want an error naming %s", err, locked.Host)
	}
	out.assertNothingWritten(t)
}

func TestPublishNoPush(t *testing.T) {
	isolate(t)
	img := harness.BusyboxImage(t)
	want, _ := img.Digest()
	out := newOutputs(t)
	opts := out.options()
	opts.NoPush = true
	got, err := publish.Publish(context.Background(), img, registry.New(registry.Options{}), opts)
	if err != nil {
		t.Fatal(err)
	}
	if got != want || read(t, out.digest) != want.String() {
		t.Errorf("digest = %s, file %q; want %s", got, read(t, out.digest), want)
	}
	// Without a destination the tarball gets kaniko's placeholder name.
	tag, _ := name.NewTag("docker.io/unset-repo/unset-image-name:latest")
	if _, err := tarball.ImageFromPath(out.tar, &tag); err != nil {
		t.Errorf("tarball lacks the placeholder tag: %v", err)
	}
	if read(t, out.nameDigest) != "" {
		t.Errorf("image-name-with-digest file = %q, want empty with no destination", read(t, out.nameDigest))
	}
}

func TestPublishBadOptions(t *testing.T) {
	isolate(t)
	img := harness.BusyboxImage(t)
	notLayout := t.TempDir()
	harness.WriteFile(t, filepath.Join(notLayout, "precious.txt"), "keep me")
	tests := []struct {
		name string
		opts publish.Options
		want string
	}{
		{"no destination", publish.Options{}, "no --destination given"},
		{"invalid destination", publish.Options{Destinations: []string{"Bad Name!"}}, `--destination "Bad Name!"`},
		{"layout path is another directory", publish.Options{NoPush: true, OCILayoutPath: notLayout}, "is not an OCI layout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := publish.Publish(context.Background(), img, registry.New(registry.Options{}), tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Publish = %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if read(t, filepath.Join(notLayout, "precious.txt")) != "keep me" {
		t.Error("the existing directory was modified")
	}
}

func TestPublishIntoExistingLayout(t *testing.T) {
	isolate(t)
	out := newOutputs(t)
	c := registry.New(registry.Options{})
	first := harness.BusyboxImage(t)
	if _, err := publish.Publish(context.Background(), first, c, publish.Options{NoPush: true, OCILayoutPath: out.layout}); err != nil {
		t.Fatal(err)
	}
	second, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := publish.Publish(context.Background(), second, c, publish.Options{NoPush: true, OCILayoutPath: out.layout}); err != nil {
		t.Fatal(err)
	}
	idx, err := layout.ImageIndexFromPath(out.layout)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := idx.IndexManifest()
	want, _ := second.Digest()
	if len(m.Manifests) != 1 || m.Manifests[0].Digest != want {
		t.Errorf("layout index = %+v, want only %s, as kaniko writes it", m.Manifests, want)
	}
}

// A result file that cannot be written fails the publish before anything
// is pushed: no tag, and no digest file beside it.
func TestPublishUnwritableResultPushesNothing(t *testing.T) {
	isolate(t)
	reg := harness.StartRegistry(t)
	c := registry.New(registry.Options{InsecureRegistries: []string{reg.Host}})
	out := newOutputs(t)
	dest := reg.Host + "/team/app:v1"
	opts := out.options(dest)
	// The IMAGES result lies under a regular file, where no directory can
	// be made.
	blocker := filepath.Join(out.dir, "not-a-dir")
	harness.WriteFile(t, blocker, "")
	opts.ImagesFile = filepath.Join(blocker, "IMAGES")
	_, err := publish.Publish(context.Background(), harness.BusyboxImage(t), c, opts)
	if err == nil || !strings.Contains(err.Error(), "--images-file") {
		t.Fatalf("Publish = %v, want an error naming --images-file", err)
	}
	ref, _ := name.ParseReference(dest)
	if _, err := remote.Head(c.Reference(ref, false), c.RemoteOptions(ref, false)...); err == nil {
		t.Errorf("%s was pushed although the results could not be written", dest)
	}
	for _, p := range []string{out.digest, out.imageURL, out.tar} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s was written by a failed publish", p)
		}
	}
}

func TestPublishAfterPush(t *testing.T) {
	isolate(t)
	reg := harness.StartRegistry(t)
	c := registry.New(registry.Options{InsecureRegistries: []string{reg.Host}})
	img := harness.BusyboxImage(t)
	want, _ := img.Digest()

	// AfterPush sees every pushed image by digest.
	out := newOutputs(t)
	opts := out.options(reg.Host+"/team/app:v1", reg.Host+"/other/app:v2")
	var got []string
	opts.AfterPush = func(_ context.Context, pushed []name.Digest) error {
		for _, d := range pushed {
			got = append(got, d.String())
		}
		return nil
	}
	if _, err := publish.Publish(context.Background(), img, c, opts); err != nil {
		t.Fatal(err)
	}
	wantRefs := []string{reg.Host + "/team/app@" + want.String(), reg.Host + "/other/app@" + want.String()}
	if strings.Join(got, " ") != strings.Join(wantRefs, " ") {
		t.Errorf("AfterPush got %q, want %q", got, wantRefs)
	}

	// Its failure fails the publish and leaves no digest file.
	out = newOutputs(t)
	opts = out.options(reg.Host + "/team/app:v3")
	opts.AfterPush = func(context.Context, []name.Digest) error { return errors.New("attaching failed") }
	if _, err := publish.Publish(context.Background(), img, c, opts); err == nil || !strings.Contains(err.Error(), "attaching failed") {
		t.Fatalf("Publish = %v, want AfterPush's error", err)
	}
	out.assertNothingWritten(t)
}

// Tekton's results: IMAGES names each repository pushed once, and nothing
// under --no-push; ARTIFACT_OUTPUTS is Chains' object, absent under
// --no-push.
func TestTektonResults(t *testing.T) {
	isolate(t)
	reg := harness.StartRegistry(t)
	c := registry.New(registry.Options{InsecureRegistries: []string{reg.Host}})
	img := harness.BusyboxImage(t)
	want, _ := img.Digest()
	dests := []string{reg.Host + "/team/app:v1", reg.Host + "/team/app:v2", reg.Host + "/other/app", reg.Host + "/team/app:v1"}
	for _, noPush := range []bool{false, true} {
		dir := t.TempDir()
		opts := publish.Options{
			Destinations:        dests,
			NoPush:              noPush,
			ImagesFile:          filepath.Join(dir, "IMAGES"),
			ArtifactOutputsFile: filepath.Join(dir, "ARTIFACT_OUTPUTS"),
		}
		if _, err := publish.Publish(context.Background(), img, c, opts); err != nil {
			t.Fatal(err)
		}
		wantImages := reg.Host + "/team/app@" + want.String() + "," + reg.Host + "/other/app@" + want.String()
		if noPush {
			wantImages = ""
		}
		if got := read(t, opts.ImagesFile); got != wantImages {
			t.Errorf("no-push %v: IMAGES = %q, want %q", noPush, got, wantImages)
		}
		data, err := os.ReadFile(opts.ArtifactOutputsFile)
		if noPush {
			if !os.IsNotExist(err) {
				t.Errorf("ARTIFACT_OUTPUTS written under --no-push: %q (%v)", data, err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]string
		if err := json.Unmarshal(data, &got); err != nil {
			t.Fatalf("ARTIFACT_OUTPUTS %q: %v", data, err)
		}
		if wantObj := map[string]string{"uri": reg.Host + "/team/app:v1", "digest": want.String(), "isBuildArtifact": "true"}; !maps.Equal(got, wantObj) {
			t.Errorf("ARTIFACT_OUTPUTS = %v, want %v", got, wantObj)
		}
	}
}
