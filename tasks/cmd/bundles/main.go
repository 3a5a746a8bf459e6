// Command bundles pushes every published Tekton Task and StepAction as a
// Tekton bundle, for `resolver: bundles`. `make bundles` runs it.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipway-build/slipway/tasks"
)

func main() {
	repo := flag.String("repo", tasks.BundleRepo, "repository the bundles are pushed under, as REPO/<kind>/<name>:<version>")
	insecure := flag.Bool("insecure", false, "push over plain HTTP")
	flag.Parse()
	if err := push(*repo, *insecure); err != nil {
		fmt.Fprintln(os.Stderr, "bundles:", err)
		os.Exit(1)
	}
}

func push(repo string, insecure bool) error {
	bundles, err := tasks.Bundles(repo)
	if err != nil {
		return err
	}
	var opts []name.Option
	if insecure {
		opts = append(opts, name.Insecure)
	}
	for _, b := range bundles {
		ref, err := name.ParseReference(b.Ref, opts...)
		if err != nil {
			return err
		}
		if err := remote.Write(ref, b.Image, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
			return fmt.Errorf("pushing %s: %w", b.Ref, err)
		}
		d, _ := b.Image.Digest()
		fmt.Printf("%s@%s\n", b.Ref, d)
	}
	return nil
}
