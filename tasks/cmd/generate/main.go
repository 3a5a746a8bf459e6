// Command generate writes Slipway's Tekton and Argo catalog. `make catalog`
// runs it; `make release` runs it with the released image.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/slipway-build/slipway/tasks"
)

func main() {
	out := flag.String("out", "catalog", "catalog directory to (re)write")
	image := flag.String("builder-image", tasks.BuilderImage, "executor image, pinned by digest")
	version := flag.String("version", tasks.Version, "version of the published definitions")
	flag.Parse()
	if err := tasks.CheckPinned(*image); err != nil {
		fmt.Fprintln(os.Stderr, "generate:", err)
		os.Exit(2)
	}
	if err := tasks.Generate(*out, tasks.WithBuilderImage(*image), tasks.WithVersion(*version)); err != nil {
		fmt.Fprintln(os.Stderr, "generate:", err)
		os.Exit(1)
	}
}
