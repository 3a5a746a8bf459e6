// Command slipway-index assembles per-platform images, each built by
// slipway-build, into one multi-platform image (an OCI image index, or a
// Docker manifest list) and pushes it. Its command line is
// steps/internal/indexcmd, which the executor image's slipway-build also
// runs as slipway-index.
package main

import "github.com/slipway-build/slipway/steps/internal/indexcmd"

func main() { indexcmd.Main() }
