package build

import (
	"context"
	"fmt"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/slipway-build/slipway/engine/cache"
	"github.com/slipway-build/slipway/engine/dockerfile"
)

// The plan pass. planStage turns a stage into steps: each is the expanded
// instruction, the image config after it, and its cache key. It runs once
// per stage, expanding each instruction once, and touches no root
// filesystem and no registry: what a key depends on outside the Dockerfile
// (the context's files, what --from names) comes from a keySource. The
// executor (stage.go) then applies the steps to a root, and the cache
// lookup reads their keys.

// step is one planned instruction.
type step struct {
	// cmd is the instruction, expanded.
	cmd instructions.Command
	// trigger marks the base image's ONBUILD triggers, which run first.
	trigger bool
	// config is the image config after the step, and so the one a step
	// that writes files or runs sees (its working directory, user, shell).
	config v1.Config
	// history is the created_by of a step that only edits the config.
	history string
	// action does the work of a step that writes files or runs; nil for
	// one that only edits the config.
	action action
	// key is the step's cache key: empty when the cache is off, for steps
	// that make no layer, and from the first step that could not be keyed
	// on. keyErr is why that step could not be; the executor reports it
	// when it reaches the step, as the step's failure.
	key    cache.Key
	keyErr error
}

// action is the work of a step that writes files or runs a command.
type action interface {
	exec(ctx context.Context, s *stage, st *step) error
	// input is what the step's result depends on besides the stage so
	// far; ok is false when it cannot be keyed, which ends caching for the
	// rest of the stage.
	input(ctx context.Context, p *planner, st *step) (in cache.StepInput, ok bool, err error)
}

// stagePlan is a stage, planned.
type stagePlan struct {
	steps []step
	// config is the image config after the last step, with --label on the
	// target stage.
	config *v1.ConfigFile
	// scope is the stage's ARG and ENV state after the last step, which
	// stages built FROM it start from.
	scope *dockerfile.Scope
	// key is the stage's final cache key; empty when the cache is off or a
	// step could not be keyed.
	key cache.Key
	// err is the failure of the instruction after the last step; the
	// executor runs the steps before it, then reports it.
	err error
}

// runsLater says whether a step after i runs a command.
func (p *stagePlan) runsLater(i int) bool {
	for _, st := range p.steps[i+1:] {
		if _, ok := st.action.(runAction); ok {
			return true
		}
	}
	return false
}

// keySource is what cache keys read outside the Dockerfile.
type keySource interface {
	// fromKey is the key of what --from names: a finished stage's final
	// key, or an image's base key; ok is false when it has none. byIndex
	// says whether a number names a stage (COPY --from, not RUN --mount).
	fromKey(ctx context.Context, ref string, byIndex bool) (key cache.Key, ok bool, err error)
	// sourceDigest digests context paths, after .dockerignore.
	sourceDigest(paths []string) (string, error)
}

// planInput is what planning a stage starts from.
type planInput struct {
	stage *dockerfile.PlannedStage
	// base is the config of the stage's base, which planning leaves alone.
	base *v1.ConfigFile
	// scope is the stage's starting ARG and ENV scope; planning advances it.
	scope *dockerfile.Scope
	// key is the base's cache key; empty turns keys off. keys reads what
	// keys depend on outside the Dockerfile; keyRuns and keyCopies say
	// which steps are keyed (--cache-run-layers, --cache-copy-layers).
	key                cache.Key
	keys               keySource
	keyRuns, keyCopies bool
	// buildArgs are the --build-arg values, for ARG's history.
	buildArgs map[string]string
	// labels are --label's, added to the target stage's config.
	labels map[string]string
}

// planner is the state of planning one stage.
type planner struct {
	in    planInput
	cfg   *v1.ConfigFile
	scope *dockerfile.Scope
	key   cache.Key
	// cmdSet records a CMD in this stage, so that ENTRYPOINT only clears an
	// inherited CMD, as docker does.
	cmdSet bool
	steps  []step
}

// planStage plans the stage: its base's ONBUILD triggers, then its
// commands.
func planStage(ctx context.Context, in planInput) *stagePlan {
	p := &planner{in: in, cfg: in.base.DeepCopy(), scope: in.scope, key: in.key}
	err := p.plan(ctx)
	if err == nil && len(in.labels) > 0 {
		if p.cfg.Config.Labels == nil {
			p.cfg.Config.Labels = map[string]string{}
		}
		for k, v := range in.labels {
			p.cfg.Config.Labels[k] = v
		}
	}
	return &stagePlan{steps: p.steps, config: p.cfg, scope: p.scope, key: p.key, err: err}
}

func (p *planner) plan(ctx context.Context) error {
	base := p.in.stage.Base
	triggers := p.cfg.Config.OnBuild
	p.cfg.Config.OnBuild = nil
	if len(triggers) > 0 {
		cmds, err := dockerfile.ParseTriggers(triggers)
		if err != nil {
			return fmt.Errorf("ONBUILD triggers of %s: %w", base, err)
		}
		for _, cmd := range cmds {
			if err := p.add(ctx, cmd, true); err != nil {
				return fmt.Errorf("ONBUILD trigger of %s: %w", base, err)
			}
		}
	}
	for _, cmd := range p.in.stage.Commands {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := p.add(ctx, cmd, false); err != nil {
			return err
		}
	}
	return nil
}

// add expands cmd, applies it to the config and scope, and appends its
// step with its key.
func (p *planner) add(ctx context.Context, cmd instructions.Command, trigger bool) error {
	written := argDefaults(cmd)
	if err := p.scope.Expand(cmd); err != nil {
		return commandError(cmd, err)
	}
	st := step{cmd: cmd, trigger: trigger, history: historyText(cmd)}
	var err error
	switch c := cmd.(type) {
	case *instructions.ArgCommand:
		p.scope.Apply(c)
		st.history = argHistory(c, written, p.in.buildArgs)
	case *instructions.EnvCommand:
		p.scope.Apply(c)
		p.cfg.Config.Env = p.scope.ConfigEnv()
	case *instructions.RunCommand:
		st.action = runAction{cmd: c, env: p.scope.RunEnv(), buildArgs: p.scope.BuildArgs(), shell: p.shell(), keyEnv: cache.ScopeEnv(p.scope)}
	case *instructions.CopyCommand:
		st.action = copyAction{copyFromCopy(c)}
	case *instructions.AddCommand:
		st.action = copyAction{copyFromAdd(c)}
	case *instructions.WorkdirCommand:
		if wd := p.setWorkdir(c); wd != "/" {
			st.action = workdirAction{path: wd}
		}
	default:
		st.history, err = p.editConfig(cmd)
	}
	if err != nil {
		return commandError(cmd, err)
	}
	st.config = *p.cfg.Config.DeepCopy()
	if st.action != nil {
		p.keyStep(ctx, &st)
	}
	p.steps = append(p.steps, st)
	return nil
}

// editConfig applies an instruction that only edits the image config and
// returns its history.
func (p *planner) editConfig(cmd instructions.Command) (string, error) {
	cfg := &p.cfg.Config
	switch c := cmd.(type) {
	case *instructions.LabelCommand:
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		for _, kv := range c.Labels {
			cfg.Labels[kv.Key] = kv.Value
		}
	case *instructions.MaintainerCommand:
		p.cfg.Author = c.Maintainer
	case *instructions.ExposeCommand:
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = map[string]struct{}{}
		}
		for _, spec := range c.Ports {
			ports, err := parsePorts(spec)
			if err != nil {
				return "", err
			}
			for _, port := range ports {
				cfg.ExposedPorts[port] = struct{}{}
			}
		}
	case *instructions.VolumeCommand:
		if cfg.Volumes == nil {
			cfg.Volumes = map[string]struct{}{}
		}
		for _, v := range c.Volumes {
			if strings.TrimSpace(v) == "" {
				return "", fmt.Errorf("VOLUME specified can not be an empty string")
			}
			cfg.Volumes[v] = struct{}{}
		}
	case *instructions.UserCommand:
		cfg.User = c.User
	case *instructions.StopSignalCommand:
		cfg.StopSignal = c.Signal
	case *instructions.ShellCommand:
		cfg.Shell = append([]string(nil), c.Shell...)
	case *instructions.OnbuildCommand:
		cfg.OnBuild = append(cfg.OnBuild, c.Expression)
	case *instructions.HealthCheckCommand:
		h := c.Health
		cfg.Healthcheck = &v1.HealthConfig{
			Test:        append([]string(nil), h.Test...),
			Interval:    h.Interval,
			Timeout:     h.Timeout,
			StartPeriod: h.StartPeriod,
			Retries:     h.Retries,
		}
	case *instructions.CmdCommand:
		cfg.Cmd = dockerfile.WithShell(c.ShellDependantCmdLine, p.shell())
		p.cmdSet = true
		return fmt.Sprintf("CMD %s", quoteArgs(cfg.Cmd)), nil
	case *instructions.EntrypointCommand:
		cfg.Entrypoint = dockerfile.WithShell(c.ShellDependantCmdLine, p.shell())
		if !p.cmdSet {
			cfg.Cmd = nil
		}
		return fmt.Sprintf("ENTRYPOINT %s", quoteArgs(cfg.Entrypoint)), nil
	default:
		return "", fmt.Errorf("instruction %s is not supported", cmd.Name())
	}
	return historyText(cmd), nil
}

// shell is the shell of RUN, CMD and ENTRYPOINT in shell form.
func (p *planner) shell() []string {
	return shellOf(p.cfg.Config, p.cfg.OS)
}

func shellOf(cfg v1.Config, os string) []string {
	if len(cfg.Shell) > 0 {
		return append([]string(nil), cfg.Shell...)
	}
	return dockerfile.DefaultShell(os)
}

// setWorkdir sets the config's working directory and returns it.
func (p *planner) setWorkdir(c *instructions.WorkdirCommand) string {
	wd := c.Path
	if !path.IsAbs(wd) {
		base := p.cfg.Config.WorkingDir
		if base == "" {
			base = "/"
		}
		wd = path.Join(base, wd)
	}
	wd = path.Clean(wd)
	p.cfg.Config.WorkingDir = wd
	return wd
}

// keyStep chains the step's key from the stage's so far. A step that
// cannot be keyed ends the chain: the steps after it are not cached.
func (p *planner) keyStep(ctx context.Context, st *step) {
	if p.key == "" {
		return
	}
	in, ok, err := st.action.input(ctx, p, st)
	if err != nil || !ok {
		p.key, st.keyErr = "", err
		return
	}
	p.key = p.key.Next(in)
	st.key = p.key
}

// stepInput is what every keyed step depends on besides its own inputs:
// the instruction text after expansion and the working directory and user
// it runs with.
func stepInput(st *step, text string) cache.StepInput {
	return cache.StepInput{Instruction: strings.Join([]string{text, "workdir=" + st.config.WorkingDir, "user=" + st.config.User}, "\x00")}
}

// workdirAction creates a WORKDIR's directory.
type workdirAction struct{ path string }

func (a workdirAction) input(_ context.Context, _ *planner, st *step) (cache.StepInput, bool, error) {
	return stepInput(st, historyText(st.cmd)), true, nil
}

// copyAction is a COPY or ADD.
type copyAction struct{ spec copySpec }

// runAction is a RUN with the ARG and ENV state it runs with.
type runAction struct {
	cmd *instructions.RunCommand
	// env is the command's environment; buildArgs the build args in it,
	// for the history; shell the shell of a command in shell form.
	env, buildArgs, shell []string
	// keyEnv is the ARG and ENV state the cache key holds.
	keyEnv []string
}

// layerUse is what a stage's new layers are for, which the stage graph
// decides before anything runs.
type layerUse int

const (
	// layersPushed: the stage is the target or one of the stages the
	// target is built FROM, so its layers are in the image the build
	// returns: written, compressed and, when the build pushes, uploaded
	// as soon as they are written.
	layersPushed layerUse = iota
	// layersForImage: the stage's image is the base of a later stage
	// that is not pushed, or its steps go to the layer cache, so its
	// layers are written and compressed as usual.
	layersForImage
	// layersForLocalReads: only COPY --from or RUN --mount from= of later
	// stages read the stage, and they read its image, because the stages
	// share one root that moves on (in-place mode). Its layers are plain
	// tars that this build alone extracts: compressing them would only
	// cost time.
	layersForLocalReads
	// noLayers: nothing reads the stage's image. Later stages read its
	// files from its root, which stays until the build ends (chroot
	// mode), or nothing reads it at all (an unused stage built anyway),
	// so its steps write no layer.
	noLayers
)

// layerUses decides, for each planned stage, what its layers are for. The
// target's layers, and those of the stages it is built FROM, are pushed.
// A stage's image is also needed when it is a later stage's base (whose
// image holds the base's layers, and which unpacks its root from them);
// with a layer cache, every stage's steps are written to it. The other
// stages are read, if at all, through their files.
func layerUses(plan *dockerfile.Plan, sharedRoot, layerCache bool) map[int]layerUse {
	pushed := map[int]bool{}
	for i := plan.Target; i >= 0 && !pushed[i]; {
		pushed[i] = true
		if s := plan.Stage(i); s != nil {
			i = s.BaseStage
		} else {
			i = -1
		}
	}
	image := map[int]bool{plan.Target: true}
	readFrom := map[int]bool{}
	for _, s := range plan.Stages {
		if s.BaseStage >= 0 {
			image[s.BaseStage] = true
		}
		for _, dep := range s.DependsOn {
			if dep != s.BaseStage {
				readFrom[dep] = true
			}
		}
	}
	uses := make(map[int]layerUse, len(plan.Stages))
	for _, s := range plan.Stages {
		switch {
		case pushed[s.Index]:
			uses[s.Index] = layersPushed
		case image[s.Index] || layerCache:
			uses[s.Index] = layersForImage
		case sharedRoot && readFrom[s.Index]:
			uses[s.Index] = layersForLocalReads
		default:
			uses[s.Index] = noLayers
		}
	}
	return uses
}
