// Command slipway-warm pulls base images into a --cache-dir OCI layout
// that builds read before going to the registry, as kaniko's warmer does.
// Its command line is steps/internal/warmcmd, which the executor image's
// slipway-build also runs as slipway-warm and /kaniko/warmer.
package main

import "github.com/slipway-build/slipway/steps/internal/warmcmd"

func main() { warmcmd.Main() }
