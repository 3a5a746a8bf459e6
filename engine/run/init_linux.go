package run

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"

	"github.com/slipway-build/slipway/engine/rootfs"
)

// initArg0 is argv[0] of the re-executed binary. Go cannot run code between
// fork and exec, so the mounts that must happen inside the new namespaces
// are done by a second copy of this binary that recognises this name.
const initArg0 = "slipway-run-init"

// Descriptors the parent hands to the init: the JSON initConfig, and a
// close-on-exec pipe that stays silent when the command was exec'ed and
// carries an initError when setting up failed.
const (
	configFD = 3
	errorFD  = 4
)

// initConfig is what the init needs to set up and exec the command.
type initConfig struct {
	Root        string
	Chroot      bool // chroot into Root (chroot mode); in-place runs in /
	SetupFS     bool // mount /proc, /dev, /sys and the /etc files
	HostDev     bool
	EtcFiles    []etcFile
	Mounts      []Mount
	SecretStage string // host directory for a private tmpfs holding secrets
	LoopbackUp  bool
	Args, Env   []string
	Dir         string
	UID, GID    uint32
	Groups      []uint32
}

// etcFile is a private copy of a host file bound over a file in the root.
type etcFile struct {
	Source, Target string
}

// initError is what the init reports when it could not exec the command.
// Denied tells the parent that the kernel refused a mount for lack of
// privilege, so that it can fall back as it does when the namespaces
// themselves are refused.
type initError struct {
	Msg    string
	Denied bool
	// ExecFormat is set when exec failed with ENOEXEC (a foreign binary).
	ExecFormat bool
}

func init() { MaybeReexec() }

// MaybeReexec turns the process into the RUN init when it was started as
// one by this package, and never returns in that case. Otherwise it returns
// at once. The package calls it from its own init function; main functions
// and TestMain may call it first thing as well, to make the hand-off
// explicit.
func MaybeReexec() {
	if len(os.Args) == 0 || os.Args[0] != initArg0 {
		return
	}
	unix.CloseOnExec(errorFD)
	errPipe := os.NewFile(errorFD, "run-init-errors")
	err := initMain()
	// initMain returns only when it failed to exec the command.
	ie := initError{Msg: err.Error(), Denied: errors.Is(err, errMountDenied), ExecFormat: errors.Is(err, syscall.ENOEXEC)}
	_ = json.NewEncoder(errPipe).Encode(ie)
	os.Exit(126)
}

func initMain() error {
	cfgFile := os.NewFile(configFD, "run-init-config")
	var cfg initConfig
	err := json.NewDecoder(cfgFile).Decode(&cfg)
	cfgFile.Close()
	if err != nil {
		return fmt.Errorf("read init config: %w", err)
	}
	// Nothing mounted from here on may propagate back to the host.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return deniable(fmt.Errorf("make mounts private: %w", err))
	}
	if cfg.SetupFS {
		if err := setupFS(&cfg); err != nil {
			return err
		}
	}
	if err := applyMounts(&cfg); err != nil {
		return err
	}
	if cfg.LoopbackUp {
		if err := loopbackUp(); err != nil {
			return err
		}
	}
	if cfg.Chroot {
		if err := unix.Chroot(cfg.Root); err != nil {
			return fmt.Errorf("chroot %s: %w", cfg.Root, err)
		}
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return fmt.Errorf("create working directory %s: %w", cfg.Dir, err)
	}
	if err := unix.Chdir(cfg.Dir); err != nil {
		return fmt.Errorf("change to working directory %s: %w", cfg.Dir, err)
	}
	unix.Umask(0o022)
	groups := make([]int, len(cfg.Groups))
	for i, g := range cfg.Groups {
		groups[i] = int(g)
	}
	// syscall's versions apply to every thread of the Go runtime.
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("set groups %v: %w", cfg.Groups, err)
	}
	if err := syscall.Setgid(int(cfg.GID)); err != nil {
		return fmt.Errorf("set gid %d: %w", cfg.GID, err)
	}
	if err := syscall.Setuid(int(cfg.UID)); err != nil {
		return fmt.Errorf("set uid %d: %w", cfg.UID, err)
	}
	argv0, err := lookPath("/", cfg.Args[0], pathEnv(cfg.Env))
	if err != nil {
		return err
	}
	err = syscall.Exec(argv0, cfg.Args, cfg.Env)
	return fmt.Errorf("exec %s: %w", argv0, err)
}

// setupFS gives the chroot what a container has: a procfs of the new PID
// namespace, a minimal /dev, a read-only /sys and the resolver files.
func setupFS(cfg *initConfig) error {
	in := func(p string) string { return filepath.Join(cfg.Root, p) }
	if err := mount("proc", in("/proc"), "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return err
	}
	if cfg.HostDev {
		if err := mount("/dev", in("/dev"), "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return err
		}
	} else if err := minimalDev(in("/dev")); err != nil {
		return err
	}
	// Not recursive: the cgroup and other file systems under the host's /sys
	// stay out, and so cannot be left writable.
	if err := mount("/sys", in("/sys"), "", unix.MS_BIND, ""); err != nil {
		return err
	}
	if err := remountReadOnly(in("/sys")); err != nil {
		return err
	}
	for _, f := range cfg.EtcFiles {
		if err := mount(f.Source, f.Target, "", unix.MS_BIND, ""); err != nil {
			return err
		}
	}
	return nil
}

// minimalDev builds docker's /dev on a tmpfs. The nodes are bind mounts of
// the host's rather than mknod, which needs no CAP_MKNOD and keeps the
// host's device cgroup decisions.
func minimalDev(dev string) error {
	if err := mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_STRICTATIME, "mode=755,size=65536k"); err != nil {
		return err
	}
	for _, name := range []string{"null", "zero", "full", "random", "urandom", "tty"} {
		p := filepath.Join(dev, name)
		if err := os.WriteFile(p, nil, 0o666); err != nil {
			return fmt.Errorf("create /dev/%s: %w", name, err)
		}
		if err := mount("/dev/"+name, p, "", unix.MS_BIND, ""); err != nil {
			return err
		}
	}
	for _, d := range []string{"pts", "shm"} {
		if err := os.Mkdir(filepath.Join(dev, d), 0o755); err != nil {
			return fmt.Errorf("create /dev/%s: %w", d, err)
		}
	}
	if err := mount("devpts", filepath.Join(dev, "pts"), "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620"); err != nil {
		return err
	}
	if err := mount("shm", filepath.Join(dev, "shm"), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=1777,size=65536k"); err != nil {
		return err
	}
	for name, target := range map[string]string{
		"ptmx":   "pts/ptmx",
		"fd":     "/proc/self/fd",
		"stdin":  "/proc/self/fd/0",
		"stdout": "/proc/self/fd/1",
		"stderr": "/proc/self/fd/2",
	} {
		if err := os.Symlink(target, filepath.Join(dev, name)); err != nil {
			return fmt.Errorf("create /dev/%s: %w", name, err)
		}
	}
	return nil
}

// applyMounts performs the RUN --mount list, parents before children so
// that a nested target lands inside the mount above it, as runc does.
func applyMounts(cfg *initConfig) error {
	mounts := append([]Mount(nil), cfg.Mounts...)
	sort.SliceStable(mounts, func(i, j int) bool {
		return strings.Count(mounts[i].Target, "/") < strings.Count(mounts[j].Target, "/")
	})
	secretsReady := false
	for i, m := range mounts {
		isDir := m.Type == MountTmpfs
		if m.Type == MountBind || m.Type == MountCache {
			fi, err := os.Stat(m.Source)
			if err != nil {
				return fmt.Errorf("mount type=%s,target=%s: source: %w", m.Type, m.Target, err)
			}
			isDir = fi.IsDir()
		}
		// The parent created the stubs it could; targets nested in another
		// mount are created here, inside that mount, and are not stubs.
		s := stubs{root: cfg.Root}
		target, err := s.ensure(m.Target, isDir)
		if err != nil {
			return fmt.Errorf("mount type=%s: %w", m.Type, err)
		}
		switch m.Type {
		case MountTmpfs:
			mode := rootfs.UnixMode(m.Mode)
			if m.Mode == 0 {
				mode = 0o1777
			}
			var flags uintptr = unix.MS_NOSUID | unix.MS_NODEV
			if m.ReadOnly {
				flags |= unix.MS_RDONLY
			}
			if err := mount("tmpfs", target, "tmpfs", flags, fmt.Sprintf("mode=%o,uid=%d,gid=%d", mode, m.UID, m.GID)); err != nil {
				return err
			}
		case MountBind, MountCache:
			if err := mount(m.Source, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
				return err
			}
			if m.ReadOnly {
				if err := remountReadOnly(target); err != nil {
					return err
				}
			}
		case MountSecret:
			if !secretsReady {
				// The secret copies live in memory only, in a tmpfs that
				// exists in this mount namespace alone.
				if err := mount("tmpfs", cfg.SecretStage, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=700"); err != nil {
					return err
				}
				secretsReady = true
			}
			staged := filepath.Join(cfg.SecretStage, fmt.Sprint(i))
			if err := stageSecret(m, staged); err != nil {
				return err
			}
			if err := mount(staged, target, "", unix.MS_BIND, ""); err != nil {
				return err
			}
			if err := remountReadOnly(target); err != nil {
				return err
			}
		}
	}
	return nil
}

// stageSecret copies a secret with the mode and owner the mount asks for.
func stageSecret(m Mount, dst string) error {
	mode := rootfs.UnixMode(m.Mode)
	if m.Mode == 0 {
		mode = 0o400
	}
	src, err := os.Open(m.Source)
	if err != nil {
		return fmt.Errorf("secret for %s: %w", m.Target, err)
	}
	defer src.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("secret for %s: %w", m.Target, err)
	}
	_, err = io.Copy(out, src)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chown(dst, m.UID, m.GID)
	}
	if err == nil {
		err = unix.Chmod(dst, mode)
	}
	if err != nil {
		return fmt.Errorf("secret for %s: %w", m.Target, err)
	}
	return nil
}

func mount(source, target, fstype string, flags uintptr, data string) error {
	if err := unix.Mount(source, target, fstype, flags, data); err != nil {
		what := source
		if fstype != "" && flags&unix.MS_BIND == 0 {
			what = fstype
		}
		return deniable(fmt.Errorf("mount %s on %s: %w", what, target, err))
	}
	return nil
}

// errMountDenied matches mount errors caused by missing privilege (an LSM
// or a user namespace saying no), as opposed to bad input.
var errMountDenied = errors.New("mount not permitted")

type deniedError struct{ error }

func (d deniedError) Unwrap() error        { return d.error }
func (d deniedError) Is(target error) bool { return target == errMountDenied }

func deniable(err error) error {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return deniedError{err}
	}
	return err
}

// remountReadOnly makes a bind mount read-only, keeping the flags it
// already has: the kernel refuses a remount that would drop locked ones.
func remountReadOnly(target string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(target, &st); err != nil {
		return fmt.Errorf("statfs %s: %w", target, err)
	}
	flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY)
	for _, f := range []struct{ st, ms uintptr }{
		{unix.ST_NOSUID, unix.MS_NOSUID},
		{unix.ST_NODEV, unix.MS_NODEV},
		{unix.ST_NOEXEC, unix.MS_NOEXEC},
		{unix.ST_NOATIME, unix.MS_NOATIME},
		{unix.ST_NODIRATIME, unix.MS_NODIRATIME},
		{unix.ST_RELATIME, unix.MS_RELATIME},
	} {
		if uintptr(st.Flags)&f.st != 0 {
			flags |= f.ms
		}
	}
	if err := unix.Mount("", target, "", flags, ""); err != nil {
		return deniable(fmt.Errorf("make %s read-only: %w", target, err))
	}
	return nil
}

// loopbackUp brings lo up in a fresh network namespace, where it starts
// down: --network=none still has a working 127.0.0.1.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("bring up loopback: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("bring up loopback: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring up loopback: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring up loopback: %w", err)
	}
	return nil
}

// lookPath finds file in the PATH of the command's environment, resolved
// inside root, and returns its path as seen from inside root.
func lookPath(root, file, path string) (string, error) {
	check := func(p string) error {
		host, err := securejoin.SecureJoin(root, p)
		if err != nil {
			return err
		}
		fi, err := os.Stat(host)
		if err != nil {
			return err
		}
		if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
			return fmt.Errorf("%s: %w", p, fs.ErrPermission)
		}
		return nil
	}
	if strings.Contains(file, "/") {
		p := file
		if !filepath.IsAbs(p) {
			// A relative name with a slash is relative to the working
			// directory, which execve resolves itself.
			return p, nil
		}
		if err := check(p); err != nil {
			return "", fmt.Errorf("exec %q: %w", file, err)
		}
		return p, nil
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" || !filepath.IsAbs(dir) {
			continue
		}
		p := filepath.Join(dir, file)
		if check(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("exec %q: executable file not found in $PATH (%s)", file, path)
}
