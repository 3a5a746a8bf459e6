package run

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"

	"github.com/slipway-build/slipway/engine/phase"
)

// errNamespacesDenied marks a refusal of namespaces or of mounts inside
// them for lack of privilege (EPERM under a default container's seccomp
// profile or without CAP_SYS_ADMIN): the cue to fall back.
var errNamespacesDenied = errors.New("namespaces not permitted")

// waitDelay bounds how long Wait waits for output pipes after the command
// exited, should something it started still hold them.
const waitDelay = 5 * time.Second

type executor struct {
	mode            Mode
	opts            options
	fallbackWarning sync.Once
}

func newExecutor(mode Mode, o options) (Executor, error) {
	return &executor{mode: mode, opts: o}, nil
}

func (e *executor) Run(ctx context.Context, spec Spec) error {
	if err := validate(e.mode, &spec); err != nil {
		return err
	}
	defer phase.Start(phase.Run)()
	if e.mode == Chroot {
		return e.withSyncSuppressed(ctx, spec, e.runChroot)
	}
	return e.withSyncSuppressed(ctx, spec, e.runInPlace)
}

func (e *executor) runChroot(ctx context.Context, spec Spec) error {
	reason := "namespaces disabled by WithoutNamespaces"
	if !e.opts.noNamespaces {
		err := e.runIsolated(ctx, spec, true)
		if !errors.Is(err, errNamespacesDenied) {
			return err
		}
		reason = err.Error()
	}
	// Once per executor: a build's every RUN would say the same.
	e.fallbackWarning.Do(func() {
		e.opts.logger.Warn("RUN without mount and PID namespaces: falling back to a plain chroot; "+
			"/proc, /dev and /sys are not mounted, /etc/resolv.conf and /etc/hosts are not bound, "+
			"and processes the command leaves behind are not contained. Run as root with CAP_SYS_ADMIN "+
			"and a seccomp profile that allows namespaces to keep them.",
			"reason", reason)
	})
	if len(spec.Mounts) > 0 {
		m := spec.Mounts[0]
		return fmt.Errorf("run --mount type=%s,target=%s: chroot mode needs a mount namespace for RUN --mount and this process may not create one; give it CAP_SYS_ADMIN or use in-place mode inside a container", m.Type, m.Target)
	}
	if spec.Network == NetworkNone {
		return errNoNetworkIsolation
	}
	dir, err := securejoin.SecureJoin(spec.Root, spec.Dir)
	if err != nil {
		return fmt.Errorf("run %q: working directory %s: %w", spec.Args[0], spec.Dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("run %q: create working directory %s: %w", spec.Args[0], spec.Dir, err)
	}
	argv0, err := lookPath(spec.Root, spec.Args[0], pathEnv(spec.Env))
	if err != nil {
		return fmt.Errorf("run in %s: %w", spec.Root, err)
	}
	cmd := e.command(ctx, spec, argv0)
	cmd.SysProcAttr.Chroot = spec.Root
	return e.wait(ctx, spec, cmd, nil)
}

var errNoNetworkIsolation = errors.New("run --network=none: a new network namespace is not permitted here (it needs CAP_SYS_ADMIN and a seccomp profile that allows it); " +
	"drop --network=none or run the build with those privileges")

func (e *executor) runInPlace(ctx context.Context, spec Spec) error {
	if (len(spec.Mounts) > 0 || spec.Network == NetworkNone) && !e.opts.noNamespaces {
		err := e.runIsolated(ctx, spec, false)
		if !errors.Is(err, errNamespacesDenied) {
			return err
		}
		e.opts.logger.Debug("RUN in-place without a mount namespace: RUN --mount is emulated by copying", "reason", err.Error())
	}
	if spec.Network == NetworkNone {
		return errNoNetworkIsolation
	}
	undo, err := e.emulateMounts(spec.Mounts)
	if err != nil {
		return withCleanup(err, undo())
	}
	if err := os.MkdirAll(spec.Dir, 0o755); err != nil {
		return withCleanup(fmt.Errorf("run %q: create working directory %s: %w", spec.Args[0], spec.Dir, err), undo())
	}
	argv0, err := lookPath("/", spec.Args[0], pathEnv(spec.Env))
	if err != nil {
		return withCleanup(fmt.Errorf("run: %w", err), undo())
	}
	runErr := e.wait(ctx, spec, e.command(ctx, spec, argv0), nil)
	return withCleanup(runErr, undo())
}

// withCleanup adds a cleanup failure to err, leaving err itself (an
// *ExitError, say) as it is when the cleanup went well.
func withCleanup(err, cleanupErr error) error {
	if cleanupErr == nil {
		return err
	}
	return errors.Join(err, fmt.Errorf("run: cleaning up: %w", cleanupErr))
}

// command builds the process for the paths without namespaces.
func (e *executor) command(ctx context.Context, spec Spec, argv0 string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, argv0)
	cmd.Args = spec.Args
	cmd.Env = spec.Env
	cmd.Dir = spec.Dir
	cmd.Stdout, cmd.Stderr = spec.Stdout, spec.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: spec.UID, Gid: spec.GID, Groups: spec.Groups},
		// Its own process group, so that cancelling kills what it started too.
		Setpgid:   true,
		Pdeathsig: syscall.SIGKILL,
	}
	if cmd.SysProcAttr.Credential.Groups == nil {
		cmd.SysProcAttr.Credential.Groups = []uint32{}
	}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = waitDelay
	return cmd
}

// runIsolated runs the command through the init in new namespaces. In
// chroot mode it gets mount, PID and UTS namespaces and a full container
// file system; in place it gets only a mount namespace for its RUN mounts.
// A network namespace is added for --network=none.
func (e *executor) runIsolated(ctx context.Context, spec Spec, chroot bool) (err error) {
	st := &stubs{root: spec.Root}
	defer func() {
		err = withCleanup(err, st.cleanup())
	}()
	stage, err := os.MkdirTemp(e.opts.stateDir, "slipway-run-")
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	defer os.RemoveAll(stage)

	cfg := initConfig{
		Root:        spec.Root,
		Chroot:      chroot,
		SetupFS:     chroot,
		HostDev:     e.opts.hostDev,
		Mounts:      spec.Mounts,
		SecretStage: filepath.Join(stage, "secrets"),
		LoopbackUp:  spec.Network == NetworkNone && hasCapability(unix.CAP_NET_ADMIN),
		Args:        spec.Args,
		Env:         spec.Env,
		Dir:         spec.Dir,
		UID:         spec.UID,
		GID:         spec.GID,
		Groups:      spec.Groups,
	}
	if spec.Network == NetworkNone && !cfg.LoopbackUp {
		// The namespace isolates all the same; only 127.0.0.1 is missing.
		e.opts.logger.Warn("RUN --network=none: without CAP_NET_ADMIN the loopback interface of the new network namespace stays down, so 127.0.0.1 is unreachable for the command")
	}
	if err := os.Mkdir(cfg.SecretStage, 0o700); err != nil {
		return fmt.Errorf("run: %w", err)
	}
	var covered []string // targets whose stubs come from a mount above them
	if chroot {
		covered = []string{"/proc", "/dev", "/sys"}
		for _, d := range covered {
			if _, err := st.ensure(d, true); err != nil {
				return fmt.Errorf("run: %w", err)
			}
		}
		for _, f := range []struct{ host, target string }{
			{e.opts.resolvConf, "/etc/resolv.conf"},
			{e.opts.hosts, "/etc/hosts"},
		} {
			// A private copy: the command may write to these files, as in
			// docker, but never to the host's.
			data, err := os.ReadFile(f.host)
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return fmt.Errorf("run: %w", err)
			}
			src := filepath.Join(stage, path.Base(f.target))
			if err := os.WriteFile(src, data, 0o644); err != nil {
				return fmt.Errorf("run: %w", err)
			}
			target, err := st.ensure(f.target, false)
			if err != nil {
				return fmt.Errorf("run: %w", err)
			}
			cfg.EtcFiles = append(cfg.EtcFiles, etcFile{Source: src, Target: target})
		}
	}
	for _, m := range spec.Mounts {
		covered = append(covered, m.Target)
	}
	for _, m := range spec.Mounts {
		if nestedIn(m.Target, covered) {
			continue
		}
		isDir := m.Type == MountTmpfs
		if m.Type == MountBind || m.Type == MountCache {
			fi, err := os.Stat(m.Source)
			if err != nil {
				return fmt.Errorf("run --mount type=%s,target=%s: source: %w", m.Type, m.Target, err)
			}
			isDir = fi.IsDir()
		}
		if _, err := st.ensure(m.Target, isDir); err != nil {
			return fmt.Errorf("run --mount type=%s: %w", m.Type, err)
		}
	}

	var flags uintptr = unix.CLONE_NEWNS
	if chroot {
		// PID: cancelling kills the whole tree and /proc shows only it.
		// UTS: a RUN hostname never renames the machine.
		flags |= unix.CLONE_NEWPID | unix.CLONE_NEWUTS
	}
	if spec.Network == NetworkNone {
		flags |= unix.CLONE_NEWNET
	}
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	defer cfgR.Close()
	defer cfgW.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	defer errR.Close()
	defer errW.Close()

	cmd := exec.CommandContext(ctx, "/proc/self/exe")
	cmd.Args = []string{initArg0}
	cmd.Env = []string{}
	cmd.Stdout, cmd.Stderr = spec.Stdout, spec.Stderr
	cmd.ExtraFiles = []*os.File{cfgR, errW} // configFD, errorFD
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: flags,
		Setpgid:    true,
		Pdeathsig:  syscall.SIGKILL,
	}
	cmd.WaitDelay = waitDelay
	if err := cmd.Start(); err != nil {
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
			return fmt.Errorf("%w: %v", errNamespacesDenied, err)
		}
		return fmt.Errorf("run %q: start: %w", spec.Args[0], err)
	}
	cfgR.Close()
	errW.Close()
	// Killing the init, PID 1 of its namespace, takes everything in that
	// namespace with it; in place, the process group does the same.
	if !chroot {
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	}
	encErr := json.NewEncoder(cfgW).Encode(cfg)
	cfgW.Close()
	// EOF here means the init exec'ed the command (the pipe is
	// close-on-exec) or died; a message means it failed to set up.
	msg, _ := io.ReadAll(errR)
	var ie *initError
	if len(msg) > 0 {
		ie = &initError{}
		if json.Unmarshal(msg, ie) != nil {
			ie = &initError{Msg: strings.TrimSpace(string(msg))}
		}
	} else if encErr != nil {
		ie = &initError{Msg: "send config to init: " + encErr.Error()}
	}
	return e.wait(ctx, spec, cmd, ie)
}

// nestedIn reports whether target lies strictly below one of dirs.
func nestedIn(target string, dirs []string) bool {
	for _, d := range dirs {
		if target != d && strings.HasPrefix(target, strings.TrimSuffix(d, "/")+"/") {
			return true
		}
	}
	return false
}

// wait waits for cmd and turns its end into the error a builder reports.
func (e *executor) wait(ctx context.Context, spec Spec, cmd *exec.Cmd, ie *initError) error {
	if cmd.Process == nil {
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("run %q: start: %w", spec.Args[0], err)
		}
	}
	err := cmd.Wait()
	if ie != nil {
		if ie.Denied {
			return fmt.Errorf("%w: %s", errNamespacesDenied, ie.Msg)
		}
		if ie.ExecFormat {
			return fmt.Errorf("run %q: %s: %w", spec.Args[0], strings.TrimSuffix(ie.Msg, ": "+ErrExecFormat.Error()), ErrExecFormat)
		}
		return fmt.Errorf("run %q: %s", spec.Args[0], ie.Msg)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("run %q: %w", spec.Args[0], context.Cause(ctx))
	}
	var xe *exec.ExitError
	if errors.As(err, &xe) {
		if ws, ok := xe.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return &ExitError{Code: 128 + int(ws.Signal())}
		}
		return &ExitError{Code: xe.ExitCode()}
	}
	if err != nil {
		return fmt.Errorf("run %q: %w", spec.Args[0], err)
	}
	return nil
}

// hasCapability reports whether this process has capability c in its
// effective set.
func hasCapability(c int) bool {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if hex, ok := strings.CutPrefix(line, "CapEff:"); ok {
			set, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
			return err == nil && set&(1<<uint(c)) != 0
		}
	}
	return false
}
