// Package argv expands the list tail that Slipway's published Tekton and
// Argo definitions append to a step's arguments.
//
// Neither Tekton nor Argo can put a flag in front of each element of a list:
// Tekton expands an array param only as whole arguments ($(params.X[*])), and
// Argo parameters are plain strings. The executor image has no shell to do
// the prefixing, so the definitions end their arguments with a tail that the
// step binary rewrites into ordinary flags before parsing them:
//
//	slipway-build --context=/src ... -- --build-arg A=1 B=2 --destination r/app:v1 --args --reproducible
//
// After the first bare "--", a token that names one of the binary's list
// flags (or "--args") selects what the following tokens mean; every other
// token is split on newlines (so a multi-line Argo parameter works like a
// Tekton array) and empty lines are dropped. Values under a list flag become
// "--flag=value"; values under "--args" are passed through verbatim, which
// is how Argo's extra-args parameter carries arbitrary executor flags.
//
// The package has no dependencies so that step binaries can import it.
package argv

import (
	"fmt"
	"strings"
)

// Separator starts the list tail.
const Separator = "--"

// RawMarker selects verbatim arguments in the tail.
const RawMarker = "--args"

// ExpandListTail rewrites args (without the program name) so that the list
// tail after Separator becomes ordinary flags placed where the tail was.
// listFlags are the flag names, with their leading dashes, that the tail may
// select, e.g. "--build-arg" and "--destination". Arguments before the
// separator are returned unchanged; without a separator args is returned as
// is.
func ExpandListTail(args []string, listFlags ...string) ([]string, error) {
	sep := -1
	for i, a := range args {
		if a == Separator {
			sep = i
			break
		}
	}
	if sep < 0 {
		return args, nil
	}
	markers := map[string]bool{RawMarker: true}
	for _, f := range listFlags {
		markers[f] = true
	}
	out := append([]string(nil), args[:sep]...)
	current := ""
	for _, tok := range args[sep+1:] {
		if markers[tok] {
			current = tok
			continue
		}
		for _, v := range strings.Split(tok, "\n") {
			v = strings.TrimSuffix(v, "\r")
			if strings.TrimSpace(v) == "" {
				continue
			}
			switch current {
			case "":
				return nil, fmt.Errorf("argument %q after %q is not preceded by a list flag (one of %s or %s)", v, Separator, strings.Join(listFlags, ", "), RawMarker)
			case RawMarker:
				out = append(out, v)
			default:
				out = append(out, current+"="+v)
			}
		}
	}
	return out, nil
}
