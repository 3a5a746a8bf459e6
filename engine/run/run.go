package run

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"slices"
	"strings"
)

// Mode selects how a RUN process is launched. It is always chosen
// explicitly by the caller, never guessed, so that a workstation can never
// have its own / rewritten by accident.
type Mode string

const (
	// Chroot runs the command in a child chrooted into Spec.Root, inside new
	// mount, PID and UTS namespaces where the process may create them.
	Chroot Mode = "chroot"
	// InPlace runs the command directly in the current / (kaniko's model).
	// It is only safe inside a disposable container such as a build pod.
	InPlace Mode = "in-place"
)

// MountType is a kind of mount the executor understands. The builder
// resolves the sources of cache, secret and bind mounts to host paths
// before calling Run.
type MountType string

// The mount types.
const (
	MountBind   MountType = "bind"
	MountTmpfs  MountType = "tmpfs"
	MountCache  MountType = "cache"
	MountSecret MountType = "secret"
)

// Network modes, as accepted by RUN --network.
const (
	NetworkDefault = "default"
	NetworkNone    = "none"
	NetworkHost    = "host"
)

// Mount is one RUN --mount, already resolved to a host path.
type Mount struct {
	Type     MountType
	Source   string // host path; unused for tmpfs
	Target   string // absolute path inside the root
	ReadOnly bool
	// Mode, UID and GID apply to secret files (Mode 0 means 0400, as
	// BuildKit does) and to the root of a tmpfs (Mode 0 means 01777).
	Mode     os.FileMode
	UID, GID int
}

// Spec describes one RUN process.
type Spec struct {
	Root   string   // root filesystem; "/" (or empty) in in-place mode
	Args   []string // argv; shell form was already expanded by the builder
	Env    []string // PATH is added with BuildKit's default when missing
	Dir    string   // working directory inside Root, created (0755, root-owned) if missing
	UID    uint32
	GID    uint32
	Groups []uint32 // supplementary groups, applied exactly (empty drops all)
	Mounts []Mount
	// Network is NetworkDefault, NetworkHost or NetworkNone; empty means
	// NetworkDefault.
	Network        string
	Stdout, Stderr io.Writer
}

// Executor runs RUN processes. Run returns *ExitError when the command ran
// and exited non-zero; any other error means it could not be started.
type Executor interface {
	Run(ctx context.Context, spec Spec) error
}

// ExitError reports a command that ran and failed. A command killed by a
// signal reports 128+signal, as a shell and docker do.
type ExitError struct {
	Code int
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("exit code %d", e.Code)
}

// Option configures an Executor.
type Option func(*options)

type options struct {
	logger       *slog.Logger
	hostDev      bool
	noNamespaces bool
	resolvConf   string
	hosts        string
	stateDir     string
	force        bool
	diskSync     bool
	host         *Host
}

// WithLogger sets the logger for warnings about lost isolation. The default
// is slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// WithHostDev bind-mounts the host's whole /dev into the root instead of
// the minimal set of nodes (null, zero, full, random, urandom, tty, pts,
// shm) that docker build gives.
func WithHostDev() Option {
	return func(o *options) { o.hostDev = true }
}

// WithoutNamespaces makes the executor behave as if namespaces were not
// permitted: chroot mode uses a plain chroot and in-place mode emulates
// mounts by copying. It exists for environments that forbid namespaces
// more subtly than with EPERM, and for tests of those paths.
func WithoutNamespaces() Option {
	return func(o *options) { o.noNamespaces = true }
}

// WithResolvConf sets the host file copied to /etc/resolv.conf in chroot
// mode (default /etc/resolv.conf).
func WithResolvConf(path string) Option {
	return func(o *options) { o.resolvConf = path }
}

// WithHosts sets the host file copied to /etc/hosts in chroot mode
// (default /etc/hosts).
func WithHosts(path string) Option {
	return func(o *options) { o.hosts = path }
}

// WithStateDir sets where the executor keeps its private files for a run
// (copies of the resolver files, the mount point of the secrets' tmpfs),
// removed when the run ends. The default is os.TempDir(). In in-place mode
// pass a directory the snapshotter ignores, such as the executor's own, so
// that / shows no trace of them.
func WithStateDir(dir string) Option {
	return func(o *options) { o.stateDir = dir }
}

// WithForce lets in-place mode run where no container is recognised
// (kaniko's --force): the caller vouches that / is disposable.
func WithForce() Option {
	return func(o *options) { o.force = true }
}

// WithDiskSync lets a RUN command's fsync, fdatasync, sync, syncfs,
// sync_file_range and msync wait for the disk. Without it they return at
// once for commands run as root, and for every user where the builder has
// CAP_SYS_ADMIN; see nosync_linux.go.
func WithDiskSync() Option {
	return func(o *options) { o.diskSync = true }
}

// withHost replaces the process's own view for the container check.
func withHost(h Host) Option {
	return func(o *options) { o.host = &h }
}

// New returns an Executor for mode. In-place mode is refused with
// *NotContainerError outside a container unless WithForce is given.
func New(mode Mode, opts ...Option) (Executor, error) {
	o := options{
		logger:     slog.Default(),
		resolvConf: "/etc/resolv.conf",
		hosts:      "/etc/hosts",
	}
	for _, opt := range opts {
		opt(&o)
	}
	switch mode {
	case Chroot, InPlace:
	default:
		return nil, fmt.Errorf("unknown run mode %q: use %q or %q", mode, Chroot, InPlace)
	}
	if mode == InPlace {
		host := ThisHost()
		if o.host != nil {
			host = *o.host
		}
		if err := host.CheckContainer(o.force); err != nil {
			return nil, err
		}
		if _, ok := host.ContainerSign(); !ok {
			o.logger.Warn("--force: in-place mode runs although no container was recognised; / is emptied and rewritten")
		}
	}
	return newExecutor(mode, o)
}

// defaultPath is BuildKit's default PATH, added when the environment has
// none so that "RUN apt-get ..." works on images that do not set one.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// withDefaultPath returns env with PATH added when missing.
func withDefaultPath(env []string) []string {
	for _, kv := range env {
		if strings.HasPrefix(kv, "PATH=") {
			return env
		}
	}
	out := make([]string, 0, len(env)+1)
	out = append(out, env...)
	return append(out, "PATH="+defaultPath)
}

// pathEnv returns the PATH value from env.
func pathEnv(env []string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], "PATH="); ok {
			return v
		}
	}
	return defaultPath
}

// validate checks what can be checked before anything is touched, so that
// bad input fails without side effects.
func validate(mode Mode, spec *Spec) error {
	// The caller's slice must not see the cleaned targets.
	spec.Mounts = slices.Clone(spec.Mounts)
	if len(spec.Args) == 0 || spec.Args[0] == "" {
		return fmt.Errorf("run: empty command")
	}
	switch spec.Network {
	case "":
		spec.Network = NetworkDefault
	case NetworkDefault, NetworkHost, NetworkNone:
	default:
		return fmt.Errorf("run %q: unknown network mode %q: use default, none or host", spec.Args[0], spec.Network)
	}
	if spec.Dir == "" {
		spec.Dir = "/"
	}
	if !path.IsAbs(spec.Dir) {
		return fmt.Errorf("run %q: working directory %q is not absolute", spec.Args[0], spec.Dir)
	}
	switch mode {
	case InPlace:
		if spec.Root == "" {
			spec.Root = "/"
		}
		if spec.Root != "/" {
			return fmt.Errorf("run %q: in-place mode runs in / but the root is %q; use chroot mode for a root under a work directory", spec.Args[0], spec.Root)
		}
	case Chroot:
		if spec.Root == "" || !path.IsAbs(spec.Root) {
			return fmt.Errorf("run %q: chroot mode needs an absolute root directory, got %q", spec.Args[0], spec.Root)
		}
		if path.Clean(spec.Root) == "/" {
			return fmt.Errorf("run %q: chroot mode refuses / as the root; use in-place mode inside a container", spec.Args[0])
		}
		fi, err := os.Stat(spec.Root)
		if err != nil {
			return fmt.Errorf("run %q: root filesystem: %w", spec.Args[0], err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("run %q: root filesystem %s is not a directory", spec.Args[0], spec.Root)
		}
	}
	for i, m := range spec.Mounts {
		if !path.IsAbs(m.Target) || path.Clean(m.Target) == "/" {
			return fmt.Errorf("run --mount type=%s: target %q must be an absolute path other than /", m.Type, m.Target)
		}
		switch m.Type {
		case MountTmpfs:
		case MountBind, MountCache, MountSecret:
			if m.Source == "" {
				return fmt.Errorf("run --mount type=%s,target=%s: no source", m.Type, m.Target)
			}
			fi, err := os.Stat(m.Source)
			if err != nil {
				return fmt.Errorf("run --mount type=%s,target=%s: source: %w", m.Type, m.Target, err)
			}
			if m.Type == MountSecret && fi.IsDir() {
				return fmt.Errorf("run --mount type=secret,target=%s: source is a directory, a secret must be a file", m.Target)
			}
		default:
			return fmt.Errorf("run --mount type=%s,target=%s: unknown mount type: use bind, cache, tmpfs or secret", m.Type, m.Target)
		}
		spec.Mounts[i].Target = path.Clean(m.Target)
	}
	spec.Env = withDefaultPath(spec.Env)
	return nil
}
