package build

import (
	"context"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"

	securejoin "github.com/cyphar/filepath-securejoin"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/slipway-build/slipway/engine/dockerfile"
	"github.com/slipway-build/slipway/engine/rootfs"
)

// trees caches the filesystems that COPY --from and RUN --mount from= read,
// so that an image or finished stage is extracted once per build.
type trees struct {
	byKey map[string]*treeEntry
}

type treeEntry struct {
	once sync.Once
	root string
	err  error
}

// fromTree returns a directory holding the filesystem that ref names: a
// finished stage or an image. byIndex says whether a number names a stage,
// as for COPY --from but not RUN --mount from= (see Plan.StageRef).
func (b *builder) fromTree(ctx context.Context, ref string, byIndex bool, requester *stage) (string, error) {
	if idx, ok := b.plan.StageRef(ref, byIndex); ok {
		if idx >= requester.ps.Index {
			return "", fmt.Errorf("--from=%s: a stage can only copy from an earlier stage", ref)
		}
		res, ok := b.result(idx)
		if !ok {
			return "", fmt.Errorf("--from=%s: stage has not been built", ref)
		}
		if res.root != "" {
			return res.root, nil
		}
		if err := b.flushStage(idx); err != nil {
			return "", err
		}
		return b.extractTree(ctx, "stage:"+strconv.Itoa(idx), func() (imageRef, error) {
			return imageRef{image: res.image}, nil
		})
	}
	platform := b.opts.Platform
	if requester.ps.Platform != nil {
		platform = fromOCIPlatform(*requester.ps.Platform)
	}
	return b.extractTree(ctx, "image:"+ref, func() (imageRef, error) {
		img, err := b.opts.Images.Pull(ctx, ref, platform)
		if err != nil {
			return imageRef{}, fmt.Errorf("--from=%s: %w", ref, err)
		}
		return imageRef{image: img}, nil
	})
}

func (b *builder) extractTree(ctx context.Context, key string, get func() (imageRef, error)) (string, error) {
	b.mu.Lock()
	if b.trees.byKey == nil {
		b.trees.byKey = map[string]*treeEntry{}
	}
	e, ok := b.trees.byKey[key]
	if !ok {
		e = &treeEntry{}
		b.trees.byKey[key] = e
	}
	b.mu.Unlock()
	e.once.Do(func() {
		ref, err := get()
		if err != nil {
			e.err = err
			return
		}
		dir, err := os.MkdirTemp(b.opts.WorkDir, "slipway-from-")
		if err != nil {
			e.err = err
			return
		}
		b.addCleanup(func() { removeAll(dir) })
		// The tree is only read: no index, so no file is hashed.
		e.err = rootfs.ExtractImage(ctx, dir, ref.image, nil, b.layerCacheOptions()...)
		e.root = dir
	})
	return e.root, e.err
}

func (b *builder) layerCacheOptions() []rootfs.Option {
	var opts []rootfs.Option
	if b.opts.ExtractedLayerDir != "" {
		opts = append(opts, rootfs.WithLayerCache(b.opts.ExtractedLayerDir))
	}
	if b.tocs != nil {
		opts = append(opts, rootfs.WithTOCs(b.tocs))
	}
	return opts
}

// imageRef is an image whose filesystem a build reads.
type imageRef struct{ image v1.Image }

// parsePorts expands an EXPOSE value ("80", "53/udp", "8000-8002/tcp")
// into the config's "port/proto" keys.
func parsePorts(spec string) ([]string, error) {
	portRange, proto, _ := strings.Cut(spec, "/")
	if proto == "" {
		proto = "tcp"
	}
	proto = strings.ToLower(proto)
	if proto != "tcp" && proto != "udp" && proto != "sctp" {
		return nil, fmt.Errorf("EXPOSE %s: invalid protocol %q: use tcp, udp or sctp", spec, proto)
	}
	lo, hi, isRange := strings.Cut(portRange, "-")
	start, err := strconv.ParseUint(lo, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("EXPOSE %s: invalid port %q", spec, lo)
	}
	end := start
	if isRange {
		if end, err = strconv.ParseUint(hi, 10, 16); err != nil || end < start {
			return nil, fmt.Errorf("EXPOSE %s: invalid port range %q", spec, portRange)
		}
	}
	var out []string
	for p := start; p <= end; p++ {
		out = append(out, fmt.Sprintf("%d/%s", p, proto))
	}
	return out, nil
}

// holdRoot records which stage's files "/" holds in in-place mode (-1:
// none, or half-written ones).
func (b *builder) holdRoot(index int) {
	b.mu.Lock()
	b.rootHolder = index
	b.mu.Unlock()
}

// liveRoot says whether COPY --from=ref may read the finished stage's files
// where they still are, at "/" in in-place mode, rather than extract its
// image again into the work directory: a final stage with no RUN never
// wipes "/", so what it copies from the stage before it is there
// (kaniko's multi-stage builds save them aside instead).
//
// "/" is the container's, not only the stage's: mounts, the executor, the
// work directory and the other ignored paths are in it, and extraction
// left the image's own entries there out. So every source, as written and
// as resolved through its symlinks, must be clear of them: neither an
// ignored path, nor below one, nor above one. Otherwise the stage's image
// is extracted as before.
func (b *builder) liveRoot(ref string, sources []string, requester *stage) bool {
	if !b.roots.shared() {
		return false
	}
	idx, ok := b.plan.StageRef(ref, true)
	if !ok || idx >= requester.ps.Index {
		return false
	}
	b.mu.Lock()
	held := b.rootHolder == idx
	b.mu.Unlock()
	if !held {
		return false
	}
	for _, src := range sources {
		if isURL(src) {
			return false
		}
		rel := strings.TrimPrefix(path.Clean("/"+src), "/")
		if rel == "" || !b.clearOfIgnored(literalPrefix(rel)) {
			return false
		}
		matches := []string{rel}
		if dockerfile.HasWildcard(rel) {
			var err error
			if matches, err = dockerfile.Glob("/", rel, b.ignoredIn); err != nil {
				return false
			}
		}
		for _, m := range matches {
			host, err := securejoin.SecureJoin("/", m)
			if err != nil || !b.clearOfIgnored("/"+m) || !b.clearOfIgnored(host) {
				return false
			}
		}
	}
	return true
}

// ignoredIn is the source tree's filter when it is "/": the ignored paths
// are none of the stage's.
func (b *builder) ignoredIn(rel string, _ bool) (bool, error) {
	return b.ignoreList.Ignored("/" + rel), nil
}

// clearOfIgnored says that p, an absolute path, is not ignored and holds
// no ignored path.
func (b *builder) clearOfIgnored(p string) bool {
	p = rootfs.Clean(p)
	if p == "/" || b.ignoreList.Ignored(p) {
		return false
	}
	for _, q := range b.ignoreList.Paths() {
		if strings.HasPrefix(q, p+"/") {
			return false
		}
	}
	return true
}

// literalPrefix is rel up to its first component with a wildcard.
func literalPrefix(rel string) string {
	parts := strings.Split(rel, "/")
	for i, part := range parts {
		if dockerfile.HasWildcard(part) {
			return "/" + strings.Join(parts[:i], "/")
		}
	}
	return "/" + rel
}
