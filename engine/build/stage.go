package build

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipway-build/slipway/engine/cache"
	"github.com/slipway-build/slipway/engine/dockerfile"
	"github.com/slipway-build/slipway/engine/layer"
	"github.com/slipway-build/slipway/engine/rootfs"
	"github.com/slipway-build/slipway/engine/snapshot"
	"github.com/slipway-build/slipway/engine/userdb"
)

// stage is one Dockerfile stage being built.
type stage struct {
	b     *builder
	ps    *dockerfile.PlannedStage
	scope *dockerfile.Scope

	base    v1.Image
	cfg     *v1.ConfigFile // the base's config, edited as instructions run
	layers  []v1.Layer     // new layers, in order
	history []v1.History   // new history entries, in order
	created time.Time

	root         string
	idx          *rootfs.Index
	materialized bool
	// lower is the file tree of the base and of layers[:lowerLayers], for
	// steps that write files onto a sparse root (dest.go).
	lower       *rootfs.Lower
	lowerLayers int
	// later holds the instructions after the one being dispatched.
	later []instructions.Command
	// cmdSet records a CMD in this stage, so that ENTRYPOINT only clears an
	// inherited CMD, as docker does.
	cmdSet bool
	// finishing is set while a single snapshot takes the stage's layer.
	finishing bool

	// key is the cache key of the stage's state so far; empty when the
	// cache is off or a step could not be keyed.
	key cache.Key
	// prefetched holds the cache entries looked up ahead, by key.
	prefetched map[cache.Key]*cache.Entry
	// dry marks the shadow stage that only computes keys for the lookups.
	dry     bool
	dryKeys []cache.Key
	// noCache is set when a cached layer turned out unreadable: the stage
	// is then built again without the cache.
	noCache bool
	// newScope makes the stage's starting ARG and ENV scope, for the real
	// pass and the dry one.
	newScope func() *dockerfile.Scope
}

func newStage(ctx context.Context, b *builder, ps *dockerfile.PlannedStage, noCache bool) (*stage, error) {
	s := &stage{b: b, ps: ps, created: time.Now().UTC(), noCache: noCache}
	var parent *stageResult
	if b.opts.Epoch != nil {
		s.created = b.opts.Epoch.UTC()
	}
	platform := b.opts.Platform
	if ps.Platform != nil {
		platform = fromOCIPlatform(*ps.Platform)
	}
	switch {
	case ps.BaseStage >= 0:
		res, ok := b.result(ps.BaseStage)
		if !ok {
			return nil, fmt.Errorf("stage %q: base stage %d has not been built", ps.Name, ps.BaseStage)
		}
		s.base, parent = res.image, res
	case ps.Base == "scratch":
		s.base = empty.Image
	default:
		img, err := b.opts.Images.Pull(ctx, ps.Base, platform)
		if err != nil {
			return nil, &dockerfile.Error{File: b.df.Name, Line: ps.Line, Err: fmt.Errorf("FROM %s: %w", ps.Base, err)}
		}
		s.base = img
	}
	cf, err := s.base.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading the config of %s: %w", ps.Base, err)
	}
	s.cfg = cf.DeepCopy()
	if ps.Base == "scratch" && ps.BaseStage < 0 {
		s.cfg.OS, s.cfg.Architecture, s.cfg.Variant = platform.OS, platform.Architecture, platform.Variant
		s.cfg.Config.Env = []string{"PATH=" + dockerfile.DefaultPath}
		// BuildKit's empty image (dockerfile2llb emptyImage) has "/".
		s.cfg.Config.WorkingDir = "/"
	}
	imageEnv := s.cfg.Config.Env
	s.newScope = func() *dockerfile.Scope {
		if parent != nil {
			// BuildKit carries a stage's ARG values into stages built
			// FROM it.
			return parent.scope.Derive()
		}
		return dockerfile.NewScope(b.plan, ps, imageEnv, b.planOpts)
	}
	s.scope = s.newScope()
	if err := s.initialKey(parent, platform); err != nil {
		return nil, err
	}
	return s, nil
}

// build runs the stage's ONBUILD triggers and instructions and assembles
// its image.
func (s *stage) build(ctx context.Context) (*stageResult, error) {
	s.prefetch(ctx)
	if err := s.steps(ctx, s.ps.Commands); err != nil {
		return nil, err
	}
	if s.ps.Index == s.b.plan.Target && len(s.b.opts.Labels) > 0 {
		if s.cfg.Config.Labels == nil {
			s.cfg.Config.Labels = map[string]string{}
		}
		for k, v := range s.b.opts.Labels {
			s.cfg.Config.Labels[k] = v
		}
	}
	if s.b.opts.SingleSnapshot && s.materialized {
		s.finishing = true
		if err := s.snapshot(ctx, snapshot.NewWalker(s.root, s.idx, s.b.ignoreList), "single snapshot of the stage"); err != nil {
			return nil, err
		}
	}
	img, err := s.image()
	if err != nil {
		return nil, err
	}
	res := &stageResult{image: img, scope: s.scope, key: s.key}
	if s.materialized && !s.b.roots.shared() {
		res.root = s.root
	}
	return res, nil
}

// steps runs the base image's ONBUILD triggers, then commands.
func (s *stage) steps(ctx context.Context, commands []instructions.Command) error {
	triggers := s.cfg.Config.OnBuild
	s.cfg.Config.OnBuild = nil
	if len(triggers) > 0 {
		cmds, err := dockerfile.ParseTriggers(triggers)
		if err != nil {
			return fmt.Errorf("ONBUILD triggers of %s: %w", s.ps.Base, err)
		}
		for i, cmd := range cmds {
			s.log("Executing ONBUILD trigger: " + cmd.Name())
			s.later = append(cmds[i+1:len(cmds):len(cmds)], commands...)
			if err := s.dispatch(ctx, cmd); err != nil {
				return fmt.Errorf("ONBUILD trigger of %s: %w", s.ps.Base, err)
			}
		}
	}
	for i, cmd := range commands {
		if err := ctx.Err(); err != nil {
			return err
		}
		s.later = commands[i+1:]
		if err := s.dispatch(ctx, cmd); err != nil {
			return err
		}
	}
	return nil
}

func (s *stage) log(msg string, args ...any) {
	if !s.dry {
		s.b.opts.Log.Info(msg, args...)
	}
}

func (s *stage) dispatch(ctx context.Context, cmd instructions.Command) error {
	written := argDefaults(cmd)
	if err := s.scope.Expand(cmd); err != nil {
		return commandError(cmd, err)
	}
	s.log(commandText(cmd))
	var err error
	switch c := cmd.(type) {
	case *instructions.ArgCommand:
		s.scope.Apply(c)
		s.emptyHistory(argHistory(c, written, s.b.opts.BuildArgs))
	case *instructions.EnvCommand:
		s.scope.Apply(c)
		s.cfg.Config.Env = s.scope.ConfigEnv()
		s.emptyHistory(historyText(cmd))
	case *instructions.LabelCommand:
		if s.cfg.Config.Labels == nil {
			s.cfg.Config.Labels = map[string]string{}
		}
		for _, kv := range c.Labels {
			s.cfg.Config.Labels[kv.Key] = kv.Value
		}
		s.emptyHistory(historyText(cmd))
	case *instructions.MaintainerCommand:
		s.cfg.Author = c.Maintainer
		s.emptyHistory(historyText(cmd))
	case *instructions.ExposeCommand:
		err = s.expose(c)
	case *instructions.VolumeCommand:
		if s.cfg.Config.Volumes == nil {
			s.cfg.Config.Volumes = map[string]struct{}{}
		}
		for _, v := range c.Volumes {
			if strings.TrimSpace(v) == "" {
				return commandError(cmd, fmt.Errorf("VOLUME specified can not be an empty string"))
			}
			s.cfg.Config.Volumes[v] = struct{}{}
		}
		s.emptyHistory(historyText(cmd))
	case *instructions.UserCommand:
		s.cfg.Config.User = c.User
		s.emptyHistory(historyText(cmd))
	case *instructions.StopSignalCommand:
		s.cfg.Config.StopSignal = c.Signal
		s.emptyHistory(historyText(cmd))
	case *instructions.ShellCommand:
		s.cfg.Config.Shell = append([]string(nil), c.Shell...)
		s.emptyHistory(historyText(cmd))
	case *instructions.OnbuildCommand:
		s.cfg.Config.OnBuild = append(s.cfg.Config.OnBuild, c.Expression)
		s.emptyHistory(historyText(cmd))
	case *instructions.HealthCheckCommand:
		s.healthcheck(c)
		s.emptyHistory(historyText(cmd))
	case *instructions.CmdCommand:
		s.cfg.Config.Cmd = s.withShell(c.ShellDependantCmdLine)
		s.cmdSet = true
		s.emptyHistory(fmt.Sprintf("CMD %s", quoteArgs(s.cfg.Config.Cmd)))
	case *instructions.EntrypointCommand:
		s.cfg.Config.Entrypoint = s.withShell(c.ShellDependantCmdLine)
		if !s.cmdSet {
			s.cfg.Config.Cmd = nil
		}
		s.emptyHistory(fmt.Sprintf("ENTRYPOINT %s", quoteArgs(s.cfg.Config.Entrypoint)))
	case *instructions.WorkdirCommand:
		wd := s.setWorkdir(c)
		if wd == "/" {
			s.emptyHistory(historyText(c))
			break
		}
		err = s.cached(ctx, func() (cache.StepInput, bool, error) { return s.stepInput(historyText(c)), true, nil },
			func() error { return s.mkWorkdir(ctx, c, wd) })
	case *instructions.CopyCommand:
		spec := copyFromCopy(c)
		err = s.cached(ctx, func() (cache.StepInput, bool, error) { return s.copyInput(ctx, spec) },
			func() error { return s.copy(ctx, spec) })
	case *instructions.AddCommand:
		spec := copyFromAdd(c)
		err = s.cached(ctx, func() (cache.StepInput, bool, error) { return s.copyInput(ctx, spec) },
			func() error { return s.copy(ctx, spec) })
	case *instructions.RunCommand:
		err = s.cached(ctx, func() (cache.StepInput, bool, error) { return s.runInput(ctx, c) },
			func() error { return s.run(ctx, c) })
	default:
		err = fmt.Errorf("instruction %s is not supported", cmd.Name())
	}
	if err != nil {
		return commandError(cmd, err)
	}
	return nil
}

func (s *stage) withShell(c instructions.ShellDependantCmdLine) []string {
	return dockerfile.WithShell(c, s.shell())
}

func (s *stage) shell() []string {
	if len(s.cfg.Config.Shell) > 0 {
		return append([]string(nil), s.cfg.Config.Shell...)
	}
	return dockerfile.DefaultShell(s.cfg.OS)
}

func (s *stage) expose(c *instructions.ExposeCommand) error {
	if s.cfg.Config.ExposedPorts == nil {
		s.cfg.Config.ExposedPorts = map[string]struct{}{}
	}
	for _, p := range c.Ports {
		ports, err := parsePorts(p)
		if err != nil {
			return err
		}
		for _, port := range ports {
			s.cfg.Config.ExposedPorts[port] = struct{}{}
		}
	}
	s.emptyHistory(historyText(c))
	return nil
}

func (s *stage) healthcheck(c *instructions.HealthCheckCommand) {
	h := c.Health
	s.cfg.Config.Healthcheck = &v1.HealthConfig{
		Test:        append([]string(nil), h.Test...),
		Interval:    h.Interval,
		Timeout:     h.Timeout,
		StartPeriod: h.StartPeriod,
		Retries:     h.Retries,
	}
}

// setWorkdir sets the config's working directory and returns it.
func (s *stage) setWorkdir(c *instructions.WorkdirCommand) string {
	wd := c.Path
	if !path.IsAbs(wd) {
		base := s.cfg.Config.WorkingDir
		if base == "" {
			base = "/"
		}
		wd = path.Join(base, wd)
	}
	wd = path.Clean(wd)
	s.cfg.Config.WorkingDir = wd
	return wd
}

// mkWorkdir creates the working directory as BuildKit does, owned by the
// current USER as BuildKit's file operations resolve it, in a layer of its
// own.
func (s *stage) mkWorkdir(ctx context.Context, c *instructions.WorkdirCommand, wd string) error {
	return s.writeFiles(ctx, func(d destRoot) error {
		uid, gid := 0, 0
		if u := s.cfg.Config.User; u != "" {
			if err := d.revealUserDB(); err != nil {
				return err
			}
			u32, g32, err := userdb.ResolveFileOwner(d.dir, u)
			if err != nil {
				return err
			}
			uid, gid = int(u32), int(g32)
		}
		if err := d.reveal(wd); err != nil {
			return err
		}
		created, err := mkdirAll(d.dir, wd, 0o755, uid, gid, s.b.opts.Epoch)
		if err != nil {
			return err
		}
		if len(created) == 0 {
			s.emptyHistory(historyText(c))
			return nil
		}
		changes := make([]layer.Change, 0, len(created))
		for _, p := range created {
			changes = append(changes, layer.Change{Path: p})
		}
		return s.commitTo(d, changes, historyText(c)+" # buildkit")
	})
}

// materialize extracts the base image into the stage's root on the first
// instruction that needs files.
func (s *stage) materialize(ctx context.Context) error {
	if s.materialized {
		return nil
	}
	s.idx = rootfs.NewIndex()
	root, err := s.b.roots.create(s.b, s.ps.Index)
	if err != nil {
		return err
	}
	s.root = root
	img, err := s.currentImage()
	if err != nil {
		return err
	}
	s.b.opts.Log.Info("Unpacking rootfs as cmd requires it.", "image", s.ps.Base)
	if err := rootfs.ExtractImage(ctx, s.root, img, s.idx, s.extractOptions()...); err != nil {
		return fmt.Errorf("unpacking %s: %w", s.ps.Base, err)
	}
	s.materialized = true
	return nil
}

// discardRoot forgets a root that may be half-written; the next step that
// needs files unpacks the image again.
func (s *stage) discardRoot() {
	s.b.roots.discard(s.root)
	s.materialized = false
}

// currentImage is the base plus the layers this stage has made so far.
func (s *stage) currentImage() (v1.Image, error) {
	if len(s.layers) == 0 {
		return s.base, nil
	}
	return mutate.AppendLayers(s.base, s.layers...)
}

// commit turns changes under the root into a new layer with its history.
// With a single snapshot, steps only leave history: the stage's one layer
// is taken at its end.
func (s *stage) commit(changes []layer.Change, createdBy string) error {
	if s.b.opts.SingleSnapshot && !s.finishing {
		s.emptyHistory(createdBy)
		return nil
	}
	return s.commitFrom(s.root, changes, createdBy)
}

// commitTo commits changes a file-writing step made on d.
func (s *stage) commitTo(d destRoot, changes []layer.Change, createdBy string) error {
	if d.sparse != nil {
		return s.commitFrom(d.dir, changes, createdBy)
	}
	if !s.b.opts.SingleSnapshot {
		// What the step wrote, and the directories it wrote into, are in
		// its layer, parents included, so they are not changes for the
		// next snapshot. With a single snapshot they must be: that
		// snapshot is the stage's only layer.
		if err := s.idx.RecordPaths(s.root, withParents(changes)); err != nil {
			return err
		}
	}
	return s.commit(changes, createdBy)
}

// withParents lists the changed paths and every directory above them.
func withParents(changes []layer.Change) []string {
	seen := map[string]bool{}
	var paths []string
	for _, c := range changes {
		for p := path.Clean(c.Path); p != "/" && !seen[p]; p = path.Dir(p) {
			seen[p] = true
			paths = append(paths, p)
		}
	}
	return paths
}

// commitFrom writes changes read under root, which is the stage root or an
// overlay mounted over it.
func (s *stage) commitFrom(root string, changes []layer.Change, createdBy string) error {
	l, err := layer.Write(root, changes, layer.Options{
		KeepUncompressed: s.b.opts.ExtractedLayerDir,
		Compression:      s.b.opts.Compression,
		Level:            s.b.opts.CompressionLevel,
		Epoch:            s.b.opts.Epoch,
		TempDir:          s.b.opts.WorkDir,
	})
	if err != nil {
		return err
	}
	// The layer file lives in WorkDir until the caller, having published
	// the image, removes that directory.
	s.layers = append(s.layers, l)
	s.history = append(s.history, v1.History{Created: v1.Time{Time: s.created}, CreatedBy: createdBy, Comment: "slipway"})
	return nil
}

func (s *stage) emptyHistory(createdBy string) {
	s.history = append(s.history, v1.History{Created: v1.Time{Time: s.created}, CreatedBy: createdBy, Comment: "slipway", EmptyLayer: true})
}

// image assembles the stage's image: base layers, new layers, and a config
// with the edited container config and the full history.
func (s *stage) image() (v1.Image, error) {
	img := s.base
	if s.b.opts.Compression == layer.Zstd {
		// zstd layers are only valid in OCI manifests.
		img = mutate.MediaType(img, types.OCIManifestSchema1)
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	} else if mt, err := img.MediaType(); err == nil && mt == "" {
		img = mutate.MediaType(img, types.DockerManifestSchema2)
	}
	if len(s.layers) > 0 {
		var err error
		if img, err = mutate.AppendLayers(img, s.layers...); err != nil {
			return nil, fmt.Errorf("assembling the image: %w", err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Config = s.cfg.Config
	cf.Author = s.cfg.Author
	cf.OS, cf.Architecture, cf.Variant = s.cfg.OS, s.cfg.Architecture, s.cfg.Variant
	cf.Created = v1.Time{Time: s.created}
	cf.History = append(append([]v1.History(nil), s.cfg.History...), s.history...)
	if cf.Config.Labels != nil && len(cf.Config.Labels) == 0 {
		cf.Config.Labels = nil
	}
	return mutate.ConfigFile(img, cf)
}

func (s *stage) extractOptions() []rootfs.Option {
	return append(s.b.layerCacheOptions(), rootfs.WithIgnoreList(s.b.ignoreList))
}

func commandText(cmd instructions.Command) string {
	if st, ok := cmd.(fmt.Stringer); ok {
		return st.String()
	}
	return strings.ToUpper(cmd.Name())
}

// historyText is the history's created_by for metadata instructions, in
// BuildKit's form ("ENV A=b", "LABEL k=v").
func historyText(cmd instructions.Command) string {
	switch c := cmd.(type) {
	case *instructions.EnvCommand:
		return "ENV " + kvText(c.Env)
	case *instructions.LabelCommand:
		return "LABEL " + kvText(c.Labels)
	case *instructions.WorkdirCommand:
		return "WORKDIR " + c.Path
	case *instructions.UserCommand:
		return "USER " + c.User
	case *instructions.ExposeCommand:
		ports := append([]string(nil), c.Ports...)
		sort.Strings(ports)
		return "EXPOSE map[" + strings.Join(ports, ":{} ") + ":{}]"
	case *instructions.VolumeCommand:
		return fmt.Sprintf("VOLUME %v", c.Volumes)
	}
	return commandText(cmd)
}

func kvText(kvs instructions.KeyValuePairs) string {
	parts := make([]string, 0, len(kvs))
	for _, kv := range kvs {
		parts = append(parts, kv.Key+"="+kv.Value)
	}
	return strings.Join(parts, " ")
}

func quoteArgs(args []string) string {
	return fmt.Sprintf("%q", args)
}

func toOCIPlatform(p v1.Platform) ocispec.Platform {
	return ocispec.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant, OSVersion: p.OSVersion}
}

func fromOCIPlatform(p ocispec.Platform) v1.Platform {
	return v1.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant, OSVersion: p.OSVersion}
}

func removeAll(dir string) {
	_ = os.RemoveAll(filepath.Clean(dir))
}
