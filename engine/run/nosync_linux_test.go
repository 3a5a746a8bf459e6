package run_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/slipway-build/slipway/engine/run"
)

// syncProbeEnv makes the test binary, started as a RUN command, print what
// the disk-sync calls return (syncProbe) instead of running tests.
const syncProbeEnv = "SLIPWAY_RUN_TEST_SYNC_PROBE"

// syncProbe calls each disk-sync call with an argument the kernel rejects,
// so that "ok" can only come from the executor's seccomp filter answering
// in the kernel's place, and prints the results and the no_new_privs bit.
func syncProbe() {
	var unmapped uintptr = 1 << 46 // nothing is mapped there; msync says ENOMEM
	calls := []struct {
		name string
		call func() error
	}{
		{"fsync", func() error { return unix.Fsync(-1) }},
		{"fdatasync", func() error { return unix.Fdatasync(-1) }},
		{"syncfs", func() error { return unix.Syncfs(-1) }},
		{"sync_file_range", func() error { return unix.SyncFileRange(-1, 0, 0, 0) }},
		{"msync", func() error {
			_, _, errno := unix.Syscall(unix.SYS_MSYNC, unmapped, 4096, unix.MS_SYNC)
			if errno != 0 {
				return errno
			}
			return nil
		}},
	}
	var out []string
	for _, c := range calls {
		result := "ok"
		if err := c.call(); err != nil {
			result = unix.ErrnoName(err.(unix.Errno))
		}
		out = append(out, c.name+"="+result)
	}
	nnp, err := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, "PR_GET_NO_NEW_PRIVS:", err)
		os.Exit(2)
	}
	out = append(out, fmt.Sprintf("no_new_privs=%d", nnp))
	fmt.Println(strings.Join(out, " "))
}

const (
	syncsSkipped = "fsync=ok fdatasync=ok syncfs=ok sync_file_range=ok msync=ok"
	syncsReal    = "fsync=EBADF fdatasync=EBADF syncfs=EBADF sync_file_range=EBADF msync=ENOMEM"
)

// probeSyncs runs the test binary as the RUN command of spec (its Root
// must hold it at /run.test) and returns the probe's line.
func probeSyncs(t *testing.T, e run.Executor, spec run.Spec) string {
	t.Helper()
	var out bytes.Buffer
	spec.Args = []string{"/run.test"}
	spec.Env = []string{syncProbeEnv + "=1"}
	spec.Stdout = &out
	spec.Stderr = testWriter{t}
	if err := e.Run(context.Background(), spec); err != nil {
		t.Fatalf("RUN of the sync probe: %v", err)
	}
	return strings.TrimSpace(out.String())
}

// checkBuilderKeepsSyncs checks that the filter stayed with the RUN's
// processes: the builder's own calls still reach the kernel.
func checkBuilderKeepsSyncs(t *testing.T) {
	t.Helper()
	if err := unix.Fsync(-1); !errors.Is(err, unix.EBADF) {
		t.Errorf("fsync(-1) in the builder returned %v, want EBADF: the filter leaked out of the RUN", err)
	}
}

func TestChrootSkipsDiskSyncs(t *testing.T) {
	root := busyboxRoot(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "run.test"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opts []run.Option
		uid  uint32
		want string
	}{
		// With CAP_SYS_ADMIN the filter needs no no_new_privs, so every
		// user gets it and setuid programs keep working.
		{"root", nil, 0, syncsSkipped + " no_new_privs=0"},
		{"another user", nil, 1000, syncsSkipped + " no_new_privs=0"},
		{"plain chroot fallback", []run.Option{run.WithoutNamespaces()}, 0, syncsSkipped + " no_new_privs=0"},
		{"WithDiskSync", []run.Option{run.WithDiskSync()}, 0, syncsReal + " no_new_privs=0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newExecutor(t, run.Chroot, tc.opts...)
			if got := probeSyncs(t, e, run.Spec{Root: root, UID: tc.uid, GID: tc.uid}); got != tc.want {
				t.Errorf("probe printed\n  %s\nwant\n  %s", got, tc.want)
			}
			checkBuilderKeepsSyncs(t)
		})
	}
}
