// Package version holds what a Slipway binary says about itself. Version
// and Commit are stamped at link time:
//
//	go build -ldflags "-X github.com/slipway-build/slipway/engine/version.Version=1.2.3 \
//	  -X github.com/slipway-build/slipway/engine/version.Commit=$(git rev-parse HEAD)"
//
// Unstamped builds say "dev", and take the commit from the Go build
// information when the toolchain recorded one.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Stamped at link time with -X; they are variables so that -X can set them.
var (
	Version = "dev"
	Commit  = ""
)

// Info is a binary's version, commit and Go version.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"goVersion"`
}

// Get reports this binary's Info.
func Get() Info {
	commit := Commit
	if commit == "" {
		commit = vcsRevision()
	}
	if commit == "" {
		commit = "unknown"
	}
	v := Version
	if v == "dev" {
		// `go install …@vX.Y.Z` stamps nothing but records the module's
		// version.
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
	}
	return Info{Version: v, Commit: commit, GoVersion: runtime.Version()}
}

// String is the one line `slipway-build version` prints.
func (i Info) String() string {
	return fmt.Sprintf("version %s, commit %s, %s", i.Version, i.Commit, i.GoVersion)
}

func vcsRevision() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev != "" && dirty {
		rev += "-dirty"
	}
	return rev
}
