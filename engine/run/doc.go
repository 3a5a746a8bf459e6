// Package run executes a RUN step's process: the Executor seam of the
// engine. The builder hands it a Spec (argv already in exec form, the
// environment, numeric user and groups, working directory, resolved RUN
// --mount sources, the network mode) and gets back nil, an *ExitError with
// the command's exit code, or an error saying why it could not run.
//
// # Chroot mode
//
// The root filesystem lives under a work directory. Go cannot run code
// between fork and exec, so the executor re-executes its own binary
// (/proc/self/exe, argv[0] "slipway-run-init") in new mount, PID and UTS
// namespaces, plus a network namespace for --network=none. That init reads
// its configuration as JSON from fd 3, makes every mount private, mounts a
// new /proc, a minimal /dev (host nodes null, zero, full, random, urandom
// and tty bound onto a tmpfs, a new devpts, a tmpfs /dev/shm) or, with
// WithHostDev, the host's /dev, binds /sys read-only, binds private copies
// of the host's /etc/resolv.conf and /etc/hosts, performs the RUN mounts,
// brings lo up when the network is "none", chroots, creates and enters the
// working directory, drops to the user and execs the command, which is
// PID 1 of its namespace. Setup failures come back on fd 4, a
// close-on-exec pipe, so they are reported as errors and never confused
// with the command's exit code. The init's mounts exist only in its mount
// namespace, which dies with the command: nothing reaches the host's mount
// table. Binaries that use this package must let MaybeReexec run early; the
// package's init function calls it.
//
// Where the kernel refuses the namespaces, or the mounts inside them, for
// lack of privilege (EPERM, as in an unprivileged container), chroot mode
// falls back to a plain chroot with the user's credentials and says in a
// warning what is lost. RUN --mount and --network=none are then refused
// with an error, since they cannot be honoured.
//
// # In-place mode
//
// kaniko's model for the executor image: Root is "/", and the command runs
// directly there, seeing the pod's own /proc, /dev and /sys. Only RUN
// --mount and --network=none need more. With CAP_SYS_ADMIN they are done in
// a private mount (and network) namespace through the same init, without
// chroot. In a default pod they cannot be: mounts are emulated by moving or
// copying the source into place and removing it afterwards, restoring
// whatever the image had there (a secret is written with mode 0400 or the
// mode asked for, and never logged), and --network=none is refused. A pod
// with CAP_SYS_ADMIN but not CAP_NET_ADMIN gets --network=none with lo down,
// and a warning. The executor's private files go to WithStateDir, which in
// this mode should be a directory the snapshotter ignores.
//
// # Disk syncs
//
// Unless WithDiskSync is given, a seccomp filter on the RUN's processes
// answers fsync, fdatasync, sync, syncfs, sync_file_range and msync with
// success at once (nosync_linux.go). Without CAP_SYS_ADMIN it needs
// no_new_privs, so in a default pod only commands run as root get it.
//
// # Mount points left behind
//
// A RUN mount needs a mount point, and a root may lack it (/proc in a
// scratch image, the target of --mount, /etc/resolv.conf). The executor
// creates the missing path components itself and, once the command has
// ended, removes each one that is still empty (a directory without entries,
// a zero-length file), newest first, and puts the parent's mtime back when
// the command did not change that directory. This is BuildKit's behaviour,
// so a snapshot taken after Run sees no trace of the mounts and needs no
// list of paths to ignore. The parents' ctime cannot be put back; a
// ctime-comparing snapshotter records those directories again with their
// unchanged metadata. The working directory, when created, stays, as in
// BuildKit: it is root-owned with mode 0755.
package run
