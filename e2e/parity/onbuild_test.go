package parity

import (
	"context"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/slipway-build/slipway/e2e/harness"
)

// TestParityOnbuild is a two-step build: a base with ONBUILD triggers,
// built by each builder, then a child FROM each one's own base. Docker's
// base is already in dockerd, BuildKit's in the test registry; Slipway's is
// pushed there too. Both steps are compared.
func TestParityOnbuild(t *testing.T) {
	reg := harness.StartRegistry(t)
	busybox := harness.Busybox(t, reg)
	if err := dockerPull(t, busybox); err != nil {
		t.Fatal(err)
	}

	base := buildSpec{dir: contextDir(t, "onbuild-base", nil), name: "onbuild-base", args: map[string]string{"BASE": busybox}}
	refBase, dockerBase, slipwayBase := buildAll(t, reg, base)
	compareImages(t, base.name, refBase, slipwayBase, nil, nil)
	compareLegacy(t, base.name, dockerBase, refBase, nil)

	pushed := reg.Host + "/slipway-parity/onbuild-base:" + runID
	ref, err := name.ParseReference(pushed)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Client().Push(context.Background(), slipwayBase, ref); err != nil {
		t.Fatalf("pushing Slipway's ONBUILD base: %v", err)
	}

	child := buildSpec{
		dir:          contextDir(t, "onbuild-child", nil),
		name:         "onbuild-child",
		args:         map[string]string{"BASE": dockerTag(base.name)},
		slipwayArgs:  map[string]string{"BASE": pushed},
		buildkitArgs: map[string]string{"BASE": buildkitRef(reg, base.name)},
	}
	refChild, dockerChild, slipwayChild := buildAll(t, reg, child)
	fs := compareImages(t, child.name, refChild, slipwayChild, nil, nil)
	compareLegacy(t, child.name, dockerChild, refChild, nil)
	// The triggers ran in the child, before its own instructions.
	for p, content := range map[string]string{
		"/trigger/trigger.txt": "trigger\n",
		"/trigger/ran":         "triggered as 0\n",
		"/child.txt":           "child in /trigger, TRIGGERED=yes\n",
	} {
		if got := fs[p].text; got != content {
			t.Errorf("%s: slipway has %q, want %q", p, got, content)
		}
	}
	cf, err := slipwayChild.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if len(cf.Config.OnBuild) != 0 || cf.Config.Labels["from-trigger"] != "yes" {
		t.Errorf("child config: OnBuild %q (want none: triggers are consumed), labels %v (want from-trigger=yes)", cf.Config.OnBuild, cf.Config.Labels)
	}
}
