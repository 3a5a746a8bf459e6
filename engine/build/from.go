package build

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

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
		e.err = rootfs.ExtractImage(ctx, dir, ref.image, rootfs.NewIndex(), b.layerCacheOptions()...)
		e.root = dir
	})
	return e.root, e.err
}

func (b *builder) layerCacheOptions() []rootfs.Option {
	var opts []rootfs.Option
	if b.opts.ExtractedLayerDir != "" {
		opts = append(opts, rootfs.WithLayerCache(b.opts.ExtractedLayerDir))
	}
	if b.opts.TOCs != nil {
		opts = append(opts, rootfs.WithTOCs(b.opts.TOCs))
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
