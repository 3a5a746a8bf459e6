package registry

import (
	"fmt"
	"runtime"
	"strings"

	"github.com/containerd/platforms"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// PlatformError is returned when an index has no image for the platform,
// or when a single-platform image is for another platform.
type PlatformError struct {
	Ref       string
	Want      v1.Platform
	Available []v1.Platform
	// Single is set when Ref is one image, not an index: Available then
	// holds the platform its config names.
	Single bool
}

func (e *PlatformError) Error() string {
	var have []string
	for _, p := range e.Available {
		have = append(have, p.String()) // as the registry has it
	}
	if e.Single {
		return fmt.Sprintf("image %s is a single-platform image for %s, not %s: build with --custom-platform %s, use FROM --platform=%s, or use an image (index) that has %s",
			e.Ref, strings.Join(have, ", "), FormatPlatform(e.Want), strings.Join(have, ", "), strings.Join(have, ", "), FormatPlatform(e.Want))
	}
	return fmt.Sprintf("image %s has no variant for platform %s (available: %s): pick one with --custom-platform or FROM --platform",
		e.Ref, FormatPlatform(e.Want), strings.Join(have, ", "))
}

// HostPlatform is the platform this process runs on, normalised, with the
// CPU variant where it matters (arm).
func HostPlatform() v1.Platform {
	return FromOCI(platforms.DefaultSpec())
}

// NormalizePlatform spells p the way containerd does, so that equal
// platforms compare equal: aarch64 is arm64, arm64/v8 is arm64, arm is
// arm/v7, x86_64 is amd64.
func NormalizePlatform(p v1.Platform) v1.Platform {
	n := platforms.Normalize(ToOCI(p))
	out := FromOCI(n)
	out.Features = p.Features
	return out
}

// ParsePlatform reads "os/arch[/variant]" and normalises it.
func ParsePlatform(s string) (v1.Platform, error) {
	p, err := platforms.Parse(s)
	if err != nil {
		return v1.Platform{}, err
	}
	return FromOCI(platforms.Normalize(p)), nil
}

// FormatPlatform writes p as os/arch[/variant], normalised.
func FormatPlatform(p v1.Platform) string {
	if p.OS == "" && p.Architecture == "" {
		return "unknown"
	}
	return platforms.Format(platforms.Normalize(ToOCI(p)))
}

// MatchPlatform reports whether an image for have serves want: the same
// OS, architecture and variant once both are normalised (linux/arm64/v8 is
// linux/arm64, linux/arm is linux/arm/v7), as containerd matches them.
func MatchPlatform(want, have v1.Platform) bool {
	return platforms.NewMatcher(ToOCI(want)).Match(ToOCI(have))
}

// ToOCI and FromOCI convert between ggcr's and the OCI spec's platform.
func ToOCI(p v1.Platform) ocispec.Platform {
	return ocispec.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant, OSVersion: p.OSVersion, OSFeatures: p.OSFeatures}
}

func FromOCI(p ocispec.Platform) v1.Platform {
	return v1.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant, OSVersion: p.OSVersion, OSFeatures: p.OSFeatures}
}

func defaultPlatform(p v1.Platform) v1.Platform {
	if p.OS == "" {
		return v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	}
	return p
}

// checkImagePlatform refuses a single-platform image whose config names
// another platform than want. A config that names none is accepted.
func checkImagePlatform(userRef string, img v1.Image, want v1.Platform) error {
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	if cf.OS == "" && cf.Architecture == "" {
		return nil
	}
	have := v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant, OSVersion: cf.OSVersion}
	if MatchPlatform(want, have) {
		return nil
	}
	return &PlatformError{Ref: userRef, Want: want, Available: []v1.Platform{have}, Single: true}
}
