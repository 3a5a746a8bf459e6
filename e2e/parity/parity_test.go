package parity

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/slipway-build/slipway/e2e/harness"
	"github.com/slipway-build/slipway/engine/build"
	"github.com/slipway-build/slipway/engine/run"
)

// parityCase is one build context under testdata, built FROM $BASE.
type parityCase struct {
	name string
	// dir is the context under testdata; "" means name.
	dir string
	// target is the stage to build; "" means the last.
	target string
	// base is "busybox" (default) or "debian".
	base string
	args map[string]string
	// setup adds to the copied context what git cannot hold (special
	// modes, long names, symlinks whose presence matters).
	setup func(t *testing.T, dir string)
	// expect checks Slipway's filesystem (equal to docker's once compared)
	// for what the case exists to show, so that the two builders cannot
	// pass by agreeing on nothing.
	expect map[string]entry
	// varying are paths whose content depends on when the build ran
	// (logs with timestamps); their other fields are still compared.
	varying []string
}

var parityCases = []parityCase{
	// First: the longest case, so that the others run alongside it.
	{name: "debian", base: "debian", varying: debianVarying},
	{name: "metadata", target: "main"},
	{name: "metadata-shellform", dir: "metadata", target: "shellform"},
	{name: "metadata-child", dir: "metadata", target: "child"},
	{name: "argenv", args: map[string]string{"OVERRIDDEN": "from-cli", "STAGE_ARG": "cli-stage"}},
	{name: "copy", setup: copySetup},
	{name: "symlinks", setup: symlinkSetup, expect: map[string]entry{
		"/ctx/linkdir/dangling": {Type: "symlink", Mode: "0777", Link: "does-not-exist"},
		"/from-stage/s/abs":     {Type: "symlink", Mode: "0777", Link: "/s/dir/f"},
	}},
	{name: "whiteouts"},
	{name: "dockerignore"},
	{name: "multistage"},
	{name: "workdir"},
	{name: "user"},
	{name: "special", setup: xattrSetup, expect: map[string]entry{
		"/sp/suid":    {Type: "file", Mode: "4755"},
		"/sp/sgiddir": {Type: "dir", Mode: "2775", GID: 1000},
		"/sp/sticky":  {Type: "dir", Mode: "1777"},
		"/sp/fifo":    {Type: "fifo", Mode: "0644"},
		"/sp/null":    {Type: "char", Mode: "0644", Device: "1,3"},
		"/sp/loop":    {Type: "block", Mode: "0644", Device: "7,200"},
	}},
	{name: "longnames", setup: longNameSetup},
}

// debianVarying hold the time of the build (logs), the inode numbers of
// the files they describe (ldconfig's aux-cache), or the mtimes of the
// package lists they were built from (apt's binary caches), so no two
// builds agree on their content.
var debianVarying = []string{
	"/var/cache/apt/pkgcache.bin",
	"/var/cache/apt/srcpkgcache.bin",
	"/var/log/dpkg.log",
	"/var/log/apt/history.log",
	"/var/log/apt/term.log",
	"/var/log/apt/eipp.log.xz",
	"/var/cache/ldconfig/aux-cache",
}

// copySetup gives the context files modes git does not keep, so that COPY
// is seen to preserve them.
func copySetup(t *testing.T, dir string) {
	for p, mode := range map[string]os.FileMode{
		"file.txt": 0o600, "other.txt": 0o444, "exec.sh": 0o755,
		"dir": 0o750, "dir/sub": 0o711, "dir/a": 0o640,
	} {
		if err := os.Chmod(filepath.Join(dir, p), mode); err != nil {
			t.Fatal(err)
		}
	}
}

func symlinkSetup(t *testing.T, dir string) {
	mkdirAll(t, filepath.Join(dir, "linkdir", "real"))
	writeFile(t, filepath.Join(dir, "linkdir", "real", "f"), "real\n")
	for link, target := range map[string]string{
		"link-to-file":     "file.txt",
		"linkdir/dangling": "does-not-exist",
		"linkdir/abs":      "/etc/passwd",
		"linkdir/rel":      "../file.txt",
		"linkdir/dirlink":  "real",
	} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
}

// xattrSetup gives a context file extended attributes. Slipway's COPY
// carries them into the layer as PAX SCHILY.xattr records; BuildKit and
// docker drop them (knownDiffs).
func xattrSetup(t *testing.T, dir string) {
	p := filepath.Join(dir, "xattr.txt")
	writeFile(t, p, "has xattrs\n")
	// security.capability v2 for cap_net_bind_service+ep, as setcap writes it.
	capNetBind := []byte{0, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	for name, value := range map[string][]byte{"user.slipway": []byte("parity"), "security.capability": capNetBind} {
		if err := unix.Setxattr(p, name, value, 0); err != nil {
			t.Fatalf("setting %s on %s (the test directory's filesystem must support xattrs): %v", name, p, err)
		}
	}
}

// longNameSetup makes names that need PAX headers: a component over 100
// characters and a path over 255.
func longNameSetup(t *testing.T, dir string) {
	d := filepath.Join(dir, "long", strings.Repeat("a", 150), strings.Repeat("b", 120))
	mkdirAll(t, d)
	writeFile(t, filepath.Join(d, strings.Repeat("c", 200)), "long\n")
	writeFile(t, filepath.Join(dir, "long", strings.Repeat("x", 101)), "just over 100\n")
}

func mkdirAll(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestParity(t *testing.T) {
	reg := harness.StartRegistry(t)
	// Each base is pushed and pulled into dockerd by the first case that
	// needs it; the pulled image belongs to this parent test, which ends
	// only after every parallel case has.
	parent := t
	bases := map[string]func(testing.TB, *harness.Registry) string{
		"busybox": harness.Busybox,
		"debian":  harness.Debian,
	}
	for _, c := range parityCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			baseName := c.base
			if baseName == "" {
				baseName = "busybox"
			}
			base := bases[baseName](t, reg)
			if err := dockerPull(parent, base); err != nil {
				t.Fatal(err)
			}
			ctxName := c.dir
			if ctxName == "" {
				ctxName = c.name
			}
			dir := contextDir(t, ctxName, c.setup)
			args := map[string]string{"BASE": base}
			for k, v := range c.args {
				args[k] = v
			}
			ref, docker, slip := buildAll(t, reg, buildSpec{dir: dir, name: c.name, target: c.target, args: args})
			compareImages(t, c.name, ref, slip, c.varying, c.expect)
			compareLegacy(t, c.name, docker, ref, c.varying)
		})
	}
}

// buildSpec is one build, given to both builders.
type buildSpec struct {
	dir, name, target string
	args              map[string]string
	// slipwayArgs override args for Slipway alone: a base image that each
	// builder made for itself has a different reference in each.
	slipwayArgs map[string]string
	// buildkitArgs override args for BuildKit alone.
	buildkitArgs map[string]string
}

// buildAll builds b with BuildKit (the reference), with docker's legacy
// builder (the second opinion) and with Slipway, all at the same time.
func buildAll(t *testing.T, reg *harness.Registry, b buildSpec) (ref, docker, slipway v1.Image) {
	t.Helper()
	var dockerErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		docker, dockerErr = dockerBuild(t, b)
	}()
	ref, slipway, refErr, slipErr := buildWithReference(t, reg, b)
	wg.Wait()
	if refErr != nil {
		t.Errorf("BuildKit build (the reference) failed: %v", refErr)
	}
	if dockerErr != nil {
		t.Errorf("docker build (the second opinion) failed: %v", dockerErr)
	}
	if slipErr != nil {
		t.Errorf("slipway build failed: %v", slipErr)
	}
	if t.Failed() {
		t.FailNow()
	}
	return ref, docker, slipway
}

func slipwayBuild(t *testing.T, reg *harness.Registry, b buildSpec) (v1.Image, error) {
	exec, err := run.New(run.Chroot)
	if err != nil {
		return nil, err
	}
	args := map[string]string{}
	for k, v := range b.args {
		args[k] = v
	}
	for k, v := range b.slipwayArgs {
		args[k] = v
	}
	var out bytes.Buffer
	img, err := build.Build(context.Background(), build.Options{
		Inputs: build.Inputs{ContextDir: b.dir, BuildArgs: args, Target: b.target},
		Collaborators: build.Collaborators{
			WorkDir:  t.TempDir(),
			Images:   reg.Client(),
			Executor: exec,
			Mode:     run.Chroot,
			Output:   &out,
			Log:      slog.New(slog.NewTextHandler(&out, nil)),
		},
	})
	if err != nil {
		t.Logf("slipway's log and RUN output:\n%s", out.String())
		return nil, err
	}
	return img, nil
}

// contextDir copies testdata/name into a fresh directory, so that setup can
// add to it and both builders read the very same files.
func contextDir(t *testing.T, name string, setup func(*testing.T, string)) string {
	t.Helper()
	src := filepath.Join("testdata", name)
	dst := t.TempDir()
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatalf("copying context %s: %v", src, err)
	}
	// CopyFS writes files 0644/0755 under the umask; make the modes those of
	// the checkout so that a context's intent (an executable script) holds.
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink != 0 {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		return os.Chmod(filepath.Join(dst, rel), info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(t, dst)
	}
	return dst
}

// diffImages lists the differences of the flattened filesystems and
// configs of ref and slipway, and returns slipway's filesystem.
func diffImages(ref, slipway v1.Image, varying []string) (diffs []diff, sfs map[string]entry, err error) {
	rfs, err := flatten(ref)
	if err != nil {
		return nil, nil, fmt.Errorf("the reference image: %w", err)
	}
	if sfs, err = flatten(slipway); err != nil {
		return nil, nil, fmt.Errorf("slipway's image: %w", err)
	}
	for _, p := range varying {
		for _, m := range []map[string]entry{rfs, sfs} {
			if e, ok := m[p]; ok {
				e.Digest = "varies"
				m[p] = e
			}
		}
	}
	diffs = compareFS(rfs, sfs)
	rcf, err := ref.ConfigFile()
	if err != nil {
		return nil, nil, err
	}
	scf, err := slipway.ConfigFile()
	if err != nil {
		return nil, nil, err
	}
	return append(diffs, compareConfig(rcf, scf)...), sfs, nil
}

// compareImages compares Slipway's image with BuildKit's (ref), file by
// file and config by config, and checks expect on Slipway's filesystem. It
// returns Slipway's flattened filesystem.
func compareImages(t *testing.T, caseName string, ref, slipway v1.Image, varying []string, expect map[string]entry) map[string]entry {
	t.Helper()
	diffs, sfs, err := diffImages(ref, slipway, varying)
	if err != nil {
		t.Fatal(err)
	}
	// Expectations are reported as a diff whose Ref side is the expected
	// value, so that knownDiffs can name them the same way.
	for _, p := range sortedKeys(expect) {
		got, w := sfs[p], expect[p]
		got.Digest, got.text = "", ""
		if got != w {
			diffs = append(diffs, diff{p, "expected", fmt.Sprintf("%+v (expected)", w), fmt.Sprintf("%+v", got)})
		}
	}
	checkDiffs(t, caseName, diffs)
	if t.Failed() {
		logConfigs(t, ref, slipway)
	}
	return sfs
}

// compareLegacy compares docker's legacy build with BuildKit's: the
// second opinion. Every difference must be one legacyDiffs explains.
func compareLegacy(t *testing.T, caseName string, docker, ref v1.Image, varying []string) {
	t.Helper()
	diffs, _, err := diffImages(docker, ref, varying)
	if err != nil {
		t.Fatal(err)
	}
	checkLegacy(t, caseName, diffs)
}

func logConfigs(t *testing.T, ref, slipway v1.Image) {
	t.Helper()
	if rcf, err := ref.ConfigFile(); err == nil {
		t.Logf("BuildKit config: %+v", rcf.Config)
	}
	if scf, err := slipway.ConfigFile(); err == nil {
		t.Logf("slipway config: %+v", scf.Config)
	}
}
