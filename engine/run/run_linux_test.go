package run_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/slipway-build/slipway/engine/run"
)

func TestMain(m *testing.M) {
	if os.Getenv(syncProbeEnv) != "" {
		syncProbe()
		return
	}
	run.MaybeReexec()
	os.Exit(m.Run())
}

// busyboxRoot makes a root filesystem holding only busybox-static and its
// applet links, like the scratch-plus-busybox images users build from.
func busyboxRoot(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: chroot tests need root and busybox-static")
	}
	if os.Geteuid() != 0 {
		t.Skip("chroot mode needs root (chroot, mounts, credentials); CI runs as root")
	}
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatalf("busybox-static is needed (apt-get install busybox-static): %v", err)
	}
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "busybox"), data, 0o755); err != nil {
		t.Fatal(err)
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
	return root
}

func newExecutor(t *testing.T, mode run.Mode, opts ...run.Option) run.Executor {
	t.Helper()
	e, err := run.New(mode, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// sh runs script with /bin/sh -c in spec and returns its stdout; stderr
// goes to the test log.
func sh(t *testing.T, e run.Executor, spec run.Spec, script string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	spec.Args = []string{"/bin/sh", "-c", script}
	spec.Stdout = &out
	spec.Stderr = testWriter{t}
	err := e.Run(context.Background(), spec)
	return out.String(), err
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("stderr: %s", bytes.TrimRight(p, "\n"))
	return len(p), nil
}

func mustRun(t *testing.T, e run.Executor, spec run.Spec, script string) string {
	t.Helper()
	out, err := sh(t, e, spec, script)
	if err != nil {
		t.Fatalf("run %q: %v", script, err)
	}
	return out
}

func TestChrootExitCodes(t *testing.T) {
	root := busyboxRoot(t)
	e := newExecutor(t, run.Chroot)
	for _, tc := range []struct {
		script string
		code   int // 0: success
	}{
		{"true", 0},
		{"exit 3", 3},
		{"false", 1},
		// The command is PID 1 of its namespace, which ignores its own
		// kill -9 as docker's does, so a child shell takes the signal.
		{"sh -c 'kill -9 $$'; exit $?", 128 + 9},
	} {
		t.Run(tc.script, func(t *testing.T) {
			_, err := sh(t, e, run.Spec{Root: root}, tc.script)
			if tc.code == 0 {
				if err != nil {
					t.Fatalf("err = %v, want nil", err)
				}
				return
			}
			var xe *run.ExitError
			if !errors.As(err, &xe) || xe.Code != tc.code {
				t.Fatalf("err = %#v, want ExitError{Code: %d}", err, tc.code)
			}
		})
	}
}

func TestChrootCommandNotFound(t *testing.T) {
	root := busyboxRoot(t)
	e := newExecutor(t, run.Chroot)
	err := e.Run(context.Background(), run.Spec{Root: root, Args: []string{"no-such-tool"}})
	var xe *run.ExitError
	if err == nil || errors.As(err, &xe) {
		t.Fatalf("err = %v, want a setup error rather than an exit code", err)
	}
	if !strings.Contains(err.Error(), "no-such-tool") || !strings.Contains(err.Error(), "not found in $PATH") {
		t.Errorf("err = %v, want it to name the command and $PATH", err)
	}
}

func TestChrootEnvAndWorkdir(t *testing.T) {
	root := busyboxRoot(t)
	e := newExecutor(t, run.Chroot)
	out := mustRun(t, e, run.Spec{Root: root, Env: []string{"FOO=bar baz"}, Dir: "/work/sub"},
		`echo "$FOO"; pwd; echo "$PATH"`)
	want := "bar baz\n/work/sub\n/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
	if out != want {
		t.Errorf("output %q, want %q", out, want)
	}
	fi, err := os.Stat(filepath.Join(root, "work/sub"))
	if err != nil {
		t.Fatalf("working directory was not kept in the root: %v", err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Perm() != 0o755 || st.Uid != 0 || st.Gid != 0 {
		t.Errorf("working directory mode %v owner %d:%d, want 0755 root:root as BuildKit makes it", fi.Mode().Perm(), st.Uid, st.Gid)
	}
	// An explicit PATH is the command's own.
	out = mustRun(t, e, run.Spec{Root: root, Env: []string{"PATH=/bin"}}, `echo "$PATH"`)
	if out != "/bin\n" {
		t.Errorf("PATH %q, want /bin", out)
	}
}

func TestChrootCredentials(t *testing.T) {
	root := busyboxRoot(t)
	e := newExecutor(t, run.Chroot)
	for _, tc := range []struct {
		name     string
		uid, gid uint32
		groups   []uint32
		want     string
	}{
		{"root without groups", 0, 0, nil, "0 0 \n"},
		{"user with groups", 1000, 1001, []uint32{10, 20}, "1000 1001 10 20\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := run.Spec{Root: root, UID: tc.uid, GID: tc.gid, Groups: tc.groups}
			out := mustRun(t, e, spec, `echo "$(id -u) $(id -g) $(sed -n 's/^Groups:[[:space:]]*//p' /proc/self/status | xargs)"`)
			if out != tc.want {
				t.Errorf("uid gid groups = %q, want %q", out, tc.want)
			}
		})
	}
}

func TestChrootProcDevSys(t *testing.T) {
	root := busyboxRoot(t)
	e := newExecutor(t, run.Chroot)
	out := mustRun(t, e, run.Spec{Root: root}, strings.Join([]string{
		`echo pid=$$`,
		`echo init=$(tr '\0' ' ' </proc/1/cmdline)`,
		`echo hello >/dev/null && echo devnull=ok`,
		`echo zero=$(head -c 5 /dev/zero | wc -c)`,
		`test -c /dev/urandom && echo urandom=ok`,
		`test -d /dev/pts && test -d /dev/shm && echo ptsshm=ok`,
		`touch /sys/slipway-probe 2>/dev/null || echo sys=ro`,
		`test -d /sys/kernel && echo sys=present`,
	}, "; "))
	for _, want := range []string{"pid=1\n", "init=/bin/sh -c", "devnull=ok\n", "zero=5\n", "urandom=ok\n", "ptsshm=ok\n", "sys=ro\n", "sys=present\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// The root had no /proc, /dev, /sys or /etc: their mount points are gone.
	for _, p := range []string{"proc", "dev", "sys", "etc"} {
		if _, err := os.Lstat(filepath.Join(root, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("mount point /%s left in the root (err %v)", p, err)
		}
	}
}

func TestChrootHostDev(t *testing.T) {
	root := busyboxRoot(t)
	e := newExecutor(t, run.Chroot, run.WithHostDev())
	out := mustRun(t, e, run.Spec{Root: root}, `ls -A /dev | sort | xargs`)
	entries, err := os.ReadDir("/dev")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, en := range entries {
		names = append(names, en.Name())
	}
	slices.Sort(names)
	if want := strings.Join(names, " ") + "\n"; out != want {
		t.Errorf("/dev lists %q, want the host's %q", out, want)
	}
}

func TestChrootResolverFiles(t *testing.T) {
	root := busyboxRoot(t)
	hostDir := t.TempDir()
	resolv := filepath.Join(hostDir, "resolv.conf")
	hosts := filepath.Join(hostDir, "hosts")
	writeFile(t, resolv, "nameserver 127.0.0.53\n")
	writeFile(t, hosts, "127.0.0.1 localhost\n")
	e := newExecutor(t, run.Chroot, run.WithResolvConf(resolv), run.WithHosts(hosts))

	t.Run("missing in the image", func(t *testing.T) {
		out := mustRun(t, e, run.Spec{Root: root}, `cat /etc/resolv.conf /etc/hosts; echo scribble >>/etc/hosts`)
		if out != "nameserver 127.0.0.53\n127.0.0.1 localhost\n" {
			t.Errorf("resolver files read %q", out)
		}
		if got := readFile(t, hosts); got != "127.0.0.1 localhost\n" {
			t.Errorf("the command wrote through to the host's hosts file: %q", got)
		}
		if _, err := os.Lstat(filepath.Join(root, "etc")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("/etc created for the bind was left in the root (err %v)", err)
		}
	})
	t.Run("present in the image", func(t *testing.T) {
		if err := os.Mkdir(filepath.Join(root, "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(root, "etc/resolv.conf"), "image resolver\n")
		old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
		if err := os.Chtimes(filepath.Join(root, "etc"), old, old); err != nil {
			t.Fatal(err)
		}
		out := mustRun(t, e, run.Spec{Root: root}, `cat /etc/resolv.conf`)
		if out != "nameserver 127.0.0.53\n" {
			t.Errorf("resolv.conf read %q, want the host's", out)
		}
		if got := readFile(t, filepath.Join(root, "etc/resolv.conf")); got != "image resolver\n" {
			t.Errorf("image's resolv.conf changed to %q", got)
		}
		if _, err := os.Lstat(filepath.Join(root, "etc/hosts")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("/etc/hosts stub left in the root (err %v)", err)
		}
		if fi, err := os.Stat(filepath.Join(root, "etc")); err != nil || !fi.ModTime().Equal(old) {
			t.Errorf("/etc mtime not restored after removing the stub: %v %v", fi.ModTime(), err)
		}
	})
}

func TestChrootMounts(t *testing.T) {
	root := busyboxRoot(t)
	e := newExecutor(t, run.Chroot)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "a"), "from host\n")
	secret := filepath.Join(t.TempDir(), "token")
	writeFile(t, secret, "s3cret")
	cache := t.TempDir()

	for _, tc := range []struct {
		name   string
		mount  run.Mount
		uid    uint32
		script string
		want   string
		check  func(t *testing.T)
	}{
		{
			name:   "bind read-only",
			mount:  run.Mount{Type: run.MountBind, Source: src, Target: "/mnt/ro", ReadOnly: true},
			script: `cat /mnt/ro/a; touch /mnt/ro/b 2>/dev/null || echo refused`,
			want:   "from host\nrefused\n",
			check: func(t *testing.T) {
				if _, err := os.Lstat(filepath.Join(src, "b")); err == nil {
					t.Error("write went through a read-only bind")
				}
			},
		},
		{
			name:   "bind read-write",
			mount:  run.Mount{Type: run.MountBind, Source: src, Target: "/mnt/rw"},
			script: `echo written >/mnt/rw/c && cat /mnt/rw/a`,
			want:   "from host\n",
			check: func(t *testing.T) {
				if got := readFile(t, filepath.Join(src, "c")); got != "written\n" {
					t.Errorf("host side of the bind has %q", got)
				}
			},
		},
		{
			name:   "bind a single file",
			mount:  run.Mount{Type: run.MountBind, Source: filepath.Join(src, "a"), Target: "/opt/a.txt", ReadOnly: true},
			script: `cat /opt/a.txt`,
			want:   "from host\n",
		},
		{
			name:   "cache persists",
			mount:  run.Mount{Type: run.MountCache, Source: cache, Target: "/var/cache/apt"},
			script: `echo $(( $(cat /var/cache/apt/n 2>/dev/null || echo 0) + 1 )) >/var/cache/apt/n; cat /var/cache/apt/n`,
			want:   "1\n",
			check: func(t *testing.T) {
				if got := readFile(t, filepath.Join(cache, "n")); got != "1\n" {
					t.Errorf("cache holds %q", got)
				}
			},
		},
		{
			name:   "tmpfs",
			mount:  run.Mount{Type: run.MountTmpfs, Target: "/scratch"},
			script: `echo junk >/scratch/f && stat -c %a /scratch && grep -c ' /scratch tmpfs' /proc/self/mounts`,
			want:   "1777\n1\n",
		},
		{
			name:   "secret default mode",
			mount:  run.Mount{Type: run.MountSecret, Source: secret, Target: "/run/secrets/token"},
			script: `cat /run/secrets/token; echo; stat -c '%a %u %g' /run/secrets/token; echo x >/run/secrets/token 2>/dev/null || echo refused`,
			want:   "s3cret\n400 0 0\nrefused\n",
		},
		{
			name:   "secret for a user",
			mount:  run.Mount{Type: run.MountSecret, Source: secret, Target: "/home/u/.token", Mode: 0o440, UID: 1000, GID: 1000},
			uid:    1000,
			script: `cat /home/u/.token; echo; stat -c '%a %u %g' /home/u/.token`,
			want:   "s3cret\n440 1000 1000\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := tree(t, root)
			out := mustRun(t, e, run.Spec{Root: root, UID: tc.uid, GID: tc.uid, Mounts: []run.Mount{tc.mount}}, tc.script)
			if out != tc.want {
				t.Errorf("output %q, want %q", out, tc.want)
			}
			if after := tree(t, root); !slices.Equal(before, after) {
				t.Errorf("the mount left traces in the root:\nbefore %v\nafter  %v", before, after)
			}
			if tc.check != nil {
				tc.check(t)
			}
		})
	}
}

func TestChrootMountPointsKeepWhatTheCommandWrote(t *testing.T) {
	root := busyboxRoot(t)
	e := newExecutor(t, run.Chroot)
	spec := run.Spec{Root: root, Mounts: []run.Mount{
		{Type: run.MountTmpfs, Target: "/a/b/c"},
		// Nested in the tmpfs: its mount point is made inside the tmpfs.
		{Type: run.MountTmpfs, Target: "/a/b/c/d"},
	}}
	mustRun(t, e, spec, `touch /a/kept /a/b/c/d/gone`)
	if _, err := os.Stat(filepath.Join(root, "a/kept")); err != nil {
		t.Errorf("the command's file in a created mount point's parent is gone: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(root, "a/b")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("empty mount point parent /a/b left behind (err %v)", err)
	}
}

func TestChrootMountTargetCannotEscapeRoot(t *testing.T) {
	root := busyboxRoot(t)
	outside := t.TempDir()
	// An absolute symlink in an untrusted image must resolve inside it.
	if err := os.Symlink(outside, filepath.Join(root, "escape")); err != nil {
		t.Fatal(err)
	}
	e := newExecutor(t, run.Chroot)
	mustRun(t, e, run.Spec{Root: root, Mounts: []run.Mount{{Type: run.MountTmpfs, Target: "/escape/sub"}}}, `touch /escape/sub/f`)
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("mount point created outside the root: %v", entries)
	}
}

func TestChrootNetwork(t *testing.T) {
	root := busyboxRoot(t)
	e := newExecutor(t, run.Chroot)
	t.Run("none", func(t *testing.T) {
		out := mustRun(t, e, run.Spec{Root: root, Network: run.NetworkNone}, `tail -n +3 /proc/net/dev | cut -d: -f1 | xargs; ip link show lo`)
		lines := strings.SplitN(out, "\n", 2)
		if lines[0] != "lo" {
			t.Errorf("interfaces %q, want only lo", lines[0])
		}
		if !strings.Contains(out, ",UP") {
			t.Errorf("lo is not up:\n%s", out)
		}
	})
	for _, mode := range []string{run.NetworkDefault, run.NetworkHost} {
		t.Run(mode, func(t *testing.T) {
			out := mustRun(t, e, run.Spec{Root: root, Network: mode}, `tail -n +3 /proc/net/dev | cut -d: -f1 | xargs -n1 | sort | xargs`)
			if want := hostInterfaces(t); strings.TrimSpace(out) != want {
				t.Errorf("interfaces %q, want the host's %q", strings.TrimSpace(out), want)
			}
		})
	}
}

func hostInterfaces(t *testing.T) string {
	data := readFile(t, "/proc/net/dev")
	var names []string
	for _, line := range strings.Split(data, "\n")[2:] {
		if name, _, ok := strings.Cut(line, ":"); ok {
			names = append(names, strings.TrimSpace(name))
		}
	}
	slices.Sort(names)
	return strings.Join(names, " ")
}

// The RUN's mounts live in its own mount namespace: the host's table never
// shows one at the root's paths, while the command runs or after. Only
// mounts under the root are compared, since other tests' containers come
// and go in the host's table meanwhile.
func TestChrootHostMountTableUnchanged(t *testing.T) {
	root := busyboxRoot(t)
	signal := t.TempDir()
	if before := hostMountsUnder(t, root); len(before) != 0 {
		t.Fatalf("mounts under the new root before the run: %q", before)
	}
	e := newExecutor(t, run.Chroot)
	spec := run.Spec{
		Root: root,
		Mounts: []run.Mount{
			{Type: run.MountBind, Source: signal, Target: "/signal"},
			{Type: run.MountTmpfs, Target: "/scratch"},
		},
		Network: run.NetworkNone,
	}
	done := make(chan error, 1)
	go func() {
		_, err := sh(t, e, spec, `touch /signal/ready; grep -c ' /scratch ' /proc/self/mountinfo; while [ ! -e /signal/go ]; do sleep 0.05; done`)
		done <- err
	}()
	waitFor(t, filepath.Join(signal, "ready"))
	if during := hostMountsUnder(t, root); len(during) != 0 {
		t.Errorf("the host's mount table shows the RUN's mounts while the command runs: %q", during)
	}
	writeFile(t, filepath.Join(signal, "go"), "")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if after := hostMountsUnder(t, root); len(after) != 0 {
		t.Errorf("the host's mount table shows the RUN's mounts after the run: %q", after)
	}
}

// hostMountsUnder returns the lines of this process's mountinfo whose
// mount point is dir or below it.
func hostMountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	var under []string
	for _, line := range strings.Split(readFile(t, "/proc/self/mountinfo"), "\n") {
		fields := strings.Fields(line)
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			under = append(under, line)
		}
	}
	return under
}

func TestChrootCancelKillsEverything(t *testing.T) {
	root := busyboxRoot(t)
	signal := t.TempDir()
	e := newExecutor(t, run.Chroot)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- e.Run(ctx, run.Spec{
			Root:   root,
			Args:   []string{"/bin/sh", "-c", `sleep 300 & touch /signal/ready; sleep 300`},
			Mounts: []run.Mount{{Type: run.MountBind, Source: signal, Target: "/signal"}},
		})
	}()
	waitFor(t, filepath.Join(signal, "ready"))
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancellation")
	}
	if pids := processesIn(t, root); len(pids) > 0 {
		t.Errorf("processes still running in the root after cancellation: %v", pids)
	}
}

// processesIn lists the processes whose root directory is root.
func processesIn(t *testing.T, root string) []int {
	// The kernel reaps a dead PID namespace asynchronously.
	deadline := time.Now().Add(5 * time.Second)
	for {
		var pids []int
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			if link, err := os.Readlink(filepath.Join("/proc", e.Name(), "root")); err == nil && link == root {
				pids = append(pids, pid)
			}
		}
		if len(pids) == 0 || time.Now().After(deadline) {
			return pids
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestChrootFallbackWithoutNamespaces(t *testing.T) {
	root := busyboxRoot(t)
	var logs bytes.Buffer
	e := newExecutor(t, run.Chroot, run.WithoutNamespaces(), run.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))

	out := mustRun(t, e, run.Spec{Root: root, UID: 1000, GID: 1000, Dir: "/w", Env: []string{"A=1"}}, `echo $A $(id -u) $(pwd); test $$ != 1 && echo not-pid-1`)
	if out != "1 1000 /w\nnot-pid-1\n" {
		t.Errorf("output %q", out)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "/proc, /dev and /sys are not mounted") {
		t.Errorf("no warning saying what the fallback loses:\n%s", logs.String())
	}
	for script, code := range map[string]int{"exit 4": 4, "kill -9 $$": 128 + 9} {
		_, err := sh(t, e, run.Spec{Root: root}, script)
		var xe *run.ExitError
		if !errors.As(err, &xe) || xe.Code != code {
			t.Errorf("%s: err = %v, want exit code %d", script, err, code)
		}
	}
	for _, tc := range []struct {
		name string
		spec run.Spec
		want string
	}{
		{"mount refused", run.Spec{Root: root, Mounts: []run.Mount{{Type: run.MountTmpfs, Target: "/t"}}}, "needs a mount namespace"},
		{"network none refused", run.Spec{Root: root, Network: run.NetworkNone}, "--network=none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := sh(t, e, tc.spec, "true")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestInvalidSpecs(t *testing.T) {
	root := t.TempDir()
	chroot := newExecutor(t, run.Chroot)
	inPlace := newExecutor(t, run.InPlace)
	for _, tc := range []struct {
		name string
		e    run.Executor
		spec run.Spec
		want string
	}{
		{"no command", chroot, run.Spec{Root: root}, "empty command"},
		{"relative dir", chroot, run.Spec{Root: root, Args: []string{"true"}, Dir: "work"}, "not absolute"},
		{"bad network", chroot, run.Spec{Root: root, Args: []string{"true"}, Network: "bridge"}, `unknown network mode "bridge"`},
		{"chroot into /", chroot, run.Spec{Root: "/", Args: []string{"true"}}, "refuses /"},
		{"missing root", chroot, run.Spec{Root: filepath.Join(root, "nope"), Args: []string{"true"}}, "root filesystem"},
		{"in-place elsewhere", inPlace, run.Spec{Root: root, Args: []string{"true"}}, "in-place mode runs in /"},
		{"unknown mount", chroot, run.Spec{Root: root, Args: []string{"true"}, Mounts: []run.Mount{{Type: "ssh", Target: "/x"}}}, "unknown mount type"},
		{"relative target", chroot, run.Spec{Root: root, Args: []string{"true"}, Mounts: []run.Mount{{Type: run.MountTmpfs, Target: "x"}}}, "must be an absolute path"},
		{"missing source", chroot, run.Spec{Root: root, Args: []string{"true"}, Mounts: []run.Mount{{Type: run.MountBind, Source: filepath.Join(root, "nope"), Target: "/x"}}}, "source"},
		{"secret dir", chroot, run.Spec{Root: root, Args: []string{"true"}, Mounts: []run.Mount{{Type: run.MountSecret, Source: root, Target: "/x"}}}, "must be a file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.e.Run(context.Background(), tc.spec)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
	if _, err := run.New("vm"); err == nil {
		t.Error("New accepted an unknown mode")
	}
}

// tree lists every path under root with its type and size, to show that a
// run left nothing behind.
func tree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		out = append(out, p+" "+fi.Mode().String()+" "+strconv.FormatInt(fi.Size(), 10))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func waitFor(t *testing.T, p string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(p); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s did not appear", p)
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
