package harness

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// DebianSuite is the release Debian() bootstraps.
const DebianSuite = "bookworm"

// debianImages are the Debian base images built, by architecture.
var debianImages archImages

// Debian pushes a Debian bookworm minbase image to reg and returns its
// reference ("127.0.0.1:PORT/slipway-test/debian:bookworm").
func Debian(t testing.TB, reg *Registry) string {
	t.Helper()
	return pushOnce(t, reg, "slipway-test/debian:"+DebianSuite, func(ref name.Reference) error {
		_, err := reg.Client().Push(context.Background(), DebianImage(t), ref)
		return err
	})
}

// DebianImage is a linux/amd64 image of `debootstrap --variant=minbase`
// from the machine's own apt mirror, as one layer. The root filesystem
// tarball is made once per machine and kept under CacheDir; a file lock
// makes parallel test binaries wait for one another instead of racing.
func DebianImage(t testing.TB) v1.Image {
	t.Helper()
	return DebianImageFor(t, "amd64")
}

// DebianFor pushes DebianImageFor(arch) to reg and returns its reference
// ("127.0.0.1:PORT/slipway-test/debian-ARCH:bookworm").
func DebianFor(t testing.TB, reg *Registry, arch string) string {
	t.Helper()
	return pushOnce(t, reg, "slipway-test/debian-"+arch+":"+DebianSuite, func(ref name.Reference) error {
		_, err := reg.Client().Push(context.Background(), DebianImageFor(t, arch), ref)
		return err
	})
}

// DebianImageFor is DebianImage for the Go architecture arch. For another
// architecture than the machine's, debootstrap --foreign unpacks the
// packages and its second stage runs inside the new root under the
// machine's QEMU binfmt_misc handler (qemu-user-static; .ci/deps registers
// it), which configures them as they would be on that machine.
func DebianImageFor(t testing.TB, arch string) v1.Image {
	t.Helper()
	SkipIfShort(t, "debootstrap and the apt mirror")
	img, err := debianImages.get(arch, func(arch string) (v1.Image, error) {
		path, err := debianTarball(DebianSuite, arch)
		if err != nil {
			return nil, err
		}
		return imageFromTarball(path, arch)
	})
	if err != nil {
		t.Fatalf("building the linux/%s Debian base image: %v", arch, err)
	}
	return img
}

// CacheDir is where slow test fixtures are kept between runs:
// $SLIPWAY_TEST_CACHE, or ~/.cache/slipway-test.
func CacheDir() (string, error) {
	dir := os.Getenv("SLIPWAY_TEST_CACHE")
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("no cache directory: set SLIPWAY_TEST_CACHE: %w", err)
		}
		dir = filepath.Join(base, "slipway-test")
	}
	return dir, os.MkdirAll(dir, 0o755)
}

// DebianTarball returns the path of a gzipped tarball of a minbase root
// filesystem for suite, bootstrapping it first when it is not cached.
func DebianTarball(suite string) (string, error) {
	return debianTarball(suite, runtime.GOARCH)
}

// debianTarball is DebianTarball for the Go architecture goarch.
func debianTarball(suite, goarch string) (string, error) {
	mirror, err := AptMirror("/", suite)
	if err != nil {
		return "", err
	}
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	foreign := goarch != runtime.GOARCH
	sum := sha256.Sum256([]byte(suite + "\n" + mirror))
	name := fmt.Sprintf("debian-%s-minbase-%s", suite, hex.EncodeToString(sum[:6]))
	if foreign {
		name = fmt.Sprintf("debian-%s-%s-minbase-%s", suite, debianArch(goarch), hex.EncodeToString(sum[:6]))
	}
	base := filepath.Join(cache, name)
	tarPath := base + ".tar.gz"

	unlock, err := lockFile(base + ".lock")
	if err != nil {
		return "", err
	}
	defer unlock()

	if _, err := os.Stat(tarPath); err == nil {
		return tarPath, nil
	}
	if os.Geteuid() != 0 {
		return "", fmt.Errorf("debootstrap needs root: run the tests as root")
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		return "", fmt.Errorf("debootstrap is missing: apt-get install debootstrap")
	}
	work, err := os.MkdirTemp(cache, "debootstrap-")
	if err != nil {
		return "", err
	}
	defer removeRoot(work)
	root := filepath.Join(work, "root")
	logPath := filepath.Join(work, "debootstrap.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return "", err
	}
	args := []string{"--variant=minbase", suite, root, mirror}
	if foreign {
		args = append([]string{"--arch=" + debianArch(goarch), "--foreign"}, args...)
	}
	cmd := exec.Command("debootstrap", args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	err = cmd.Run()
	if err == nil && foreign {
		// The second stage runs the new root's own binaries: through the
		// binfmt_misc handler, whose F flag makes QEMU reachable inside
		// the chroot. A mount namespace of its own keeps the /proc and
		// /sys it mounts off the machine's mount table.
		fmt.Fprintf(logFile, "\n# second stage under QEMU\n")
		cmd = exec.Command("unshare", "--mount", "--propagation", "private",
			"chroot", root, "/debootstrap/debootstrap", "--second-stage")
		cmd.Stdout, cmd.Stderr = logFile, logFile
		if err = cmd.Run(); err != nil {
			err = fmt.Errorf("the second stage under QEMU (needs the binfmt_misc handler for %s: apt-get install qemu-user-static binfmt-support): %w", goarch, err)
		}
	}
	logFile.Close()
	if err != nil {
		return "", fmt.Errorf("debootstrap %s from %s: %w\n%s", strings.Join(args, " "), mirror, err, tail(logPath, 30))
	}
	tmp := filepath.Join(work, "rootfs.tar.gz")
	if err := tarRoot(root, tmp); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, tarPath); err != nil {
		return "", err
	}
	return tarPath, nil
}

// lockFile takes an exclusive lock on path, created when missing, so that
// parallel test binaries making the same cached fixture wait for one
// another instead of racing.
func lockFile(path string) (unlock func(), err error) {
	lock, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		lock.Close()
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return func() {
		_ = syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
		lock.Close()
	}, nil
}

// tarRoot writes root as a gzipped tarball with GNU tar, which keeps
// hardlinks, device nodes, numeric owners and xattrs. The contents of the
// virtual filesystems are left out, as in Docker's own Debian images.
func tarRoot(root, out string) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	zw := gzip.NewWriter(f)
	cmd := exec.Command("tar", "--numeric-owner", "--xattrs", "--xattrs-include=*",
		"--exclude=./dev/*", "--exclude=./proc/*", "--exclude=./sys/*", "--exclude=./var/cache/apt/archives/*.deb",
		"-C", root, "-cf", "-", ".")
	cmd.Stdout = zw
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("tar of %s: %w: %s", root, err, stderr.String())
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return f.Close()
}

// removeRoot deletes a debootstrap work dir, first detaching anything a
// failed debootstrap left mounted in it (proc, sysfs, devpts), so that the
// removal can never reach into a mounted filesystem.
func removeRoot(dir string) {
	for _, m := range mountsUnder(dir) {
		_ = syscall.Unmount(m, syscall.MNT_DETACH)
	}
	if len(mountsUnder(dir)) > 0 {
		fmt.Fprintf(os.Stderr, "harness: leaving %s in place: it still has mounts\n", dir)
		return
	}
	_ = os.RemoveAll(dir)
}

// mountsUnder lists mount points below dir, deepest first.
func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			out = append(out, fields[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(out)))
	return out
}

func tail(path string, lines int) string {
	data, _ := os.ReadFile(path)
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

func imageFromTarball(path, arch string) (v1.Image, error) {
	createdBy := "debootstrap --variant=minbase " + DebianSuite
	if arch != runtime.GOARCH {
		createdBy = "debootstrap --variant=minbase --arch=" + debianArch(arch) + " --foreign " + DebianSuite + " (second stage under QEMU)"
	}
	layer, err := tarball.LayerFromFile(path, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:   layer,
		History: v1.History{CreatedBy: createdBy, Created: v1.Time{Time: epoch}},
	})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Created = v1.Time{Time: epoch}
	cf.Config.Env = []string{"PATH=" + busyboxPath}
	cf.Config.Cmd = []string{"bash"}
	return mutate.ConfigFile(img, cf)
}

// AptMirror returns the Debian archive URI that the apt configuration under
// root uses for suite: the first "deb" entry, in one-line .list or deb822
// .sources form, whose suites include suite itself (so security and
// third-party repositories are passed over).
func AptMirror(root, suite string) (string, error) {
	files := []string{filepath.Join(root, "etc/apt/sources.list")}
	for _, pattern := range []string{"*.list", "*.sources"} {
		m, _ := filepath.Glob(filepath.Join(root, "etc/apt/sources.list.d", pattern))
		sort.Strings(m)
		files = append(files, m...)
	}
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		var uri string
		if strings.HasSuffix(path, ".sources") {
			uri = deb822Mirror(string(data), suite)
		} else {
			uri = oneLineMirror(string(data), suite)
		}
		if uri != "" {
			return strings.TrimRight(uri, "/"), nil
		}
	}
	return "", fmt.Errorf("no apt source for Debian %s in %s/etc/apt/sources.list or sources.list.d: add one, e.g. a 'deb <mirror> %s main' line", suite, strings.TrimRight(root, "/"), suite)
}

func oneLineMirror(data, suite string) string {
	for _, line := range strings.Split(data, "\n") {
		line, _, _ = strings.Cut(line, "#")
		fields := strings.Fields(line)
		if len(fields) < 3 || fields[0] != "deb" {
			continue
		}
		fields = fields[1:]
		// Options: "[arch=amd64 signed-by=...]", possibly spanning fields.
		if strings.HasPrefix(fields[0], "[") {
			for len(fields) > 0 && !strings.HasSuffix(fields[0], "]") {
				fields = fields[1:]
			}
			if len(fields) == 0 {
				continue
			}
			fields = fields[1:]
		}
		if len(fields) >= 2 && fields[1] == suite {
			return fields[0]
		}
	}
	return ""
}

func deb822Mirror(data, suite string) string {
	for _, stanza := range strings.Split(strings.ReplaceAll(data, "\r\n", "\n"), "\n\n") {
		fields := map[string][]string{}
		for _, line := range strings.Split(stanza, "\n") {
			if strings.HasPrefix(line, "#") {
				continue
			}
			key, value, ok := strings.Cut(line, ":")
			if !ok || strings.HasPrefix(line, " ") {
				continue
			}
			fields[strings.ToLower(strings.TrimSpace(key))] = strings.Fields(value)
		}
		if enabled := fields["enabled"]; len(enabled) > 0 && enabled[0] == "no" {
			continue
		}
		if !contains(fields["types"], "deb") || !contains(fields["suites"], suite) || len(fields["uris"]) == 0 {
			continue
		}
		return fields["uris"][0]
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
