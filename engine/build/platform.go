package build

import (
	"fmt"

	"github.com/containerd/platforms"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/slipway-build/slipway/engine/dockerfile"
	"github.com/slipway-build/slipway/engine/run"
)

// stagePlatform is the platform a planned stage's commands run for: its
// FROM --platform, else that of the stage it is built FROM, else the
// target platform.
func (b *builder) stagePlatform(ps *dockerfile.PlannedStage) v1.Platform {
	for ps != nil {
		if ps.Platform != nil {
			return fromOCIPlatform(platforms.Normalize(*ps.Platform))
		}
		if ps.BaseStage < 0 {
			break
		}
		ps = b.plan.Stage(ps.BaseStage)
	}
	return b.opts.Platform
}

// checkEmulation fails the build before anything runs when a stage with a
// RUN is for a platform this machine can neither run nor emulate, and
// says which emulator runs the others.
func (b *builder) checkEmulation() error {
	if b.opts.Executor == nil {
		return nil
	}
	dir := b.opts.BinfmtDir
	if dir == "" {
		dir = run.BinfmtDir
	}
	host := toOCIPlatform(hostPlatform())
	checked := map[string]bool{}
	for i := range b.plan.Stages {
		ps := &b.plan.Stages[i]
		if !hasRun(ps.Triggers) && !hasRun(ps.Commands) {
			continue
		}
		p := b.stagePlatform(ps)
		key := platforms.Format(toOCIPlatform(p))
		if checked[key] {
			continue
		}
		checked[key] = true
		em, err := run.CheckPlatform(dir, toOCIPlatform(p), host)
		if err != nil {
			return fmt.Errorf("stage %s (line %d): %w", stageName(ps), ps.Line, err)
		}
		switch {
		case em.Unknown:
			b.opts.Log.Warn("RUN for another platform relies on the node's binfmt_misc handler, which this container cannot see",
				"platform", key, "host", platforms.Format(host), "binfmt_misc", dir)
		case !em.Native:
			b.opts.Log.Info("RUN for "+key+" runs under emulation", "handler", em.Handler, "interpreter", em.Interpreter)
		}
	}
	return nil
}

// foreignRunError explains an exec format error of a RUN in a stage for
// another platform; other errors pass unchanged.
func (s *stage) foreignRunError(err error) error {
	host, target := toOCIPlatform(hostPlatform()), toOCIPlatform(s.b.stagePlatform(s.ps))
	if target.OS == "" || run.RunsNatively(host, target) {
		return err
	}
	return &run.PlatformError{
		Target: platforms.Format(target),
		Host:   platforms.Format(host),
		Reason: "the kernel could not execute its binaries (" + err.Error() + "): no binfmt_misc handler for them is registered on this node",
		Err:    err,
	}
}

func hasRun(cmds []instructions.Command) bool {
	for _, c := range cmds {
		if _, ok := c.(*instructions.RunCommand); ok {
			return true
		}
	}
	return false
}

func stageName(ps *dockerfile.PlannedStage) string {
	if ps.Name != "" {
		return ps.Name
	}
	return fmt.Sprint(ps.Index)
}
