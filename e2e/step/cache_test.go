package step

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipway-build/slipway/e2e/harness"
)

const cachedApp = `ARG BASE
FROM ${BASE}
COPY deps.txt /tmp/deps.txt
RUN cp /tmp/deps.txt /installed
WORKDIR /app
COPY src/ /app/src/
CMD ["/bin/sh", "/app/src/main.sh"]
`

// Issue 4's promise for the registry traffic of cached rebuilds, each a
// fresh process with only the registry and --cache-dir: with nothing
// changed no layer is uploaded (manifests and configs only), and with only
// the app code changed, only the app code's layer is. Neither rebuild
// unpacks the base image.
func TestCachedRebuildsUploadOnlyWhatChanged(t *testing.T) {
	reg := harness.StartRegistry(t)
	base := harness.Busybox(t, reg)
	ctxDir := writeContext(t, map[string]string{"Dockerfile": cachedApp, "deps.txt": "a\n", "src/main.sh": "echo v1\n"})
	cacheDir := t.TempDir()
	build := func(tag string) (layers []string, log string) {
		t.Helper()
		return cachedBuild(t, reg, ctxDir, base, tag, cacheDir)
	}
	uploadedLayers := func(before []string, layers []string) []string {
		var out []string
		for _, d := range reg.UploadedBlobs(t)[len(before):] {
			if slices.Contains(layers, d) && !slices.Contains(out, d) {
				out = append(out, d)
			}
		}
		return out
	}

	build("cold")
	before := reg.UploadedBlobs(t)
	layers, log := build("unchanged")
	if up := uploadedLayers(before, layers); len(up) > 0 {
		t.Errorf("a rebuild with nothing changed uploaded layers %v", up)
	}
	if strings.Contains(log, "Unpacking rootfs") {
		t.Errorf("a rebuild with nothing changed unpacked the base image:\n%s", log)
	}

	harness.WriteFile(t, filepath.Join(ctxDir, "src", "main.sh"), "echo v2\n")
	before = reg.UploadedBlobs(t)
	layers, log = build("app-changed")
	if up := uploadedLayers(before, layers); len(up) != 1 || up[0] != layers[len(layers)-1] {
		t.Errorf("a rebuild with only the app code changed uploaded layers %v, want only the last, %s", up, layers[len(layers)-1])
	}
	if strings.Contains(log, "Unpacking rootfs") || !strings.Contains(log, "Using caching version of cmd") {
		t.Errorf("a rebuild with only the app code changed should take the RUN from the cache and unpack nothing:\n%s", log)
	}
}

const statelessApp = `ARG BASE
FROM ${BASE}
RUN mkdir -p /opt/deps && echo installed > /opt/deps/list
WORKDIR /app
COPY --chown=app:app src/ /app/src/
CMD ["/bin/sh", "/app/src/main.sh"]
`

// Issue 17's promise for a stateless rebuild (a fresh pod: nothing in
// --cache-dir, the registry cache only) where only the app code changed:
// the COPY's sparse root reads the layers' tables of contents from the
// cache repository, so not one blob of the base image, nor of the cached
// RUN layer, is downloaded. --chown=app:app needs the image's /etc/passwd
// and /etc/group, which the tables carry.
func TestStatelessRebuildFetchesNoBaseLayer(t *testing.T) {
	reg := harness.StartRegistry(t)
	base := harness.Busybox(t, reg)
	ctxDir := writeContext(t, map[string]string{"Dockerfile": statelessApp, "src/main.sh": "echo v1\n"})
	build := func(tag string) (layers []string, log string, took time.Duration) {
		t.Helper()
		start := time.Now()
		// A fresh --cache-dir each time: nothing kept but the registry.
		layers, log = cachedBuild(t, reg, ctxDir, base, tag, t.TempDir())
		return layers, log, time.Since(start)
	}

	cold, _, coldTook := build("cold")
	harness.WriteFile(t, filepath.Join(ctxDir, "src", "main.sh"), "echo v2\n")
	before := len(reg.FetchedBlobs(t))
	layers, log, took := build("app-changed")
	t.Logf("cold build %s; stateless app-only rebuild %s", coldTook.Round(time.Millisecond), took.Round(time.Millisecond))
	if len(layers) != len(cold) || layers[len(layers)-1] == cold[len(cold)-1] {
		t.Fatalf("the rebuild's layers %v do not differ from the cold build's %v in the app layer only", layers, cold)
	}
	var fetched []string
	for _, d := range reg.FetchedBlobs(t)[before:] {
		if slices.Contains(cold[:len(cold)-1], d) {
			fetched = append(fetched, d)
		}
	}
	if len(fetched) > 0 {
		t.Errorf("the stateless rebuild downloaded the layers %v of the base and of the cached RUN:\n%s", fetched, log)
	}
	if strings.Contains(log, "Unpacking rootfs") || !strings.Contains(log, "Using caching version of cmd") {
		t.Errorf("the rebuild should take the RUN from the cache and unpack nothing:\n%s", log)
	}
	if strings.Contains(log, "WARN") {
		t.Errorf("the rebuild warned:\n%s", log)
	}
}

// cachedBuild builds ctxDir FROM base into team/app:tag with the registry
// cache team/cache and cacheDir, and returns the pushed image's layer
// digests and the build's log.
func cachedBuild(t *testing.T, reg *harness.Registry, ctxDir, base, tag, cacheDir string) (layers []string, log string) {
	t.Helper()
	dest := reg.Host + "/team/app:" + tag
	res := slipway(t, nil, "--insecure-registry", reg.Host,
		"--context", "dir://"+ctxDir, "--build-arg", "BASE="+base, "--destination", dest,
		"--cache=true", "--cache-repo", reg.Host+"/team/cache", "--cache-dir", cacheDir)
	if res.code != 0 {
		t.Fatalf("building %s: exit %d:\n%s", tag, res.code, res.stderr)
	}
	ls, err := pushed(t, reg, dest).Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		layers = append(layers, d.String())
	}
	return layers, res.stderr
}

// pushed is the image a build pushed to dest in reg.
func pushed(t *testing.T, reg *harness.Registry, dest string) v1.Image {
	t.Helper()
	ref, err := name.ParseReference(dest)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(reg.Client().Reference(ref, false), reg.Client().RemoteOptions(ref, false)...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// Issue 17's promise for the push at the end of a build: every blob of
// the image went up while the build ran (the base's mounted, a cached
// step's mounted from the cache repository, each written layer uploaded,
// the config beside the last layer), so the push only checks and writes
// the manifest. No blob of the destination is looked at twice, and the
// registry is pinged once per repository and direction, plus once for the
// push permission check (and once more where a writer adds a repository
// to mount from), not once per blob.
func TestPushAfterTheBuildWritesOnlyTheManifest(t *testing.T) {
	reg := harness.StartRegistry(t)
	base := harness.Busybox(t, reg)
	ctxDir := writeContext(t, map[string]string{"Dockerfile": cachedApp, "deps.txt": "a\n", "src/main.sh": "echo v1\n"})
	for i, tag := range []string{"cold", "app-changed"} {
		if i > 0 {
			harness.WriteFile(t, filepath.Join(ctxDir, "src", "main.sh"), "echo v2\n")
		}
		before := len(reg.Requests(t))
		_, log := cachedBuild(t, reg, ctxDir, base, tag, t.TempDir())
		var reqs []harness.Request
		for _, r := range reg.Requests(t)[before:] {
			// Not cachedBuild's own look at the pushed image.
			if strings.HasPrefix(r.UserAgent, "slipway-build") {
				reqs = append(reqs, r)
			}
		}
		manifest := "/v2/team/app/manifests/" + tag
		var push []string
		checked := map[string]int{}
		pings := 0
		for i, r := range reqs {
			if r.Method == "HEAD" && r.Path == manifest {
				for _, r := range reqs[i:] {
					if strings.HasPrefix(r.Path, "/v2/team/app/") {
						push = append(push, r.Method+" "+r.Path)
					}
				}
			}
			if r.Method == "HEAD" && strings.HasPrefix(r.Path, "/v2/team/app/blobs/") {
				checked[r.Path]++
			}
			if r.Method == "GET" && r.Path == "/v2/" {
				pings++
			}
		}
		if want := []string{"HEAD " + manifest, "PUT " + manifest}; !slices.Equal(push, want) {
			t.Errorf("%s: the push made the requests %q to the destination, want only %q:\n%s", tag, push, want, log)
		}
		for blob, n := range checked {
			if n > 1 {
				t.Errorf("%s: %s was checked %d times", tag, blob, n)
			}
		}
		// The permission check; the base's repository and the cache
		// repository (lookups and tables of contents), to pull; the
		// destination and the cache repository, to push; the destination
		// again to mount the base's layers and the cached step's, and the
		// cache repository to mount the layers pushed to the destination.
		if pings > 7 {
			t.Errorf("%s: the build pinged the registry %d times, want at most 7: once per repository and direction, once for the permission check, and once per writer for the repositories it mounts from", tag, pings)
		}
	}
}
