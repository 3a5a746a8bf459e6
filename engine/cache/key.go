// Package cache holds Slipway's caches: content-addressed step keys, the
// digest of a COPY's context sources, the registry layer cache (one small
// image per step, tagged with its key) and the --cache-dir OCI image layout
// of base images that the warmer fills and builds read.
package cache

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"slices"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/slipway-build/slipway/engine/dockerfile"
)

// keyVersion is hashed into every key so that a change of what a key covers
// can never make an old entry hit.
const keyVersion = "slipway-cache-v1"

// Key is a cache key: the hex SHA-256 of everything a step's result depends
// on, chained from the base image. It is a valid registry tag.
type Key string

// StepInput is what one instruction's result depends on besides its parent.
type StepInput struct {
	// Instruction is the instruction after variable expansion, with its
	// flags, e.g. "COPY --chmod=755 app /app".
	Instruction string
	// Env are the ARG and ENV values in scope as KEY=value. Only ARGs
	// declared in the stage belong here, so that a --build-arg the stage
	// does not use cannot change its keys (as in BuildKit). Order does not
	// matter: Next sorts a copy.
	Env []string
	// Mounts are RUN --mount definitions after expansion, e.g.
	// "type=cache,target=/root/.cache"; empty for other instructions.
	Mounts string
	// SourceDigest is SourceDigest's result over a COPY's or ADD's context
	// sources (after .dockerignore), or the digest of remote ADD content.
	SourceDigest string
	// From are the final keys of the stages that COPY --from or RUN
	// --mount from= read, or the BaseKey of an image they read. A change
	// anywhere in such a stage then changes this step's key too.
	From []Key
}

// ScopeEnv is StepInput.Env for an instruction about to run in scope: the
// ARGs the stage has declared so far, with their values, and the config
// ENV. Build args the stage never declares, proxy ones included, stay out,
// as in BuildKit, so passing a new --build-arg does not invalidate stages
// that ignore it.
func ScopeEnv(scope *dockerfile.Scope) []string {
	return append(scope.BuildArgs(), scope.ConfigEnv()...)
}

// BaseKey starts a key chain from a stage's base image digest and the
// target platform. A scratch stage uses the zero digest.
func BaseKey(baseDigest v1.Hash, platform v1.Platform) Key {
	h := newKeyHash("base")
	field(h, baseDigest.String())
	field(h, platform.OS)
	field(h, platform.Architecture)
	field(h, platform.Variant)
	field(h, platform.OSVersion)
	list(h, platform.OSFeatures)
	list(h, platform.Features)
	return sum(h)
}

// Next is the key of the step that runs on top of k's result.
func (k Key) Next(step StepInput) Key {
	h := newKeyHash("step")
	field(h, string(k))
	field(h, step.Instruction)
	list(h, step.Env)
	field(h, step.Mounts)
	field(h, step.SourceDigest)
	// The order of From follows the instruction's flags and sources, so it
	// is kept rather than sorted.
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(step.From)))
	h.Write(n[:])
	for _, f := range step.From {
		field(h, string(f))
	}
	return sum(h)
}

func newKeyHash(kind string) hash.Hash {
	h := sha256.New()
	field(h, keyVersion)
	field(h, kind)
	return h
}

// field writes s length-prefixed, so that no two different sequences of
// fields can produce the same byte stream ("ab"+"c" vs "a"+"bc").
func field(h hash.Hash, s string) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(s)))
	h.Write(n[:])
	h.Write([]byte(s))
}

// list writes a sorted copy of values, prefixed by their count.
func list(h hash.Hash, values []string) {
	sorted := slices.Clone(values)
	slices.Sort(sorted)
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(sorted)))
	h.Write(n[:])
	for _, v := range sorted {
		field(h, v)
	}
}

func sum(h hash.Hash) Key { return Key(hex.EncodeToString(h.Sum(nil))) }
