package build

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/slipway-build/slipway/engine/dockerfile"
	"github.com/slipway-build/slipway/engine/layer"
	"github.com/slipway-build/slipway/engine/run"
	"github.com/slipway-build/slipway/engine/snapshot"
	"github.com/slipway-build/slipway/engine/userdb"
)

// run executes a RUN instruction and commits what it changed.
func (s *stage) run(ctx context.Context, st *step, a runAction) error {
	c := a.cmd
	if s.b.opts.Executor == nil {
		return errors.New("RUN needs an executor: run slipway-build with --mode=chroot (as root) or in the executor image")
	}
	root, err := s.unpack(ctx)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(s.b.opts.WorkDir, "slipway-run-")
	if err != nil {
		return err
	}
	defer removeAll(tmp)

	spec := run.Spec{
		Root:    root.path,
		Env:     append([]string(nil), a.env...),
		Dir:     st.config.WorkingDir,
		Network: instructions.GetNetwork(c),
		Stdout:  s.b.opts.Output,
		Stderr:  s.b.opts.Output,
	}
	if spec.Dir == "" {
		spec.Dir = "/"
	}
	u := st.config.User
	if u == "" {
		u = "0"
	}
	usr, err := userdb.ResolveUser(root.path, u)
	if err != nil {
		return err
	}
	spec.UID, spec.GID, spec.Groups = usr.UID, usr.GID, usr.Groups
	args, heredocMount, err := runArgs(c, a.shell, tmp)
	if err != nil {
		return err
	}
	spec.Args = args
	if heredocMount != nil {
		spec.Mounts = append(spec.Mounts, *heredocMount)
	}
	mounts, env, err := s.runMounts(ctx, c, st.config.WorkingDir, tmp)
	if err != nil {
		return err
	}
	spec.Mounts = append(spec.Mounts, mounts...)
	spec.Env = withHome(append(spec.Env, env...), usr.Home)

	// With a single snapshot the step runs in the root and only the
	// stage's end takes a snapshot, by walking. A stage that writes no
	// layers takes none: its root is all that is read of it.
	var session snapshot.Session
	if !s.b.opts.SingleSnapshot && s.layerUse() != noLayers {
		if session, err = s.b.opts.snapshotter().Start(root.path, filepath.Join(tmp, "overlay"), root.idx, s.b.ignoreList); err != nil {
			return err
		}
		if spec.Root, err = session.Prepare(); err != nil {
			return fmt.Errorf("preparing the %s snapshotter (use --snapshotter=walk where overlayfs cannot be mounted): %w", s.b.opts.Snapshotter, err)
		}
		defer session.Discard()
	}
	if err := s.b.opts.Executor.Run(ctx, spec); err != nil {
		var exit *run.ExitError
		if errors.As(err, &exit) {
			return fmt.Errorf("the command %q returned a non-zero code: %d", strings.Join(args, " "), exit.Code)
		}
		if errors.Is(err, run.ErrExecFormat) {
			err = s.foreignRunError(err)
		}
		return fmt.Errorf("running %q: %w", strings.Join(args, " "), err)
	}
	createdBy := "RUN " + strings.Join(args, " ") + " # buildkit"
	if buildArgs := a.buildArgs; len(buildArgs) > 0 {
		createdBy = fmt.Sprintf("RUN |%d %s %s # buildkit", len(buildArgs), strings.Join(buildArgs, " "), strings.Join(args, " "))
	}
	if session == nil {
		s.emptyHistory(createdBy)
		return nil
	}
	return s.snapshot(ctx, session, createdBy)
}

// withHome gives the process the user's home as HOME unless its
// environment has a non-empty one, as runc does under BuildKit. It is the
// process's alone: the image config gets no HOME.
func withHome(env []string, home string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "HOME="); ok {
			if v != "" {
				return env
			}
			continue
		}
		out = append(out, kv)
	}
	return append(out, "HOME="+home)
}

// snapshot commits what a step changed under the root, as its session
// reads it: a walk of the root, or an overlay's upper directory (the cost is
// then the changes alone). A step that changed nothing adds no layer.
func (s *stage) snapshot(ctx context.Context, session snapshot.Session, createdBy string) error {
	s.b.opts.Log.Info("Taking snapshot of files...")
	changes, err := session.Snapshot(ctx)
	if err != nil {
		return fmt.Errorf("snapshotting the changes: %w", err)
	}
	changes = s.b.withoutMountParents(changes)
	if len(changes) == 0 {
		s.emptyHistory(createdBy)
		return nil
	}
	if err := s.commitFrom(session.Root(), changes, createdBy); err != nil {
		return err
	}
	if err := session.Commit(); err != nil {
		return fmt.Errorf("applying the step's changes to the root: %w", err)
	}
	return nil
}

// withoutMountParents drops the directories that only lead to ignored
// paths: in a pod, /kaniko or /tekton exist only to hold mounts, and docker
// build would not put them in the image. A directory that holds a real
// change still reaches the layer as that change's parent.
func (b *builder) withoutMountParents(changes []layer.Change) []layer.Change {
	parents := map[string]bool{}
	for _, p := range b.ignoreList.Paths() {
		for dir := path.Dir(p); dir != "/" && dir != "."; dir = path.Dir(dir) {
			parents[dir] = true
		}
	}
	if len(parents) == 0 {
		return changes
	}
	kept := changes[:0]
	for _, c := range changes {
		if c.Kind == layer.Add && parents[c.Path] {
			continue
		}
		kept = append(kept, c)
	}
	return kept
}

// runArgs turns a RUN's command line and heredocs into argv with
// BuildKit's rules; a heredoc script with a shebang is mounted read-only at
// /dev/pipes for the one command.
func runArgs(c *instructions.RunCommand, shell []string, tmp string) ([]string, *run.Mount, error) {
	args, script, err := dockerfile.RunArgv(c, shell)
	if err != nil || script == nil {
		return args, nil, err
	}
	dir := filepath.Join(tmp, "pipes")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, path.Base(script.Path)), []byte(script.Data), 0o755); err != nil {
		return nil, nil, err
	}
	return args, &run.Mount{Type: run.MountBind, Source: dir, Target: path.Dir(script.Path), ReadOnly: true}, nil
}

var cacheIDChars = regexp.MustCompile(`[^A-Za-z0-9._-]`)

// runMounts resolves RUN --mount flags to host paths for the executor,
// and the environment variables secrets with env= add.
func (s *stage) runMounts(ctx context.Context, c *instructions.RunCommand, wd, tmp string) ([]run.Mount, []string, error) {
	var mounts []run.Mount
	var env []string
	for i, m := range instructions.GetMounts(c) {
		target := m.Target
		if target != "" && !path.IsAbs(target) {
			if wd == "" {
				wd = "/"
			}
			target = path.Join(wd, target)
		}
		switch m.Type {
		case instructions.MountTypeCache:
			id := m.CacheID
			if id == "" {
				id = target
			}
			name := cacheIDChars.ReplaceAllString(strings.Trim(id, "/"), "_")
			dir := filepath.Join(s.b.cacheDir(), "mounts", name)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				// A cache that cannot be written steps aside: the mount
				// starts empty in the work directory, with one warning.
				s.b.warnCacheMountDir(err)
				dir = filepath.Join(s.b.opts.WorkDir, "cache", "mounts", name)
				if err := os.MkdirAll(dir, 0o755); err != nil {
					return nil, nil, fmt.Errorf("--mount=type=cache,id=%s: %w", id, err)
				}
			}
			if m.UID != nil || m.GID != nil || m.Mode != nil {
				if err := applyOwnerMode(dir, m.UID, m.GID, m.Mode); err != nil {
					return nil, nil, err
				}
			}
			mounts = append(mounts, run.Mount{Type: run.MountCache, Source: dir, Target: target, ReadOnly: m.ReadOnly})
		case instructions.MountTypeTmpfs:
			mounts = append(mounts, run.Mount{Type: run.MountTmpfs, Target: target})
		case instructions.MountTypeBind:
			tree := s.b.opts.ContextDir
			if m.From != "" {
				root, err := s.b.fromTree(ctx, m.From, false, s)
				if err != nil {
					return nil, nil, err
				}
				tree = root
			} else if cleaned := path.Clean(m.Source); cleaned == ".." || strings.HasPrefix(cleaned, "../") {
				return nil, nil, fmt.Errorf("--mount=type=bind,source=%s: forbidden path outside the build context", m.Source)
			}
			// Resolved as if the tree were /, as COPY resolves its sources,
			// so a symlink in the context cannot mount a host path.
			host, err := securejoin.SecureJoin(tree, m.Source)
			if err != nil {
				return nil, nil, fmt.Errorf("--mount=type=bind,source=%s: %w", m.Source, err)
			}
			if _, err := os.Stat(host); err != nil {
				return nil, nil, fmt.Errorf("--mount=type=bind,source=%s: %w", m.Source, err)
			}
			mounts = append(mounts, run.Mount{Type: run.MountBind, Source: host, Target: target, ReadOnly: m.ReadOnly})
		case instructions.MountTypeSecret:
			mount, envVar, err := s.secretMount(m, target, filepath.Join(tmp, fmt.Sprintf("secret-%d", i)))
			if err != nil {
				return nil, nil, err
			}
			if mount != nil {
				mounts = append(mounts, *mount)
			}
			if envVar != "" {
				env = append(env, envVar)
			}
		default:
			return nil, nil, fmt.Errorf("--mount=type=%s is not supported", m.Type)
		}
	}
	return mounts, env, nil
}

// secretMount writes a secret to a private file for one command. It is
// never logged and never lands in a layer: the executor mounts it outside
// the snapshot and removes the mount point afterwards.
func (s *stage) secretMount(m *instructions.Mount, target, file string) (*run.Mount, string, error) {
	id := m.CacheID
	if id == "" && target != "" {
		id = path.Base(target)
	}
	secret, ok := s.b.opts.Secrets[id]
	if !ok {
		if m.Required {
			return nil, "", fmt.Errorf("secret %s is required but was not given: pass --secret id=%s,src=FILE or env=VAR", id, id)
		}
		return nil, "", nil
	}
	var value []byte
	if secret.File != "" {
		b, err := os.ReadFile(secret.File)
		if err != nil {
			return nil, "", fmt.Errorf("secret %s: reading its file: %w", id, err)
		}
		value = b
	} else {
		v, ok := os.LookupEnv(secret.Env)
		if !ok {
			return nil, "", fmt.Errorf("secret %s: environment variable %s is not set", id, secret.Env)
		}
		value = []byte(v)
	}
	envVar := ""
	if m.Env != nil {
		name := *m.Env
		if name == "" {
			name = id
		}
		envVar = name + "=" + string(value)
		if m.Target == "" {
			return nil, envVar, nil
		}
	}
	if target == "" {
		target = "/run/secrets/" + id
	}
	if err := os.WriteFile(file, value, 0o400); err != nil {
		return nil, "", fmt.Errorf("secret %s: %w", id, err)
	}
	mount := &run.Mount{Type: run.MountSecret, Source: file, Target: target, ReadOnly: true}
	if m.Mode != nil {
		mount.Mode = os.FileMode(*m.Mode)
	}
	if m.UID != nil {
		mount.UID = int(*m.UID)
	}
	if m.GID != nil {
		mount.GID = int(*m.GID)
	}
	return mount, envVar, nil
}

func applyOwnerMode(dir string, uid, gid, mode *uint64) error {
	u, g := -1, -1
	if uid != nil {
		u = int(*uid)
	}
	if gid != nil {
		g = int(*gid)
	}
	if err := os.Chown(dir, u, g); err != nil {
		return err
	}
	if mode != nil {
		return os.Chmod(dir, os.FileMode(*mode))
	}
	return nil
}

// warnCacheMountDir says once per build that RUN cache mounts cannot
// persist in --cache-dir.
func (b *builder) warnCacheMountDir(err error) {
	b.cacheMountWarning.Do(func() {
		b.opts.Log.Warn("RUN cache mounts cannot be kept in --cache-dir; they start empty and are not kept", "dir", b.opts.CacheMountDir, "error", err.Error())
	})
}

// cacheDir is where RUN cache mounts persist between builds.
func (b *builder) cacheDir() string {
	if b.opts.CacheMountDir != "" {
		return b.opts.CacheMountDir
	}
	return filepath.Join(b.opts.WorkDir, "cache")
}
