package main

import (
	"os"
	"path/filepath"

	"github.com/slipway-build/slipway/steps/internal/credhelper"
	"github.com/slipway-build/slipway/steps/internal/indexcmd"
	"github.com/slipway-build/slipway/steps/internal/warmcmd"
)

// entryPoints are the other programs slipway-build runs when it is
// started under their name, as the executor image starts it through its
// symbolic links (steps/image/build.sh makes them): one binary holds the
// code all of them share, the registry client and the cloud SDKs, once.
// Any other name, kaniko's /kaniko/executor among them, is slipway-build.
var entryPoints = map[string]func(){
	"slipway-warm":  warmcmd.Main,
	"warmer":        warmcmd.Main, // kaniko's /kaniko/warmer
	"slipway-index": indexcmd.Main,
}

func init() {
	for name, run := range credhelper.Programs {
		entryPoints[name] = run
	}
}

// entryPoint is the program os.Args[0] names, or nil for slipway-build.
func entryPoint() func() {
	if len(os.Args) == 0 {
		return nil
	}
	return entryPoints[filepath.Base(os.Args[0])]
}
