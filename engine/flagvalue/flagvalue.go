// Package flagvalue reads the values of kaniko's repeated flags: build
// args, key=value pairs and platforms. It is a leaf: the step binaries and
// engine packages that read these flags share it without linking the
// builder (slipway-warm must stay small).
package flagvalue

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/containerd/platforms"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// BuildArgs reads kaniko's --build-arg values: "NAME=value", or a bare
// "NAME" whose value comes from the environment (and is left out when the
// environment does not have it, as docker does).
func BuildArgs(args []string, lookup func(string) (string, bool)) (map[string]string, error) {
	out := map[string]string{}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if k == "" {
			return nil, fmt.Errorf("--build-arg %q: want NAME=value or NAME", a)
		}
		if !ok {
			env, found := lookup(k)
			if !found {
				continue
			}
			v = env
		}
		out[k] = v
	}
	return out, nil
}

// Pair splits one "key=value" value of flag. form names the expected shape
// in the error ("key=value", "host=value"); with valueRequired an empty
// value is refused too.
func Pair(flag, form, value string, valueRequired bool) (k, v string, err error) {
	k, v, ok := strings.Cut(value, "=")
	if !ok || k == "" || (valueRequired && v == "") {
		return "", "", fmt.Errorf("%s %q: want %s", flag, value, form)
	}
	return k, v, nil
}

// Pairs reads repeated "key=value" values of flag into a map, the last
// value of a key winning; nil when there are none.
func Pairs(flag, form string, values []string, valueRequired bool) (map[string]string, error) {
	if len(values) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range values {
		k, v, err := Pair(flag, form, kv, valueRequired)
		if err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, nil
}

// Platform reads --custom-platform "os/arch[/variant]"; empty means the
// machine's own (the zero Platform). The result is normalised as BuildKit
// normalises --platform (containerd's rules): linux/arm64/v8 is
// linux/arm64, linux/arm is linux/arm/v7, so TARGETVARIANT has the values
// BuildKit gives it.
func Platform(s string) (v1.Platform, error) {
	if s == "" {
		return v1.Platform{}, nil
	}
	p, err := v1.ParsePlatform(s)
	// Blanks are no platform's names; "linux/ /" would pass as an
	// architecture " " that nothing can pull.
	if err != nil || p.OS == "" || p.Architecture == "" || !strings.Contains(s, "/") || strings.ContainsFunc(s, unicode.IsSpace) {
		return v1.Platform{}, fmt.Errorf("--custom-platform %q: want os/arch[/variant], e.g. linux/arm64", s)
	}
	n := platforms.Normalize(ocispec.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant})
	return v1.Platform{OS: n.OS, Architecture: n.Architecture, Variant: n.Variant}, nil
}
