package run

import (
	"context"
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// A RUN command's calls that wait for the disk (dpkg makes one per file it
// unpacks) buy a build nothing: the snapshot reads the files back through
// the page cache, and a build that dies is run again, never resumed. So,
// unless WithDiskSync is given, they return success at once, as under
// systemd-nspawn --suppress-sync or eatmydata. A seccomp filter does it,
// because it also reaches static binaries, which an LD_PRELOAD library
// does not.
var syncCalls = []uint32{
	unix.SYS_FSYNC,
	unix.SYS_FDATASYNC,
	unix.SYS_SYNC,
	unix.SYS_SYNCFS,
	sysSyncFileRange,
	unix.SYS_MSYNC,
}

// auditArch is the seccomp architecture of this binary's system calls.
// Calls made under another ABI (i386 or x32 programs on amd64) have other
// numbers; the filter lets them through untouched.
var auditArch = map[string]uint32{
	"amd64":   unix.AUDIT_ARCH_X86_64,
	"arm64":   unix.AUDIT_ARCH_AARCH64,
	"ppc64le": unix.AUDIT_ARCH_PPC64LE,
	"riscv64": unix.AUDIT_ARCH_RISCV64,
	"s390x":   unix.AUDIT_ARCH_S390X,
}[runtime.GOARCH]

// Offsets in struct seccomp_data.
const (
	seccompDataNr   = 0
	seccompDataArch = 4
)

// syncFilter is the BPF program that answers syncCalls with 0 and lets
// every other call through.
func syncFilter() ([]bpf.RawInstruction, error) {
	n := len(syncCalls)
	prog := []bpf.Instruction{
		bpf.LoadAbsolute{Off: seccompDataArch, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: auditArch, SkipTrue: uint8(n + 1)},
		bpf.LoadAbsolute{Off: seccompDataNr, Size: 4},
	}
	for i, nr := range syncCalls {
		prog = append(prog, bpf.JumpIf{Cond: bpf.JumpEqual, Val: nr, SkipTrue: uint8(n - i)})
	}
	prog = append(prog,
		bpf.RetConstant{Val: unix.SECCOMP_RET_ALLOW},
		// SECCOMP_RET_ERRNO with errno 0: the call is skipped and returns 0.
		bpf.RetConstant{Val: unix.SECCOMP_RET_ERRNO},
	)
	return bpf.Assemble(prog)
}

// suppressSyncOnThread installs the filter on the calling OS thread only
// (no TSYNC), so that it reaches the processes this thread starts and
// nothing else in the builder. Without CAP_SYS_ADMIN the kernel requires
// no_new_privs first.
func suppressSyncOnThread(noNewPrivs bool) error {
	if auditArch == 0 {
		return fmt.Errorf("no seccomp architecture known for %s", runtime.GOARCH)
	}
	raw, err := syncFilter()
	if err != nil {
		return err
	}
	filter := make([]unix.SockFilter, len(raw))
	for i, in := range raw {
		filter[i] = unix.SockFilter{Code: in.Op, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if noNewPrivs {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("set no_new_privs: %w", err)
		}
	}
	if _, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&prog))); errno != 0 {
		return fmt.Errorf("seccomp: %w", errno)
	}
	return nil
}

// syncSuppression says whether the filter may go on a RUN for uid, and
// whether it needs no_new_privs. no_new_privs makes setuid programs (sudo,
// su) run without their privilege, which only a root command loses
// nothing by; so without CAP_SYS_ADMIN, as in a default pod, a command run
// as another user keeps its disk syncs.
func syncSuppression(uid uint32) (ok, noNewPrivs bool) {
	if hasCapability(unix.CAP_SYS_ADMIN) {
		return true, false
	}
	return uid == 0, true
}

// withSyncSuppressed runs fn, which starts and waits for the RUN
// processes, on an OS thread of its own carrying the filter. The thread
// stays locked until fn has waited for its children: their parent-death
// signal follows the thread that started them. Go then ends the thread
// rather than reuse it with the filter on.
func (e *executor) withSyncSuppressed(ctx context.Context, spec Spec, fn func(context.Context, Spec) error) error {
	ok, noNewPrivs := syncSuppression(spec.UID)
	if e.opts.diskSync || !ok {
		return fn(ctx, spec)
	}
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := suppressSyncOnThread(noNewPrivs); err != nil {
			e.opts.logger.Debug("RUN keeps its disk syncs: the seccomp filter that skips them could not be installed", "error", err.Error())
		}
		done <- fn(ctx, spec)
	}()
	return <-done
}
