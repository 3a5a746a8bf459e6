package dockerfile

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/containerd/platforms"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Scratch is the base name of a stage that starts from an empty filesystem.
const Scratch = "scratch"

// PlanOptions are the build's inputs that decide what a Dockerfile means.
type PlanOptions struct {
	// BuildArgs are the --build-arg values. The caller resolves
	// `--build-arg NAME` (no value) from its environment beforehand.
	BuildArgs map[string]string
	// Target is the --target stage name; empty means the last stage.
	Target string
	// TargetPlatform and BuildPlatform feed the predefined TARGET* and
	// BUILD* args. A zero TargetPlatform means the build platform, and a
	// zero BuildPlatform means the platform Slipway runs on.
	TargetPlatform, BuildPlatform ocispec.Platform
	// SkipUnusedStages defaults to true, as in BuildKit: only the stages
	// the target needs are planned. False plans every stage.
	SkipUnusedStages *bool
}

func (o PlanOptions) skipUnused() bool {
	return o.SkipUnusedStages == nil || *o.SkipUnusedStages
}

func (o PlanOptions) platforms() (target, build ocispec.Platform) {
	build = o.BuildPlatform
	if build.OS == "" {
		build = platforms.DefaultSpec()
	}
	target = o.TargetPlatform
	if target.OS == "" {
		target = build
	}
	return target, build
}

// Plan is the part of a Dockerfile a build runs.
type Plan struct {
	// Stages are the stages to build, in dependency order: every stage
	// comes after the stages it depends on.
	Stages []PlannedStage
	// Target is the Index of the stage whose result is the image.
	Target int
	// Warnings are things BuildKit would warn about, e.g. a FROM that uses
	// an undefined ARG. Each starts with the file name and line.
	Warnings []string

	file        string
	escapeToken rune
	globalArgs  *envList
	stageNames  map[string]int
	stageCount  int
	declared    map[string]bool // global ARG names, with or without a value
}

// PlannedStage is one stage of a Plan. All stage references (Index,
// BaseStage, DependsOn) are positions in the Dockerfile's stage list.
type PlannedStage struct {
	Index int
	Name  string // as written after AS, lower-cased; empty if unnamed
	// Base is the expanded base image name, or "scratch", or the name of
	// the stage used as base.
	Base string
	// BaseStage is the index of the stage used as base, or -1 when Base is
	// an image or scratch.
	BaseStage int
	// Platform is FROM --platform, expanded; nil when not given.
	Platform *ocispec.Platform
	// Line is the line of the stage's FROM instruction, and SourceCode its
	// text, for logs.
	Line       int
	SourceCode string
	// Triggers are the ONBUILD instructions of the base stage, which
	// BuildKit runs first when a stage is built FROM another stage. The
	// ONBUILD triggers of a base image are in its config; read them with
	// ParseTriggers.
	Triggers []instructions.Command
	// Commands are the stage's instructions as parsed, not yet expanded:
	// expansion needs the stage's runtime environment (see Scope).
	Commands []instructions.Command
	// DependsOn are the earlier stages this stage needs: its base stage
	// and the stages named by COPY --from and RUN --mount from=, sorted.
	DependsOn []int
	// Images are the images (not stages) named by COPY --from and RUN
	// --mount from=, in order of first use, so the builder can pull them
	// early.
	Images []string
}

// Stage returns the planned stage with the given Dockerfile index, or nil
// if the plan does not build it.
func (p *Plan) Stage(index int) *PlannedStage {
	for i := range p.Stages {
		if p.Stages[i].Index == index {
			return &p.Stages[i]
		}
	}
	return nil
}

// StageRef resolves the value of COPY --from or RUN --mount from= as
// BuildKit does: a stage name (case-insensitive), or for COPY --from a
// stage index. ok is false when from names an image instead.
func (p *Plan) StageRef(from string, allowIndex bool) (index int, ok bool) {
	if allowIndex {
		if i, err := strconv.Atoi(from); err == nil && i >= 0 && i < p.stageCount {
			return i, true
		}
	}
	i, ok := p.stageNames[strings.ToLower(from)]
	return i, ok
}

// TriggerDeps returns the stages and images that the ONBUILD triggers of
// stage's base image (from ParseTriggers) read with COPY --from or RUN
// --mount from=. BuildKit adds these to the build once the base image is
// resolved; a builder must build any stage listed here that the plan
// skipped. A trigger may only name stages defined before stage.
func (p *Plan) TriggerDeps(stage *PlannedStage, triggers []instructions.Command) (stages []int, images []string, err error) {
	deps := map[int]bool{}
	probe := &PlannedStage{Index: stage.Index}
	loc := []parser.Range{{Start: parser.Position{Line: stage.Line}}}
	for _, cmd := range triggers {
		if err := p.addCommandDeps(probe, deps, cmd); err != nil {
			return nil, nil, errorAt(p.file, loc, fmt.Errorf("ONBUILD trigger of base image %s: %w", stage.Base, errors.Unwrap(err)))
		}
	}
	for idx := range deps {
		if idx >= stage.Index {
			return nil, nil, errorAt(p.file, loc, fmt.Errorf("ONBUILD trigger of base image %s reads from stage %d, which is not defined before this stage", stage.Base, idx))
		}
	}
	return sortedKeys(deps), probe.Images, nil
}

// GlobalArgs returns the resolved ARGs of the global scope (before the
// first FROM) and the predefined platform args, as KEY=value.
func (p *Plan) GlobalArgs() []string { return p.globalArgs.toSlice() }

// Plan resolves the global ARGs, expands each stage's FROM (base name and
// --platform), finds the target and returns the stages it needs in
// dependency order. A stage is needed if it is the target, the base of a
// needed stage, or named by COPY --from or RUN --mount from= in a needed
// stage.
func (d *Dockerfile) Plan(opts PlanOptions) (*Plan, error) {
	// Fresh commands for every plan: expansion rewrites them in place.
	stages, metaArgs, err := d.reparse()
	if err != nil {
		return nil, err
	}
	p := &Plan{
		file:        d.Name,
		escapeToken: d.EscapeToken,
		stageNames:  map[string]int{},
		stageCount:  len(stages),
	}
	for i, st := range stages {
		if st.Name != "" {
			// Later stages win, as in BuildKit, which only warns on
			// duplicate names.
			p.stageNames[strings.ToLower(st.Name)] = i
		}
	}

	target := len(stages) - 1
	if opts.Target != "" {
		i, ok := p.stageNames[strings.ToLower(opts.Target)]
		if !ok {
			return nil, &Error{File: d.Name, Err: unknownTarget(opts.Target, stages)}
		}
		target = i
	}
	p.Target = target

	tp, bp := opts.platforms()
	// TARGETSTAGE is --target as the user wrote it, else the last stage's
	// name, as in BuildKit.
	targetName := opts.Target
	if targetName == "" {
		targetName = stages[target].Name
	}
	p.globalArgs = predefinedArgs(tp, bp, opts.BuildArgs, targetName)
	lex := shell.NewLex(d.EscapeToken)
	p.declared = map[string]bool{}
	for _, cmd := range metaArgs {
		for _, kv := range cmd.Args {
			p.declared[kv.Key] = true
			if v, ok := opts.BuildArgs[kv.Key]; ok {
				p.globalArgs.set(kv.Key, v)
				continue
			}
			if kv.Value == nil {
				continue
			}
			v, _, err := lex.ProcessWord(*kv.Value, p.globalArgs)
			if err != nil {
				return nil, errorAt(d.Name, cmd.Location(), err)
			}
			p.globalArgs.set(kv.Key, v)
		}
	}

	all := make([]PlannedStage, len(stages))
	for i, st := range stages {
		ps, err := p.planStage(lex, stages, i, &st)
		if err != nil {
			return nil, err
		}
		all[i] = ps
	}
	// Triggers of a base stage are known only once the base is planned;
	// bases are always earlier stages, so one pass in order suffices.
	for i := range all {
		if b := all[i].BaseStage; b >= 0 {
			if err := p.addTriggers(&all[i], &all[b], stages[b].Commands); err != nil {
				return nil, err
			}
		}
	}

	needed := make([]bool, len(all))
	if opts.skipUnused() {
		var visit func(int)
		visit = func(i int) {
			if needed[i] {
				return
			}
			needed[i] = true
			for _, dep := range all[i].DependsOn {
				visit(dep)
			}
		}
		visit(target)
	} else {
		for i := range needed {
			needed[i] = true
		}
	}
	for i := range all {
		if !needed[i] {
			continue
		}
		if err := p.checkOrder(&all[i], stages); err != nil {
			return nil, err
		}
		p.Stages = append(p.Stages, all[i])
	}
	p.warnUnconsumed(opts.BuildArgs, metaArgs)
	return p, nil
}

// warnUnconsumed reports build args no ARG of the built stages declares,
// like docker's "One or more build-args [...] were not consumed", because a
// mistyped --build-arg otherwise changes nothing without a word.
func (p *Plan) warnUnconsumed(buildArgs map[string]string, metaArgs []instructions.ArgCommand) {
	used := map[string]bool{}
	declare := func(cmd instructions.Command) {
		if a, ok := cmd.(*instructions.ArgCommand); ok {
			for _, kv := range a.Args {
				used[kv.Key] = true
			}
		}
	}
	for i := range metaArgs {
		declare(&metaArgs[i])
	}
	for _, st := range p.Stages {
		for _, c := range st.Triggers {
			declare(c)
		}
		for _, c := range st.Commands {
			declare(c)
		}
	}
	var unused []string
	for k := range buildArgs {
		if used[k] || p.globalArgs.has(k) || alwaysConsumed(k) {
			continue
		}
		unused = append(unused, k)
	}
	if len(unused) > 0 {
		slices.Sort(unused)
		p.Warnings = append(p.Warnings, (&Error{File: p.file, Err: fmt.Errorf(
			"build-args [%s] were not consumed: no ARG declares them in the stages built", strings.Join(unused, " "))}).Error())
	}
}

// alwaysConsumed are build args BuildKit uses without an ARG.
func alwaysConsumed(k string) bool {
	switch strings.ToLower(k) {
	case "http_proxy", "https_proxy", "ftp_proxy", "no_proxy", "all_proxy":
		return true
	}
	return k == "SOURCE_DATE_EPOCH" || strings.HasPrefix(k, "BUILDKIT_")
}

func (d *Dockerfile) reparse() ([]instructions.Stage, []instructions.ArgCommand, error) {
	if len(d.source) == 0 {
		return nil, nil, errors.New("dockerfile: Plan needs a Dockerfile made by Parse")
	}
	res, err := parser.Parse(bytes.NewReader(d.source))
	if err != nil {
		return nil, nil, locatedError(d.Name, err)
	}
	stages, metaArgs, err := instructions.Parse(res.AST, nil)
	if err != nil {
		return nil, nil, locatedError(d.Name, err)
	}
	return stages, metaArgs, nil
}

func unknownTarget(target string, stages []instructions.Stage) error {
	var names []string
	for _, st := range stages {
		if st.Name != "" {
			names = append(names, st.Name)
		}
	}
	if len(names) == 0 {
		return fmt.Errorf("target stage %q could not be found: no stage has a name (name one with FROM ... AS %s)", target, target)
	}
	return fmt.Errorf("target stage %q could not be found; the stages are: %s", target, strings.Join(names, ", "))
}

func (p *Plan) planStage(lex *shell.Lex, stages []instructions.Stage, i int, st *instructions.Stage) (PlannedStage, error) {
	ps := PlannedStage{
		Index:      i,
		Name:       st.Name,
		BaseStage:  -1,
		Commands:   st.Commands,
		SourceCode: st.SourceCode,
	}
	if len(st.Location) > 0 {
		ps.Line = st.Location[0].Start.Line
	}
	res, err := lex.ProcessWordWithMatches(st.BaseName, p.globalArgs)
	if err != nil {
		return ps, errorAt(p.file, st.Location, err)
	}
	p.warnUnmatched(st.Location, "FROM", res.Unmatched)
	if res.Result == "" {
		return ps, errorAt(p.file, st.Location, fmt.Errorf("base name (%s) should not be blank: define the ARGs it uses before the first FROM or pass them with --build-arg", st.BaseName))
	}
	ps.Base = res.Result
	// Only earlier stages can be a base, and the match is exact: BuildKit
	// looks the expanded name up among the stages added so far.
	for j := i - 1; j >= 0; j-- {
		if stages[j].Name != "" && stages[j].Name == ps.Base {
			ps.BaseStage = j
			break
		}
	}

	if st.Platform != "" {
		res, err := lex.ProcessWordWithMatches(st.Platform, p.globalArgs)
		if err != nil {
			return ps, errorAt(p.file, st.Location, fmt.Errorf("failed to process arguments for platform %s: %w", st.Platform, err))
		}
		p.warnUnmatched(st.Location, "FROM --platform", res.Unmatched)
		if res.Result == "" {
			return ps, errorAt(p.file, st.Location, fmt.Errorf("empty platform value from expression %s", st.Platform))
		}
		plat, err := platforms.Parse(res.Result)
		if err != nil {
			return ps, errorAt(p.file, st.Location, fmt.Errorf("failed to parse platform %s: %w", st.Platform, err))
		}
		ps.Platform = &plat
	}

	deps := map[int]bool{}
	if ps.BaseStage >= 0 {
		deps[ps.BaseStage] = true
	}
	for _, cmd := range st.Commands {
		if err := p.addCommandDeps(&ps, deps, cmd); err != nil {
			return ps, err
		}
	}
	ps.DependsOn = sortedKeys(deps)
	return ps, nil
}

// addCommandDeps records the stages and images a command reads from.
func (p *Plan) addCommandDeps(ps *PlannedStage, deps map[int]bool, cmd instructions.Command) error {
	switch c := cmd.(type) {
	case *instructions.CopyCommand:
		if c.From == "" {
			return nil
		}
		// BuildKit checks this by expanding with an empty environment: any
		// change means the value holds a variable.
		res, err := shell.NewLex(p.escapeToken).ProcessWordWithMatches(c.From, shell.EnvsFromSlice(nil))
		if err != nil || res.Result != c.From {
			return errorAt(p.file, c.Location(), errors.New("variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround"))
		}
		if idx, err := strconv.Atoi(c.From); err == nil {
			if idx < 0 || idx >= p.stageCount {
				return errorAt(p.file, c.Location(), fmt.Errorf("invalid stage index %d", idx))
			}
			deps[idx] = true
			return nil
		}
		if idx, ok := p.stageNames[strings.ToLower(c.From)]; ok {
			deps[idx] = true
			return nil
		}
		ps.addImage(c.From)
	case *instructions.RunCommand:
		for _, m := range instructions.GetMounts(c) {
			if m.From == "" {
				continue
			}
			// BuildKit resolves mount sources by name only: a number here
			// names an image, unlike COPY --from.
			if idx, ok := p.stageNames[strings.ToLower(m.From)]; ok {
				deps[idx] = true
				continue
			}
			ps.addImage(m.From)
		}
	}
	return nil
}

func (ps *PlannedStage) addImage(ref string) {
	if !slices.Contains(ps.Images, ref) {
		ps.Images = append(ps.Images, ref)
	}
}

func (p *Plan) addTriggers(ps, base *PlannedStage, baseCommands []instructions.Command) error {
	deps := map[int]bool{}
	for _, dep := range ps.DependsOn {
		deps[dep] = true
	}
	for _, cmd := range baseCommands {
		ob, ok := cmd.(*instructions.OnbuildCommand)
		if !ok {
			continue
		}
		tc, err := parseTrigger(ob.Expression)
		if err == nil {
			err = checkCommand(tc)
		}
		if err != nil {
			// Report the trigger where BuildKit does: at the FROM that
			// fires it, naming the ONBUILD line that defined it.
			return errorAt(p.file, []parser.Range{{Start: parser.Position{Line: ps.Line}}},
				fmt.Errorf("ONBUILD trigger from stage %q (line %d): %w", base.Name, lineOf(ob), err))
		}
		if err := p.addCommandDeps(ps, deps, tc); err != nil {
			return err
		}
		ps.Triggers = append(ps.Triggers, tc)
	}
	ps.DependsOn = sortedKeys(deps)
	return nil
}

// checkOrder enforces BuildKit's rule that a stage can only read from
// stages defined before it; BuildKit reports this only for stages it
// builds, so the check runs on needed stages only.
func (p *Plan) checkOrder(ps *PlannedStage, stages []instructions.Stage) error {
	current := ps.Name
	if current == "" {
		current = fmt.Sprintf("stage-%d", ps.Index)
	}
	check := func(cmd instructions.Command) error {
		switch c := cmd.(type) {
		case *instructions.CopyCommand:
			if c.From == "" {
				return nil
			}
			if idx, ok := p.StageRef(c.From, true); ok && idx >= ps.Index {
				return errorAt(p.file, c.Location(), fmt.Errorf("cannot copy from stage %q, it needs to be defined before current stage %q", c.From, current))
			}
		case *instructions.RunCommand:
			for _, m := range instructions.GetMounts(c) {
				if m.From == "" {
					continue
				}
				if idx, ok := p.StageRef(m.From, false); ok && idx >= ps.Index {
					// The target is not known before expansion, so unlike
					// BuildKit the message cannot name it.
					return errorAt(p.file, c.Location(), fmt.Errorf("cannot mount from stage %q, stage needs to be defined before current command", m.From))
				}
			}
		}
		return nil
	}
	for _, cmd := range ps.Triggers {
		if err := check(cmd); err != nil {
			return err
		}
	}
	for _, cmd := range stages[ps.Index].Commands {
		if err := check(cmd); err != nil {
			return err
		}
	}
	return nil
}

func (p *Plan) warnUnmatched(loc []parser.Range, what string, unmatched map[string]struct{}) {
	for _, k := range sortedStrings(unmatched) {
		if p.declared[k] {
			// Declared without a value: empty on purpose, as BuildKit's
			// UndefinedArgInFrom check sees it.
			continue
		}
		p.Warnings = append(p.Warnings, errorAt(p.file, loc,
			fmt.Errorf("%s uses ARG %q, which is not defined before the first FROM; it expands to an empty string", what, k)).Error())
	}
}

func lineOf(cmd instructions.Command) int {
	if loc := cmd.Location(); len(loc) > 0 {
		return loc[0].Start.Line
	}
	return 0
}

func sortedKeys(m map[int]bool) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func sortedStrings(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// predefinedArgs are the platform args and TARGETSTAGE, which BuildKit puts
// in the global scope; a stage sees them only after declaring them with ARG.
func predefinedArgs(tp, bp ocispec.Platform, overrides map[string]string, target string) *envList {
	if target == "" {
		target = "default"
	}
	defs := [...][2]string{
		{"BUILDPLATFORM", platforms.Format(bp)},
		{"BUILDOS", bp.OS},
		{"BUILDOSVERSION", bp.OSVersion},
		{"BUILDARCH", bp.Architecture},
		{"BUILDVARIANT", bp.Variant},
		{"TARGETPLATFORM", platforms.FormatAll(tp)},
		{"TARGETOS", tp.OS},
		{"TARGETOSVERSION", tp.OSVersion},
		{"TARGETARCH", tp.Architecture},
		{"TARGETVARIANT", tp.Variant},
		{"TARGETSTAGE", target},
	}
	env := &envList{}
	for _, kv := range defs {
		v := kv[1]
		if ov, ok := overrides[kv[0]]; ok {
			v = ov
		}
		env.set(kv[0], v)
	}
	return env
}
