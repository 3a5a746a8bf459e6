package step

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/sys/unix"

	"github.com/slipway-build/slipway/e2e/harness"
)

// jailBinary is where the jail keeps slipway-build: outside /slipway and
// every other path in-place mode ignores, so that only the wipe's own rule
// (never the running executable) keeps it.
const jailBinary = "/usr/local/bin/slipway-build"

// jail is a throwaway root on this machine: a plain directory with the
// static binary, a fake /etc and a build context, and no mount at all. It
// is not a container, so in-place mode must refuse to run in it.
type jail struct {
	dir     string // the jail's /
	outside string // a sibling tree the jail must never reach
}

func newJail(t *testing.T, dockerfile string) *jail {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("chroot needs root")
	}
	base := t.TempDir()
	j := &jail{dir: filepath.Join(base, "jail"), outside: filepath.Join(base, "outside")}
	harness.WriteFile(t, filepath.Join(j.outside, "canary.txt"), "outside\n")
	for name, content := range map[string]string{
		"etc/passwd":            "root:x:0:0:root:/root:/bin/sh\n",
		"etc/hostname":          "jail\n",
		"etc/jail-marker":       "the machine's /etc\n",
		"root/.profile":         "# a user's file\n",
		"workspace/Dockerfile":  dockerfile,
		"workspace/context.txt": "from the context\n",
	} {
		harness.WriteFile(t, filepath.Join(j.dir, name), content)
	}
	for _, d := range []string{"tmp", "proc", "dev"} {
		if err := os.MkdirAll(filepath.Join(j.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// A RUN's stdin is /dev/null, as a container always has it.
	if err := unix.Mknod(filepath.Join(j.dir, "dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatal(err)
	}
	// Links out of the jail, absolute and relative, that a wipe following
	// symlinks would walk through.
	if err := os.Symlink(j.outside, filepath.Join(j.dir, "escape-abs")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../outside", filepath.Join(j.dir, "escape-rel")); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(binary)
	if err != nil {
		t.Fatal(err)
	}
	harness.WriteFile(t, filepath.Join(j.dir, jailBinary), string(data))
	if err := os.Chmod(filepath.Join(j.dir, jailBinary), 0o755); err != nil {
		t.Fatal(err)
	}
	return j
}

// run starts argv and returns its combined output and exit code.
func (j *jail) run(t *testing.T, env []string, argv ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append([]string{"PATH=/usr/local/bin:/bin:/usr/bin:/sbin:/usr/sbin", "HOME=/root"}, env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), code
}

// listing is every path under dir with its size, so that any write shows.
func listing(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out = append(out, rel+" "+fi.Mode().String()+" "+fi.ModTime().String())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

const jailDockerfile = `ARG BASE
FROM ${BASE}
RUN echo jailed > /built && test ! -e /etc/jail-marker
`

// TestInPlaceRefusesInAChrootJail runs the static binary chrooted into a
// jail, in in-place mode asked for by flag and, as the executor image
// presets it, by SLIPWAY_MODE: it must exit non-zero, say why and what to
// do, and leave every file of the jail as it was.
func TestInPlaceRefusesInAChrootJail(t *testing.T) {
	reg := harness.StartRegistry(t)
	base := harness.Busybox(t, reg)
	for _, tc := range []struct {
		name string
		env  []string
		args []string
	}{
		{"--mode in-place", nil, []string{"--mode", "in-place"}},
		{"SLIPWAY_MODE=in-place", []string{"SLIPWAY_MODE=in-place"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := newJail(t, jailDockerfile)
			before, outside := listing(t, j.dir), listing(t, j.outside)
			args := append([]string{"chroot", j.dir, jailBinary}, tc.args...)
			args = append(args, "--context", "dir:///workspace", "--no-push",
				"--build-arg", "BASE="+base, "--insecure-registry", reg.Host)
			out, code := j.run(t, tc.env, args...)
			if code == 0 {
				t.Fatalf("in-place mode ran in a chroot jail:\n%s", out)
			}
			for _, want := range []string{"refusing in-place mode", "--force", "--mode chroot", "Nothing was written"} {
				if !strings.Contains(out, want) {
					t.Errorf("the refusal does not say %q:\n%s", want, out)
				}
			}
			if got := readFile(t, filepath.Join(j.dir, "etc/jail-marker")); got != "the machine's /etc\n" {
				t.Errorf("the jail's /etc/jail-marker = %q", got)
			}
			if after := listing(t, j.dir); strings.Join(after, "\n") != strings.Join(before, "\n") {
				t.Errorf("the jail changed:\nbefore:\n%s\nafter:\n%s", strings.Join(before, "\n"), strings.Join(after, "\n"))
			}
			if after := listing(t, j.outside); strings.Join(after, "\n") != strings.Join(outside, "\n") {
				t.Errorf("outside the jail changed: %v, want %v", after, outside)
			}
		})
	}
}

// TestInPlaceForceInAChrootJail gives the jail --force: the build runs and
// empties the jail's / (its /etc goes), but keeps the running binary and
// the --ignore-path context, never follows the jail's symlinks out, and
// builds the image. It runs in a mount and PID namespace of its own, where
// a fresh /proc is mounted into the jail (in-place mode reads its mount
// table there); that mount dies with the namespace.
func TestInPlaceForceInAChrootJail(t *testing.T) {
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("needs unshare (util-linux)")
	}
	reg := harness.StartRegistry(t)
	base := harness.Busybox(t, reg)
	j := newJail(t, jailDockerfile)
	outside := listing(t, j.outside)

	out, code := j.run(t, nil, unshare, "--mount", "--propagation", "private", "--pid", "--fork", "--",
		"/bin/sh", "-c", `mount -t proc proc "$0/proc" && exec chroot "$0" "$@"`, j.dir,
		jailBinary, "--mode", "in-place", "--force",
		"--context", "dir:///workspace", "--ignore-path", "/workspace",
		"--no-push", "--tar-path", "/workspace/image.tar",
		"--build-arg", "BASE="+base, "--insecure-registry", reg.Host)
	if code != 0 {
		t.Fatalf("in-place mode with --force exited %d:\n%s", code, out)
	}
	if !strings.Contains(out, "--force") {
		t.Errorf("no warning about --force:\n%s", out)
	}
	if _, err := os.Lstat(filepath.Join(j.dir, "etc/jail-marker")); !os.IsNotExist(err) {
		t.Errorf("the jail's /etc/jail-marker survived the wipe (%v): in-place mode did not run", err)
	}
	for _, kept := range []string{jailBinary, "workspace/Dockerfile", "workspace/context.txt"} {
		if _, err := os.Stat(filepath.Join(j.dir, kept)); err != nil {
			t.Errorf("the wipe removed %s: %v", kept, err)
		}
	}
	for _, gone := range []string{"escape-abs", "escape-rel", "root/.profile"} {
		if _, err := os.Lstat(filepath.Join(j.dir, gone)); !os.IsNotExist(err) {
			t.Errorf("%s survived the wipe: %v", gone, err)
		}
	}
	if after := listing(t, j.outside); strings.Join(after, "\n") != strings.Join(outside, "\n") {
		t.Errorf("outside the jail changed: %v, want %v", after, outside)
	}
	if entries, err := os.ReadDir(filepath.Join(j.dir, "proc")); err != nil || len(entries) != 0 {
		t.Errorf("the jail's /proc after the namespace ended: %d entries, %v; want an empty directory", len(entries), err)
	}
	if mi, err := os.ReadFile("/proc/self/mountinfo"); err == nil && strings.Contains(string(mi), j.dir) {
		t.Errorf("a mount under the jail reached this mount namespace:\n%s", mi)
	}

	img, err := tarball.ImageFromPath(filepath.Join(j.dir, "workspace/image.tar"), nil)
	if err != nil {
		t.Fatal(err)
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	found := false
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch strings.TrimPrefix(h.Name, "/") {
		case "built":
			b, _ := io.ReadAll(tr)
			found = string(b) == "jailed\n"
		case "etc/jail-marker", "workspace/Dockerfile", strings.TrimPrefix(jailBinary, "/"):
			t.Errorf("the image holds the jail's %s", h.Name)
		}
	}
	if !found {
		t.Error("the image lacks /built holding \"jailed\"")
	}
}
