package dockerfile

import (
	"reflect"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

func TestWordExpansion(t *testing.T) {
	src := "FROM scratch\nENV FOO=bar EMPTY= PATHLIKE=/a/b/c.tar.gz\n"
	p := mustPlan(t, src, PlanOptions{})
	s := runPlan(t, p, PlanOptions{}, nil)[0].scope

	tests := []struct {
		word, want string
		wantErr    string
	}{
		{"$FOO", "bar", ""},
		{"${FOO}", "bar", ""},
		{"x${FOO}y", "xbary", ""},
		{"$FOO-x", "bar-x", ""},
		{"$UNSET", "", ""},
		{"${UNSET:-def}", "def", ""},
		{"${EMPTY:-def}", "def", ""},
		{"${EMPTY-def}", "", ""},
		{"${UNSET-def}", "def", ""},
		{"${FOO:-def}", "bar", ""},
		{"${FOO:+alt}", "alt", ""},
		{"${EMPTY:+alt}", "", ""},
		{"${EMPTY+alt}", "alt", ""},
		{"${UNSET:+alt}", "", ""},
		{"${UNSET:-$FOO}", "bar", ""},
		{`\$FOO`, "$FOO", ""},
		{`\${FOO}`, "${FOO}", ""},
		{`'$FOO'`, "$FOO", ""},
		{`"$FOO"`, "bar", ""},
		{`"'$FOO'"`, "'bar'", ""},
		{`a\ b`, "a b", ""},
		{"${PATHLIKE#*/}", "a/b/c.tar.gz", ""},
		{"${PATHLIKE##*/}", "c.tar.gz", ""},
		{"${PATHLIKE%.*}", "/a/b/c.tar", ""},
		{"${PATHLIKE%%.*}", "/a/b/c", ""},
		{"$", "$", ""},
		{"${UNSET:?needs a value}", "", "UNSET: needs a value"},
		{"${UNSET?}", "", "UNSET: is not allowed to be unset"},
		{"${FOO", "", "unsupported modifier"},
	}
	for _, tt := range tests {
		t.Run(tt.word, func(t *testing.T) {
			got, err := s.Word(tt.word)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Word(%q) = %q, %v; want error containing %q", tt.word, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Word(%q): %v", tt.word, err)
			}
			if got != tt.want {
				t.Errorf("Word(%q) = %q, want %q", tt.word, got, tt.want)
			}
		})
	}
}

func TestExpansionWithBacktickEscape(t *testing.T) {
	src := "# escape=`\nFROM scratch\nENV FOO=bar\nWORKDIR C:\\`$FOO\\$FOO\n"
	p := mustPlan(t, src, PlanOptions{})
	runPlan(t, p, PlanOptions{}, nil)
	wd := p.Stages[0].Commands[1].(*instructions.WorkdirCommand)
	if wd.Path != `C:\$FOO\bar` {
		t.Errorf("WORKDIR = %q, want %q", wd.Path, `C:\$FOO\bar`)
	}
}

// Which fields expand is BuildKit's choice, made per instruction.
func TestExpandInstructions(t *testing.T) {
	src := `FROM scratch
ENV DIR=/srv U=app PORT=8080 PORTS="80 443/udp" SIG=SIGQUIT
ARG MODE=0755
WORKDIR $DIR/work
USER ${U}:${U}
COPY --chown=$U:$U --chmod=$MODE src/$U/ $DIR/
ADD --chown=$U --checksum=${SUM:-sha256:00} https://example.invalid/$U.tgz $DIR/
LABEL org.example.dir=$DIR "$U"=yes
EXPOSE $PORT $PORTS
VOLUME $DIR/data ["$DIR/logs"]
STOPSIGNAL $SIG
ENV DERIVED=$DIR/derived
RUN echo $DIR
CMD echo $DIR
ENTRYPOINT ["$DIR"]
SHELL ["/bin/$U"]
ONBUILD RUN echo $DIR
RUN --mount=type=cache,target=$DIR/cache,id=$U echo
`
	p := mustPlan(t, src, PlanOptions{})
	s := runPlan(t, p, PlanOptions{}, nil)[0].scope
	cmds := p.Stages[0].Commands
	at := func(i int) instructions.Command { return cmds[i] }

	if c := at(2).(*instructions.WorkdirCommand); c.Path != "/srv/work" {
		t.Errorf("WORKDIR %q", c.Path)
	}
	if c := at(3).(*instructions.UserCommand); c.User != "app:app" {
		t.Errorf("USER %q", c.User)
	}
	if c := at(4).(*instructions.CopyCommand); c.Chown != "app:app" || c.Chmod != "0755" ||
		!reflect.DeepEqual(c.SourcePaths, []string{"src/app/"}) || c.DestPath != "/srv/" {
		t.Errorf("COPY %+v", c)
	}
	if c := at(5).(*instructions.AddCommand); c.Chown != "app" || c.Checksum != "sha256:00" ||
		c.SourcePaths[0] != "https://example.invalid/app.tgz" || c.DestPath != "/srv/" {
		t.Errorf("ADD %+v", c)
	}
	if c := at(6).(*instructions.LabelCommand); c.Labels[0].Value != "/srv" || c.Labels[1].Key != "app" {
		t.Errorf("LABEL %+v", c.Labels)
	}
	if c := at(7).(*instructions.ExposeCommand); !reflect.DeepEqual(c.Ports, []string{"8080", "80", "443/udp"}) {
		t.Errorf("EXPOSE %q", c.Ports)
	}
	if c := at(8).(*instructions.VolumeCommand); c.Volumes[0] != "/srv/data" {
		t.Errorf("VOLUME %q", c.Volumes)
	}
	if c := at(9).(*instructions.StopSignalCommand); c.Signal != "SIGQUIT" {
		t.Errorf("STOPSIGNAL %q", c.Signal)
	}
	if v, _ := s.Lookup("DERIVED"); v != "/srv/derived" {
		t.Errorf("ENV DERIVED = %q", v)
	}
	// Left to the shell or to the container at run time.
	if c := at(11).(*instructions.RunCommand); c.CmdLine[0] != "echo $DIR" {
		t.Errorf("RUN %q", c.CmdLine)
	}
	if c := at(12).(*instructions.CmdCommand); c.CmdLine[0] != "echo $DIR" {
		t.Errorf("CMD %q", c.CmdLine)
	}
	if c := at(13).(*instructions.EntrypointCommand); c.CmdLine[0] != "$DIR" {
		t.Errorf("ENTRYPOINT %q", c.CmdLine)
	}
	if c := at(14).(*instructions.ShellCommand); c.Shell[0] != "/bin/$U" {
		t.Errorf("SHELL %q", c.Shell)
	}
	if c := at(15).(*instructions.OnbuildCommand); c.Expression != "RUN echo $DIR" {
		t.Errorf("ONBUILD %q", c.Expression)
	}
	mounts := instructions.GetMounts(at(16).(*instructions.RunCommand))
	if len(mounts) != 1 || mounts[0].Target != "/srv/cache" || mounts[0].CacheID != "app" {
		t.Errorf("RUN --mount %+v", mounts[0])
	}
}

func TestExpandErrorHasLine(t *testing.T) {
	p := mustPlan(t, "FROM scratch\n\nWORKDIR ${NOPE:?set NOPE}\n", PlanOptions{})
	s := NewScope(p, &p.Stages[0], nil, PlanOptions{})
	err := s.Expand(p.Stages[0].Commands[0])
	if err == nil || !strings.HasPrefix(err.Error(), "Dockerfile:3: ") || !strings.Contains(err.Error(), "NOPE: set NOPE") {
		t.Errorf("error = %v", err)
	}

	p = mustPlan(t, "FROM scratch\nARG T=ssh\nRUN --mount=type=$T true\n", PlanOptions{})
	s = NewScope(p, &p.Stages[0], nil, PlanOptions{})
	if err := s.Expand(p.Stages[0].Commands[0]); err != nil {
		t.Fatal(err)
	}
	s.Apply(p.Stages[0].Commands[0])
	err = s.Expand(p.Stages[0].Commands[1])
	if err == nil || !strings.HasPrefix(err.Error(), "Dockerfile:3: RUN --mount=type=ssh is not supported") {
		t.Errorf("ssh mount error = %v", err)
	}
}

func TestHeredocs(t *testing.T) {
	tests := []struct {
		name string
		body string // the instruction and its heredocs
		// For RUN: the command line and inline files after expansion.
		wantCmd   []string
		wantFiles []instructions.ShellInlineFile
		// For COPY: the sources after expansion.
		wantContents []instructions.SourceContent
		wantDest     string
	}{
		{
			name:      "RUN body is left to the shell",
			body:      "RUN <<EOF\necho $FOO \\$FOO\nEOF\n",
			wantCmd:   []string{"<<EOF"},
			wantFiles: []instructions.ShellInlineFile{{Name: "EOF", Data: "echo $FOO \\$FOO\n"}},
		},
		{
			name:      "RUN with a quoted delimiter",
			body:      "RUN <<'EOF'\necho $FOO\nEOF\n",
			wantCmd:   []string{"<<'EOF'"},
			wantFiles: []instructions.ShellInlineFile{{Name: "EOF", Data: "echo $FOO\n"}},
		},
		{
			name:      "RUN chomps leading tabs with <<-",
			body:      "RUN <<-EOF\n\techo hi\n\tEOF\n",
			wantCmd:   []string{"<<-EOF"},
			wantFiles: []instructions.ShellInlineFile{{Name: "EOF", Data: "\techo hi\n", Chomp: true}},
		},
		{
			name:      "RUN with a program and two heredocs",
			body:      "RUN python3 - <<A && cat <<B\nprint(1)\nA\n$FOO\nB\n",
			wantCmd:   []string{"python3 - <<A && cat <<B"},
			wantFiles: []instructions.ShellInlineFile{{Name: "A", Data: "print(1)\n"}, {Name: "B", Data: "$FOO\n"}},
		},
		{
			name:         "COPY expands an unquoted body",
			body:         "COPY <<EOF /etc/$FOO.conf\nname=$FOO ${FOO:-x} \\$FOO \"$FOO\" '$FOO'\nEOF\n",
			wantContents: []instructions.SourceContent{{Path: "EOF", Data: "name=bar bar $FOO \"bar\" 'bar'\n", Expand: true}},
			wantDest:     "/etc/bar.conf",
		},
		{
			name:         "COPY keeps a double-quoted body",
			body:         "COPY <<\"EOF\" /x\n$FOO\nEOF\n",
			wantContents: []instructions.SourceContent{{Path: "EOF", Data: "$FOO\n"}},
			wantDest:     "/x",
		},
		{
			name:         "COPY keeps a single-quoted body",
			body:         "COPY <<'EOF' /x\n$FOO \\n\nEOF\n",
			wantContents: []instructions.SourceContent{{Path: "EOF", Data: "$FOO \\n\n"}},
			wantDest:     "/x",
		},
		{
			name:         "COPY chomped body",
			body:         "COPY <<-EOF /x\n\t\tindented $FOO\n\tEOF\n",
			wantContents: []instructions.SourceContent{{Path: "EOF", Data: "indented bar\n", Expand: true}},
			wantDest:     "/x",
		},
		{
			name:         "ADD expands too",
			body:         "ADD <<EOF /x\n$FOO\nEOF\n",
			wantContents: []instructions.SourceContent{{Path: "EOF", Data: "bar\n", Expand: true}},
			wantDest:     "/x",
		},
		{
			name: "COPY two files",
			body: "COPY <<one.txt <<two.txt /dst/\n1 $FOO\none.txt\n2\ntwo.txt\n",
			wantContents: []instructions.SourceContent{
				{Path: "one.txt", Data: "1 bar\n", Expand: true},
				{Path: "two.txt", Data: "2\n", Expand: true},
			},
			wantDest: "/dst/",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "FROM scratch\nENV FOO=bar\n" + tt.body
			p := mustPlan(t, src, PlanOptions{})
			runPlan(t, p, PlanOptions{}, nil)
			switch c := p.Stages[0].Commands[1].(type) {
			case *instructions.RunCommand:
				if !reflect.DeepEqual(c.CmdLine, tt.wantCmd) || !c.PrependShell {
					t.Errorf("CmdLine = %q (shell %v), want %q", c.CmdLine, c.PrependShell, tt.wantCmd)
				}
				if !reflect.DeepEqual(c.Files, tt.wantFiles) {
					t.Errorf("Files = %#v\nwant %#v", c.Files, tt.wantFiles)
				}
			case *instructions.AddCommand:
				if !reflect.DeepEqual(c.SourceContents, tt.wantContents) || c.DestPath != tt.wantDest {
					t.Errorf("ADD %#v -> %q\nwant %#v -> %q", c.SourceContents, c.DestPath, tt.wantContents, tt.wantDest)
				}
			case *instructions.CopyCommand:
				if !reflect.DeepEqual(c.SourceContents, tt.wantContents) {
					t.Errorf("SourceContents = %#v\nwant %#v", c.SourceContents, tt.wantContents)
				}
				if len(c.SourcePaths) != 0 {
					t.Errorf("SourcePaths = %q, want none", c.SourcePaths)
				}
				if c.DestPath != tt.wantDest {
					t.Errorf("DestPath = %q, want %q", c.DestPath, tt.wantDest)
				}
			default:
				t.Fatalf("unexpected %T", c)
			}
		})
	}
}

// TestArgEnvPrecedence pins BuildKit's rules (dockerfile2llb dispatchArg
// and dispatchEnv, and its integration tests testBuiltinArgs,
// testEmptyStringArgInEnv and testDefaultEnvWithArgs) for what the last
// RUN of the last stage sees and what the image config gets.
func TestArgEnvPrecedence(t *testing.T) {
	tests := []struct {
		name      string
		src       string
		buildArgs map[string]string
		imageEnv  []string
		wantRun   map[string]string // "<unset>" means absent
		wantCfg   map[string]string
	}{
		{
			name:    "global ARG is invisible until redeclared",
			src:     "ARG V=global\nFROM scratch\nRUN a\n",
			wantRun: map[string]string{"V": "<unset>"},
		},
		{
			name:    "global ARG redeclared without default takes the global value",
			src:     "ARG V=global\nFROM scratch\nARG V\nRUN a\n",
			wantRun: map[string]string{"V": "global"},
		},
		{
			name:      "build arg beats the global default",
			src:       "ARG V=global\nFROM scratch\nARG V\nRUN a\n",
			buildArgs: map[string]string{"V": "cli"},
			wantRun:   map[string]string{"V": "cli"},
		},
		{
			name:    "stage default beats the global value",
			src:     "ARG V=global\nFROM scratch\nARG V=stage\nRUN a\n",
			wantRun: map[string]string{"V": "stage"},
		},
		{
			name:      "build arg beats the stage default",
			src:       "FROM scratch\nARG V=stage\nRUN a\n",
			buildArgs: map[string]string{"V": "cli"},
			wantRun:   map[string]string{"V": "cli"},
		},
		{
			name:      "empty build arg is a value",
			src:       "FROM scratch\nARG V=stage\nRUN a\n",
			buildArgs: map[string]string{"V": ""},
			wantRun:   map[string]string{"V": ""},
		},
		{
			name:    "ARG without default and without value stays unset",
			src:     "FROM scratch\nARG FOO\nARG BAR=\nRUN a\n",
			wantRun: map[string]string{"FOO": "<unset>", "BAR": ""},
		},
		{
			name:      "undeclared build arg does not reach RUN",
			src:       "FROM scratch\nRUN a\n",
			buildArgs: map[string]string{"SECRET": "x"},
			wantRun:   map[string]string{"SECRET": "<unset>"},
		},
		{
			name:      "ENV after ARG wins, in RUN and in the config",
			src:       "FROM scratch\nARG V=arg\nENV V=env\nRUN a\n",
			buildArgs: map[string]string{"V": "cli"},
			wantRun:   map[string]string{"V": "env"},
			wantCfg:   map[string]string{"V": "env"},
		},
		{
			name:      "ARG after ENV wins in RUN, not in the config",
			src:       "FROM scratch\nENV V=env\nARG V\nRUN a\n",
			buildArgs: map[string]string{"V": "cli"},
			wantRun:   map[string]string{"V": "cli"},
			wantCfg:   map[string]string{"V": "env"},
		},
		{
			name:     "ARG with default after image ENV wins (kaniko #3344)",
			src:      "FROM scratch\nARG V=arg\nRUN a\n",
			imageEnv: []string{"V=image"},
			wantRun:  map[string]string{"V": "arg"},
			wantCfg:  map[string]string{"V": "image"},
		},
		{
			name:      "build arg beats image ENV once declared (kaniko #1826)",
			src:       "FROM scratch\nARG V\nRUN a\n",
			buildArgs: map[string]string{"V": "cli"},
			imageEnv:  []string{"V=image"},
			wantRun:   map[string]string{"V": "cli"},
			wantCfg:   map[string]string{"V": "image"},
		},
		{
			name:      "undeclared build arg leaves image ENV alone",
			src:       "FROM scratch\nRUN a\n",
			buildArgs: map[string]string{"V": "cli"},
			imageEnv:  []string{"V=image"},
			wantRun:   map[string]string{"V": "image"},
		},
		{
			name:     "ARG declared without value keeps image ENV",
			src:      "FROM scratch\nARG V\nRUN a\n",
			imageEnv: []string{"V=image"},
			wantRun:  map[string]string{"V": "image"},
		},
		{
			name:    "ARG default expands ENV and earlier ARGs",
			src:     "FROM scratch\nENV A=x\nARG B=${A}y\nARG C=$B-z\nRUN a\n",
			wantRun: map[string]string{"A": "x", "B": "xy", "C": "xy-z"},
			wantCfg: map[string]string{"A": "x", "B": "<unset>"},
		},
		{
			name:      "ENV built from an ARG (testDefaultEnvWithArgs)",
			src:       "FROM scratch\nARG my_arg\nENV my_arg \"my_arg=${my_arg:-def_val}\"\nENV my_trimmed_arg \"${my_arg%%e*}\"\nRUN a\n",
			buildArgs: map[string]string{"my_arg": "override"},
			wantRun:   map[string]string{"my_arg": "my_arg=override", "my_trimmed_arg": "my_arg=ov"},
			wantCfg:   map[string]string{"my_arg": "my_arg=override", "my_trimmed_arg": "my_arg=ov"},
		},
		{
			name:      "build arg is taken verbatim, not expanded",
			src:       "FROM scratch\nENV X=1\nARG V=$X\nRUN a\n",
			buildArgs: map[string]string{"V": "$X"},
			wantRun:   map[string]string{"V": "$X"},
		},
		{
			name:    "later ARG redeclaration replaces the value",
			src:     "FROM scratch\nARG V=1\nARG V=2\nRUN a\n",
			wantRun: map[string]string{"V": "2"},
		},
		{
			name:    "ARGs of a base stage carry over to a stage built FROM it",
			src:     "FROM scratch AS base\nARG V=base\nENV E=base\nFROM base\nRUN a\n",
			wantRun: map[string]string{"V": "base", "E": "base"},
			wantCfg: map[string]string{"V": "<unset>", "E": "base"},
		},
		{
			name:      "proxy build args reach RUN in both spellings, not the config",
			src:       "FROM scratch\nRUN a\n",
			buildArgs: map[string]string{"http_proxy": "http://p:3128", "NO_PROXY": "localhost"},
			wantRun: map[string]string{
				"HTTP_PROXY": "http://p:3128", "http_proxy": "http://p:3128",
				"NO_PROXY": "localhost", "no_proxy": "localhost",
				"HTTPS_PROXY": "<unset>",
			},
			wantCfg: map[string]string{"http_proxy": "<unset>", "HTTP_PROXY": "<unset>"},
		},
		{
			name:    "PATH is set when the image has none",
			src:     "FROM scratch\nRUN a\n",
			wantRun: map[string]string{"PATH": DefaultPath},
			wantCfg: map[string]string{"PATH": DefaultPath},
		},
		{
			name:     "image PATH is kept",
			src:      "FROM scratch\nRUN a\n",
			imageEnv: []string{"PATH=/opt/bin"},
			wantRun:  map[string]string{"PATH": "/opt/bin"},
			wantCfg:  map[string]string{"PATH": "/opt/bin"},
		},
		{
			name:      "SBOM scan args never reach RUN",
			src:       "FROM scratch\nARG BUILDKIT_SBOM_SCAN_STAGE=true\nRUN a\n",
			buildArgs: nil,
			wantRun:   map[string]string{"BUILDKIT_SBOM_SCAN_STAGE": "<unset>"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := PlanOptions{BuildArgs: tt.buildArgs, TargetPlatform: linuxAMD64, BuildPlatform: linuxAMD64}
			p := mustPlan(t, tt.src, opts)
			runs := runPlan(t, p, opts, tt.imageEnv)
			last := runs[p.Target]
			if len(last.runEnvs) == 0 {
				t.Fatal("no RUN in the target stage")
			}
			run := envMap(t, last.runEnvs[len(last.runEnvs)-1])
			cfg := envMap(t, last.scope.ConfigEnv())
			check := func(what string, got, want map[string]string) {
				for k, w := range want {
					v, ok := got[k]
					switch {
					case w == "<unset>" && ok:
						t.Errorf("%s: %s=%q, want unset", what, k, v)
					case w != "<unset>" && !ok:
						t.Errorf("%s: %s unset, want %q", what, k, w)
					case w != "<unset>" && v != w:
						t.Errorf("%s: %s=%q, want %q", what, k, v, w)
					}
				}
			}
			check("RUN env", run, tt.wantRun)
			check("config env", cfg, tt.wantCfg)
		})
	}
}

func TestPredefinedArgs(t *testing.T) {
	src := `FROM scratch AS base
RUN before
ARG TARGETARCH TARGETPLATFORM TARGETVARIANT BUILDPLATFORM BUILDARCH TARGETSTAGE
RUN after
FROM base AS final
ARG TARGETOS=plan9
RUN overridden
`
	opts := PlanOptions{TargetPlatform: linuxARMv7, BuildPlatform: linuxAMD64}
	p := mustPlan(t, src, opts)
	runs := runPlan(t, p, opts, nil)

	before := envMap(t, runs[0].runEnvs[0])
	for _, k := range []string{"TARGETARCH", "TARGETPLATFORM", "BUILDPLATFORM", "TARGETSTAGE", "TARGETOS"} {
		if v, ok := before[k]; ok {
			t.Errorf("%s=%q visible before ARG declares it", k, v)
		}
	}
	after := envMap(t, runs[0].runEnvs[1])
	want := map[string]string{
		"TARGETARCH":     "arm",
		"TARGETPLATFORM": "linux/arm/v7",
		"TARGETVARIANT":  "v7",
		"BUILDPLATFORM":  "linux/amd64",
		"BUILDARCH":      "amd64",
		// TARGETSTAGE names the build's target, not the current stage.
		"TARGETSTAGE": "final",
	}
	for k, w := range want {
		if after[k] != w {
			t.Errorf("%s=%q, want %q", k, after[k], w)
		}
	}
	if _, ok := after["TARGETOS"]; ok {
		t.Error("TARGETOS visible without ARG")
	}
	// A default on a predefined arg wins over the computed value (BuildKit
	// behaviour), and a stage based on another keeps its ARGs.
	final := envMap(t, runs[1].runEnvs[0])
	if final["TARGETOS"] != "plan9" || final["TARGETARCH"] != "arm" {
		t.Errorf("final stage: TARGETOS=%q TARGETARCH=%q", final["TARGETOS"], final["TARGETARCH"])
	}

	// With no target and an unnamed last stage, TARGETSTAGE is "default".
	p = mustPlan(t, "FROM scratch\nARG TARGETSTAGE\nRUN a\n", PlanOptions{})
	got := envMap(t, runPlan(t, p, PlanOptions{}, nil)[0].runEnvs[0])
	if got["TARGETSTAGE"] != "default" {
		t.Errorf("TARGETSTAGE = %q, want default", got["TARGETSTAGE"])
	}
}

func TestArgResolvedInPlaceAndBuildArgs(t *testing.T) {
	src := "ARG G=global\nFROM scratch\nARG G\nARG A=1 B\nENV A=env\nARG C=$A\nRUN a\n"
	opts := PlanOptions{BuildArgs: map[string]string{"B": "cli"}}
	p := mustPlan(t, src, opts)
	s := runPlan(t, p, opts, nil)[0].scope
	cmds := p.Stages[0].Commands
	g := cmds[0].(*instructions.ArgCommand).Args[0]
	if g.Value == nil || *g.Value != "global" {
		t.Errorf("ARG G resolved to %v", g.Value)
	}
	c := cmds[3].(*instructions.ArgCommand).Args[0]
	if c.Value == nil || *c.Value != "env" {
		t.Errorf("ARG C resolved to %v", c.Value)
	}
	// Each ARG once, with the value RUN sees (ENV A shadows ARG A).
	want := []string{"G=global", "A=env", "B=cli", "C=env"}
	if got := s.BuildArgs(); !reflect.DeepEqual(got, want) {
		t.Errorf("BuildArgs = %q, want %q", got, want)
	}
}

// RunEnv lists variables in BuildKit's order: image env first, and a
// redefined name moves to where it was last set.
func TestRunEnvOrder(t *testing.T) {
	src := "FROM scratch\nENV A=1 B=2\nARG C=3\nENV A=4\nRUN a\n"
	p := mustPlan(t, src, PlanOptions{})
	sr := runPlan(t, p, PlanOptions{}, []string{"PATH=/bin", "HOME=/root"})[0]
	want := []string{"PATH=/bin", "HOME=/root", "B=2", "C=3", "A=4"}
	if got := sr.runEnvs[0]; !reflect.DeepEqual(got, want) {
		t.Errorf("RunEnv = %q, want %q", got, want)
	}
	wantCfg := []string{"PATH=/bin", "HOME=/root", "A=4", "B=2"}
	if got := sr.scope.ConfigEnv(); !reflect.DeepEqual(got, wantCfg) {
		t.Errorf("ConfigEnv = %q, want %q", got, wantCfg)
	}
}

func TestTriggersRunInScope(t *testing.T) {
	p := mustPlan(t, "FROM scratch\nARG V=1\n", PlanOptions{})
	s := NewScope(p, &p.Stages[0], []string{"HOME=/root"}, PlanOptions{})
	cmds, err := ParseTriggers([]string{"ENV T=$HOME/t", "WORKDIR $T"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cmds {
		if err := s.Expand(c); err != nil {
			t.Fatal(err)
		}
		s.Apply(c)
	}
	if wd := cmds[1].(*instructions.WorkdirCommand).Path; wd != "/root/t" {
		t.Errorf("WORKDIR from trigger = %q, want /root/t", wd)
	}
}
