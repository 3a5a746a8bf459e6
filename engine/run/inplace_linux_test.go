package run_test

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-build/slipway/engine/run"
)

// inContainerEnv tells the test binary that it was started by
// TestInPlaceMode inside a throwaway container, the only place where
// in-place mode, which rewrites /, may run.
const inContainerEnv = "SLIPWAY_RUN_TEST_IN_CONTAINER"

// TestInPlaceMode runs TestInPlaceInsideContainer the way a build pod runs
// the executor: under docker run, without --privileged, with default
// capabilities and seccomp, so namespaces and mounts are refused.
func TestInPlaceMode(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: needs dockerd and busybox-static")
	}
	docker, err := exec.LookPath("docker")
	if err != nil {
		t.Skip("in-place mode is only ever run inside a container and docker is not installed (apt-get install docker.io)")
	}
	if out, err := exec.Command(docker, "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		t.Skipf("in-place mode is only ever run inside a container and dockerd is not reachable: %v: %s", err, out)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if f, err := elf.Open(self); err != nil {
		t.Fatal(err)
	} else {
		dynamic := f.Section(".interp") != nil
		f.Close()
		if dynamic {
			t.Fatal("the test binary is dynamically linked and cannot run in a busybox image; build it with CGO_ENABLED=0")
		}
	}
	image := importBusybox(t, docker)

	for _, tc := range []struct {
		name   string
		expect string // what TestInPlaceInsideContainer checks for
		args   []string
	}{
		// A default pod: no CAP_SYS_ADMIN, so RUN mounts are emulated.
		{"default pod", "emulated", nil},
		// A pod given CAP_SYS_ADMIN: real mounts in a private namespace.
		{"with CAP_SYS_ADMIN", "mounted", []string{"--cap-add", "SYS_ADMIN"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			args := []string{"run", "--rm", "--network", "none",
				"-v", self + ":/run.test:ro",
				// Another file system, as a Tekton workspace for a cache is.
				"--tmpfs", "/otherfs",
				"-e", inContainerEnv + "=" + tc.expect}
			args = append(args, tc.args...)
			args = append(args, image, "/run.test", "-test.run", "^TestInPlaceInsideContainer$", "-test.v", "-test.count=1")
			out, err := exec.CommandContext(ctx, docker, args...).CombinedOutput()
			t.Logf("inside the container:\n%s", out)
			if err != nil {
				t.Fatalf("docker run: %v", err)
			}
			if !strings.Contains(string(out), "--- PASS: TestInPlaceInsideContainer") {
				t.Fatal("the in-container test did not pass")
			}
		})
	}
}

// importBusybox makes a busybox image with docker import, so no registry
// is needed, and removes it when the test ends.
func importBusybox(t *testing.T, docker string) string {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatalf("busybox-static is needed (apt-get install busybox-static): %v", err)
	}
	// The host's tar, since archive/tar would link os/user, and cgo would
	// make this binary unable to run in the busybox image.
	root := t.TempDir()
	for _, d := range []string{"bin", "tmp"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(root, "tmp"), 0o1777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", bb, filepath.Join(root, "bin", "busybox")).CombinedOutput(); err != nil {
		t.Fatalf("cp busybox: %v: %s", err, out)
	}
	list, err := exec.Command(bb, "--list").Output()
	if err != nil {
		t.Fatalf("busybox --list: %v", err)
	}
	for _, applet := range strings.Fields(string(list)) {
		if applet == "busybox" {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(root, "bin", applet)); err != nil {
			t.Fatal(err)
		}
	}
	tarball, err := exec.Command("tar", "--numeric-owner", "-C", root, "-cf", "-", ".").Output()
	if err != nil {
		t.Fatalf("tar: %v", err)
	}
	image := "slipway-run-test-busybox:" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	cmd := exec.Command(docker, "import", "-", image)
	cmd.Stdin = bytes.NewReader(tarball)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker import: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command(docker, "rmi", image).CombinedOutput(); err != nil {
			t.Logf("docker rmi %s: %v: %s", image, err, out)
		}
	})
	return image
}

// TestInPlaceInsideContainer is the in-container half of TestInPlaceMode.
// The environment variable says whether the container may mount
// ("mounted") or not ("emulated").
func TestInPlaceInsideContainer(t *testing.T) {
	expect := os.Getenv(inContainerEnv)
	if expect == "" {
		t.Skip("runs only inside the container that TestInPlaceMode starts: in-place mode rewrites /")
	}
	if _, err := os.Stat("/.dockerenv"); err != nil {
		t.Fatalf("refusing to run in-place mode outside a docker container: %v", err)
	}
	mounted := expect == "mounted"
	var logs bytes.Buffer
	e := newExecutor(t, run.InPlace, run.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	mountTable := readFile(t, "/proc/self/mountinfo")

	t.Run("runs in the container's root", func(t *testing.T) {
		out := mustRun(t, e, run.Spec{Dir: "/work/dir", Env: []string{"X=y"}}, `echo "$X $(pwd)" >/inplace-marker; test -x /run.test && echo sees-test-binary`)
		if out != "sees-test-binary\n" {
			t.Errorf("output %q", out)
		}
		if got := readFile(t, "/inplace-marker"); got != "y /work/dir\n" {
			t.Errorf("/inplace-marker holds %q", got)
		}
	})

	t.Run("user and exit code", func(t *testing.T) {
		out, err := sh(t, e, run.Spec{UID: 1000, GID: 1000, Groups: []uint32{5}}, `id -u; id -G; exit 7`)
		var xe *run.ExitError
		if !errors.As(err, &xe) || xe.Code != 7 {
			t.Errorf("err = %v, want exit code 7", err)
		}
		if out != "1000\n1000 5\n" {
			t.Errorf("id printed %q", out)
		}
	})

	t.Run("secret is removed afterwards", func(t *testing.T) {
		src := filepath.Join(t.TempDir(), "token")
		writeFile(t, src, "s3cret")
		out := mustRun(t, e, run.Spec{UID: 1000, GID: 1000, Mounts: []run.Mount{{Type: run.MountSecret, Source: src, Target: "/run/secrets/token", UID: 1000}}},
			`cat /run/secrets/token; echo; stat -c '%a %u' /run/secrets/token; grep -c ' /run/secrets/token ' /proc/self/mountinfo || true`)
		want := "s3cret\n400 1000\n0\n"
		if mounted {
			want = "s3cret\n400 1000\n1\n"
		}
		if out != want {
			t.Errorf("output %q, want %q", out, want)
		}
		for _, p := range []string{"/run/secrets/token", "/run/secrets", "/run"} {
			if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s left behind (err %v)", p, err)
			}
		}
		if emulated := strings.Contains(logs.String(), "emulated by copying"); emulated == mounted {
			t.Errorf("expected %s mounts; log:\n%s", expect, logs.String())
		}
	})

	t.Run("bind hides and restores the image's file", func(t *testing.T) {
		if err := os.MkdirAll("/etc/app", 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, "/etc/app/conf", "from image\n")
		src := filepath.Join(t.TempDir(), "conf")
		writeFile(t, src, "from context\n")
		old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
		if err := os.Chtimes("/etc/app", old, old); err != nil {
			t.Fatal(err)
		}
		out, err := sh(t, e, run.Spec{Mounts: []run.Mount{{Type: run.MountBind, Source: src, Target: "/etc/app/conf", ReadOnly: mounted}}},
			`cat /etc/app/conf; echo scribble >/etc/app/conf`)
		if mounted {
			// Read-only is enforced only where the mount is real.
			var xe *run.ExitError
			if !errors.As(err, &xe) {
				t.Errorf("writing to a read-only bind: err = %v, want a failing command", err)
			}
		} else if err != nil {
			t.Fatal(err)
		}
		if out != "from context\n" {
			t.Errorf("output %q", out)
		}
		if got := readFile(t, "/etc/app/conf"); got != "from image\n" {
			t.Errorf("/etc/app/conf is %q after the run, want the image's", got)
		}
		if got := readFile(t, src); got != "from context\n" {
			t.Errorf("a bind mount's writes reached its source: %q", got)
		}
		if entries, _ := os.ReadDir("/etc/app"); len(entries) != 1 {
			t.Errorf("/etc/app holds %v, want only conf", entries)
		}
		if fi, err := os.Stat("/etc/app"); err != nil || !fi.ModTime().Equal(old) {
			t.Errorf("/etc/app mtime not restored: %v (err %v)", fi.ModTime(), err)
		}
	})

	for _, fs := range []string{"/tmp", "/otherfs"} {
		t.Run("cache on "+fs+" keeps writes, tmpfs leaves nothing", func(t *testing.T) {
			cache, err := os.MkdirTemp(fs, "cache-")
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(cache, "old"), "1")
			spec := run.Spec{Mounts: []run.Mount{
				{Type: run.MountCache, Source: cache, Target: "/var/cache/pkg"},
				{Type: run.MountTmpfs, Target: "/scratch"},
			}}
			mustRun(t, e, spec, `cat /var/cache/pkg/old >/dev/null && echo 2 >/var/cache/pkg/new && echo junk >/scratch/f`)
			if got := readFile(t, filepath.Join(cache, "new")); got != "2\n" {
				t.Errorf("cache lost the write: %q", got)
			}
			if got := readFile(t, filepath.Join(cache, "old")); got != "1" {
				t.Errorf("cache lost its old content: %q", got)
			}
			for _, p := range []string{"/var/cache/pkg", "/var", "/scratch"} {
				if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s left behind (err %v)", p, err)
				}
			}
		})
	}

	t.Run("network none", func(t *testing.T) {
		out, err := sh(t, e, run.Spec{Network: run.NetworkNone}, `tail -n +3 /proc/net/dev | cut -d: -f1 | xargs`)
		if !mounted {
			if err == nil || !strings.Contains(err.Error(), "--network=none") {
				t.Errorf("err = %v, want a refusal naming --network=none", err)
			}
			return
		}
		if err != nil || out != "lo\n" {
			t.Errorf("interfaces %q (err %v), want only lo", out, err)
		}
		// Docker's default capabilities lack CAP_NET_ADMIN.
		if !strings.Contains(logs.String(), "loopback interface of the new network namespace stays down") {
			t.Errorf("no warning about the loopback interface; log:\n%s", logs.String())
		}
	})

	t.Run("cancel kills the process group", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := e.Run(ctx, run.Spec{Args: []string{"/bin/sh", "-c", "sleep 60 & sleep 60"}, Stdout: io.Discard})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want context.DeadlineExceeded", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("Run returned after %v", d)
		}
		time.Sleep(100 * time.Millisecond) // let the kernel reap them
		entries, _ := os.ReadDir("/proc")
		for _, en := range entries {
			cmdline, err := os.ReadFile(filepath.Join("/proc", en.Name(), "cmdline"))
			if err == nil && string(cmdline) == "sleep\x0060\x00" {
				t.Errorf("process %s (sleep 60) survived cancellation", en.Name())
			}
		}
	})

	t.Run("disk syncs", func(t *testing.T) {
		// Without CAP_SYS_ADMIN the filter needs no_new_privs, which
		// would disarm sudo and su for other users: only root gets it.
		otherUser := syncsReal + " no_new_privs=0"
		rootNoNewPrivs := "1"
		if mounted {
			otherUser = syncsSkipped + " no_new_privs=0"
			rootNoNewPrivs = "0"
		}
		for _, tc := range []struct {
			name string
			e    run.Executor
			uid  uint32
			want string
		}{
			{"root", e, 0, syncsSkipped + " no_new_privs=" + rootNoNewPrivs},
			{"another user", e, 1000, otherUser},
			{"WithDiskSync", newExecutor(t, run.InPlace, run.WithDiskSync()), 0, syncsReal + " no_new_privs=0"},
		} {
			if got := probeSyncs(t, tc.e, run.Spec{UID: tc.uid, GID: tc.uid}); got != tc.want {
				t.Errorf("%s: probe printed\n  %s\nwant\n  %s", tc.name, got, tc.want)
			}
		}
		checkBuilderKeepsSyncs(t)
	})

	t.Run("chroot mode falls back when namespaces are refused", func(t *testing.T) {
		var chrootLogs bytes.Buffer
		ce := newExecutor(t, run.Chroot, run.WithLogger(slog.New(slog.NewTextHandler(&chrootLogs, nil))))
		root := busyboxRoot(t)
		out := mustRun(t, ce, run.Spec{Root: root, UID: 1000, GID: 1000}, `id -u; test -e /run.test || echo confined`)
		if out != "1000\nconfined\n" {
			t.Errorf("output %q", out)
		}
		fellBack := strings.Contains(chrootLogs.String(), "falling back to a plain chroot")
		if !mounted && (!fellBack || !strings.Contains(chrootLogs.String(), "operation not permitted")) {
			t.Errorf("no fallback warning naming the refusal; log:\n%s", chrootLogs.String())
		}
		// With CAP_SYS_ADMIN, docker's masked /proc may still make the
		// kernel refuse a new procfs; either way the command ran confined.
		t.Logf("fell back: %v", fellBack)
	})

	if after := readFile(t, "/proc/self/mountinfo"); after != mountTable {
		t.Errorf("the container's mount table changed:\nbefore:\n%s\nafter:\n%s", mountTable, after)
	}
}
