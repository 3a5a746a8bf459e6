package dockerfile

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// DefaultPath is the PATH BuildKit gives a Linux stage whose image sets
// none, both in the image config and for RUN.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// nonEnvArgs are ARGs BuildKit never puts in a RUN's environment.
var nonEnvArgs = map[string]bool{
	"BUILDKIT_SBOM_SCAN_CONTEXT": true,
	"BUILDKIT_SBOM_SCAN_STAGE":   true,
}

// Scope tracks one stage's ARG and ENV state and expands words with it.
//
// The rules are BuildKit's (dockerfile2llb dispatchArg/dispatchEnv):
//   - ENV and ARG values live in one ordered environment, which RUN sees
//     and words are expanded with. A later ENV or ARG of the same name
//     replaces an earlier one, whichever kind either is: ENV after ARG
//     wins, and ARG after ENV (including an ENV of the base image) wins.
//     kaniko let image ENV shadow a later ARG (its issues #3344, #1826).
//   - An ARG takes, in order: the --build-arg value; else its own default,
//     expanded with the environment so far; else, when it has no default,
//     the value of the global ARG (or predefined arg) of that name. With
//     none of these it stays unset: it is not in RUN's environment at all.
//   - Predefined args (TARGETARCH, BUILDPLATFORM, TARGETSTAGE, ...) are in
//     the global scope only; a stage sees them after `ARG TARGETARCH`.
//   - ARGs never reach the image config; only ENV does.
//   - Proxy build args (http_proxy, HTTPS_PROXY, no_proxy, ...) reach RUN
//     even when not declared, in both spellings, and stay out of the image.
//
// A Scope is not safe for concurrent use; Scopes of different stages may
// be used in parallel.
type Scope struct {
	file      string
	escape    rune
	lex       *shell.Lex
	globals   *envList
	buildArgs map[string]string
	proxy     []string
	config    []string // image config Env, replaced in place as docker does
	env       *envList // what RUN sees and what words expand with
	args      []instructions.KeyValuePairOptional
	resolved  map[*instructions.ArgCommand]bool
	targetOS  string
}

// NewScope starts the scope of a stage whose base is an image (or scratch)
// with the given config Env. For a stage built FROM another stage, use
// the base stage's scope's Derive instead, which carries over its ARGs as
// BuildKit does.
func NewScope(plan *Plan, stage *PlannedStage, imageEnv []string, opts PlanOptions) *Scope {
	tp, _ := opts.platforms()
	osName := tp.OS
	if stage != nil && stage.Platform != nil {
		osName = stage.Platform.OS
	}
	s := &Scope{
		file:      plan.file,
		escape:    plan.escapeToken,
		globals:   plan.globalArgs,
		buildArgs: opts.BuildArgs,
		proxy:     proxyEnv(opts.BuildArgs),
		config:    slices.Clone(imageEnv),
		env:       &envList{},
		resolved:  map[*instructions.ArgCommand]bool{},
		targetOS:  osName,
	}
	s.lex = shell.NewLex(s.escape)
	if _, ok := lookup(s.config, "PATH"); !ok && osName != "windows" {
		s.config = append(s.config, "PATH="+DefaultPath)
	}
	for _, kv := range s.config {
		k, v, _ := strings.Cut(kv, "=")
		s.env.set(k, v)
	}
	return s
}

// Derive returns the starting scope of a stage built FROM the stage this
// scope belongs to: its ENV and, as in BuildKit, its ARG values too.
func (s *Scope) Derive() *Scope {
	c := *s
	c.lex = shell.NewLex(s.escape)
	c.config = slices.Clone(s.config)
	c.env = s.env.clone()
	c.args = slices.Clone(s.args)
	c.resolved = map[*instructions.ArgCommand]bool{}
	return &c
}

// Expand expands the variables in cmd in place, with BuildKit's rules for
// which fields expand: for example COPY sources, destination, --chown and
// --chmod do, RUN's command line and CMD do not (the shell does that), and
// COPY heredoc bodies do unless their delimiter is quoted. An ARG is
// resolved to its final value (build arg, default or global). Call Apply
// afterwards to record an ARG's or ENV's effect.
func (s *Scope) Expand(cmd instructions.Command) error {
	if err := s.expand(cmd); err != nil {
		return errorAt(s.file, cmd.Location(), err)
	}
	return nil
}

func (s *Scope) expand(cmd instructions.Command) error {
	switch c := cmd.(type) {
	case *instructions.ArgCommand:
		return s.resolveArg(c)
	case *instructions.ExposeCommand:
		// EXPOSE splits each word after expansion ("EXPOSE $PORTS").
		var ports []string
		for _, p := range c.Ports {
			words, err := s.lex.ProcessWords(p, s.env)
			if err != nil {
				return err
			}
			ports = append(ports, words...)
		}
		c.Ports = ports
		return nil
	}
	if ex, ok := cmd.(instructions.SupportsSingleWordExpansion); ok {
		if err := ex.Expand(s.word); err != nil {
			return err
		}
	}
	if c, ok := cmd.(*instructions.RunCommand); ok {
		// Mount types are known only now: BuildKit parses them after
		// expansion, since `type=$T` is allowed.
		for _, m := range instructions.GetMounts(c) {
			if m.Type == instructions.MountTypeSSH {
				return errors.New("RUN --mount=type=ssh is not supported: Slipway forwards no SSH agent; pass credentials with --mount=type=secret instead")
			}
		}
	}
	if ex, ok := cmd.(instructions.SupportsSingleWordExpansionRaw); ok {
		// Heredoc bodies expand like a shell heredoc: variables and
		// backslash escapes, but quotes are kept as written.
		raw := shell.NewLex('\\')
		raw.SkipProcessQuotes = true
		err := ex.ExpandRaw(func(word string) (string, error) {
			out, _, err := raw.ProcessWord(word, s.env)
			return out, err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *Scope) word(w string) (string, error) {
	out, _, err := s.lex.ProcessWord(w, s.env)
	return out, err
}

// resolveArg gives each ARG of c its final value, following BuildKit's
// dispatchArg. It runs once per command so that Apply after Expand does
// not mistake a resolved value for a default.
func (s *Scope) resolveArg(c *instructions.ArgCommand) error {
	if s.resolved[c] {
		return nil
	}
	for i, arg := range c.Args {
		bv, hasValue := s.buildArgs[arg.Key]
		switch {
		case hasValue:
			v := bv
			arg.Value = &v
		case arg.Value != nil:
			v, _, err := s.lex.ProcessWord(*arg.Value, s.env)
			if err != nil {
				return err
			}
			arg.Value = &v
		default:
			if v, ok := s.globals.Get(arg.Key); ok {
				arg.Value = &v
			}
		}
		c.Args[i] = arg
	}
	s.resolved[c] = true
	return nil
}

// Apply records the effect of an ARG or ENV command on the scope; it is a
// no-op for other commands. Call it after Expand.
func (s *Scope) Apply(cmd instructions.Command) {
	switch c := cmd.(type) {
	case *instructions.EnvCommand:
		for _, kv := range c.Env {
			s.env.set(kv.Key, kv.Value)
			s.config = setEnv(s.config, kv.Key, kv.Value)
		}
	case *instructions.ArgCommand:
		// An ARG not passed through Expand is resolved here so that Apply
		// alone is still right; if its default fails to expand, the ARG is
		// left unset here and Expand is where that error surfaces.
		if !s.resolved[c] {
			if err := s.resolveArg(c); err != nil {
				return
			}
		}
		for _, arg := range c.Args {
			if arg.Value != nil && !nonEnvArgs[arg.Key] {
				s.env.set(arg.Key, *arg.Value)
			}
			s.args = append(s.args, arg)
		}
	}
}

// ConfigEnv is the image config Env after the stage's ENVs. ARGs are not
// in it, as in docker.
func (s *Scope) ConfigEnv() []string { return slices.Clone(s.config) }

// RunEnv is the environment a RUN sees: the config env and the ARGs in
// scope in one list where the latest definition of a name wins, then the
// proxy build args, then PATH if nothing set it.
func (s *Scope) RunEnv() []string {
	env := s.env.clone()
	for _, kv := range s.proxy {
		k, v, _ := strings.Cut(kv, "=")
		env.set(k, v)
	}
	if _, ok := env.Get("PATH"); !ok && s.targetOS != "windows" {
		env.set("PATH", DefaultPath)
	}
	return env.toSlice()
}

// Word expands one word with the current scope, e.g. for the builder's own
// needs.
func (s *Scope) Word(w string) (string, error) { return s.word(w) }

// Lookup returns the value a variable has in the scope (ENV or ARG).
func (s *Scope) Lookup(key string) (string, bool) { return s.env.Get(key) }

// BuildArgs returns the ARGs declared in the stage so far as KEY=value,
// each once, with its value in the current environment (so a later ENV of
// the same name shows), in declaration order. BuildKit records them in a
// RUN's history entry ("|2 A=1 B=2 /bin/sh -c ...") and in its cache key.
func (s *Scope) BuildArgs() []string {
	var out []string
	idx := map[string]int{}
	for _, arg := range s.args {
		v, ok := s.env.Get(arg.Key)
		if !ok {
			v = arg.ValueString()
		}
		if i, ok := idx[arg.Key]; ok {
			out[i] = arg.Key + "=" + v
			continue
		}
		idx[arg.Key] = len(out)
		out = append(out, arg.Key+"="+v)
	}
	return out
}

// proxyEnv returns the proxy variables BuildKit passes to every RUN from
// the build args, whatever their case, in both spellings.
func proxyEnv(buildArgs map[string]string) []string {
	keys := make([]string, 0, len(buildArgs))
	for k := range buildArgs {
		keys = append(keys, k)
	}
	// Sorted so that when both spellings are given the choice is stable
	// (BuildKit sorts too: the lower-case one wins).
	sort.Strings(keys)
	vals := map[string]string{}
	for _, k := range keys {
		switch n := strings.ToLower(k); n {
		case "http_proxy", "https_proxy", "ftp_proxy", "no_proxy", "all_proxy":
			vals[n] = buildArgs[k]
		}
	}
	var out []string
	for _, n := range []string{"http_proxy", "https_proxy", "ftp_proxy", "no_proxy", "all_proxy"} {
		if v := vals[n]; v != "" {
			out = append(out, strings.ToUpper(n)+"="+v, n+"="+v)
		}
	}
	return out
}

func lookup(env []string, key string) (string, bool) {
	for _, kv := range env {
		if k, v, _ := strings.Cut(kv, "="); k == key {
			return v, true
		}
	}
	return "", false
}

// setEnv replaces key in place or appends it, which is how docker orders
// the config Env.
func setEnv(env []string, key, value string) []string {
	for i, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			env[i] = key + "=" + value
			return env
		}
	}
	return append(env, key+"="+value)
}

// envList is an ordered environment where setting a name again moves it to
// the end, matching BuildKit's llb.EnvList, so that RunEnv lists variables
// in the order BuildKit passes them. It implements shell.EnvGetter.
type envList struct {
	keys []string
	vals map[string]string
}

var _ shell.EnvGetter = (*envList)(nil)

func (e *envList) set(k, v string) {
	if e.vals == nil {
		e.vals = map[string]string{}
	}
	if _, ok := e.vals[k]; ok {
		e.keys = slices.DeleteFunc(e.keys, func(x string) bool { return x == k })
	}
	e.keys = append(e.keys, k)
	e.vals[k] = v
}

func (e *envList) has(k string) bool {
	_, ok := e.vals[k]
	return ok
}

func (e *envList) Get(k string) (string, bool) {
	v, ok := e.vals[k]
	return v, ok
}

func (e *envList) Keys() []string { return slices.Clone(e.keys) }

func (e *envList) clone() *envList {
	c := &envList{keys: slices.Clone(e.keys), vals: make(map[string]string, len(e.vals))}
	for k, v := range e.vals {
		c.vals[k] = v
	}
	return c
}

func (e *envList) toSlice() []string {
	out := make([]string, 0, len(e.keys))
	for _, k := range e.keys {
		out = append(out, fmt.Sprintf("%s=%s", k, e.vals[k]))
	}
	return out
}
