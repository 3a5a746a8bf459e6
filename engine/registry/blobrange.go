package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// ErrRangeIgnored is wrapped by a Blob's errors when the registry answered
// a ranged read with the whole blob: the caller reads the blob whole
// instead, and the response is closed unread.
var ErrRangeIgnored = errors.New("the registry ignored the Range header and sent the whole blob")

// Blob is a layer's blob in the registry it was pulled from, read a byte
// range at a time, for formats that say where their parts lie (eStargz).
type Blob struct {
	ctx    context.Context
	client *http.Client
	url    string
	desc   v1.Descriptor
	repo   name.Repository
}

// LayerBlob returns the registry blob of layer, a layer of an image Pull
// returned, with the descriptor its manifest gives it; nil and no error
// when the layer does not come from a registry (an OCI layout, a layer
// this build wrote).
func (c *Client) LayerBlob(ctx context.Context, layer v1.Layer) (*Blob, error) {
	ml, ok := layer.(*remote.MountableLayer)
	if !ok {
		return nil, nil
	}
	desc, err := partial.Descriptor(ml)
	if err != nil {
		return nil, err
	}
	// The reference is the one fetch gave remote.Get: plain HTTP already
	// chosen, mirrors and maps already applied.
	repo := ml.Reference.Context()
	rt, err := c.rangeTransport(ctx, repo)
	if err != nil {
		return nil, fmt.Errorf("reading blob %s from %s: %w", desc.Digest, repo.RegistryStr(), err)
	}
	u := fmt.Sprintf("%s://%s/v2/%s/blobs/%s", repo.Scheme(), repo.RegistryStr(), repo.RepositoryStr(), desc.Digest)
	return &Blob{ctx: ctx, client: &http.Client{Transport: rt}, url: u, desc: *desc, repo: repo}, nil
}

// rangeTransport is the authenticated transport for pulls from repo, made
// once per repository (one ping, one token) and shared by the build's
// ranged reads, concurrent ones included.
func (c *Client) rangeTransport(ctx context.Context, repo name.Repository) (http.RoundTripper, error) {
	c.mu.Lock()
	if c.rangeTransports == nil {
		c.rangeTransports = map[string]*rangeTransport{}
	}
	rt := c.rangeTransports[repo.String()]
	if rt == nil {
		rt = &rangeTransport{}
		c.rangeTransports[repo.String()] = rt
	}
	c.mu.Unlock()
	rt.once.Do(func() {
		var auth authn.Authenticator
		if auth, rt.err = authn.Resolve(ctx, c.keychain, repo); rt.err != nil {
			return
		}
		base := c.transport(repo.RegistryStr(), false)
		if c.opts.UserAgent != "" {
			base = transport.NewUserAgent(base, c.opts.UserAgent)
		}
		rt.rt, rt.err = transport.NewWithContext(ctx, repo.Registry, auth, base, []string{repo.Scope(transport.PullScope)})
	})
	return rt.rt, rt.err
}

type rangeTransport struct {
	once sync.Once
	rt   http.RoundTripper
	err  error
}

// Descriptor is the blob's descriptor in its image's manifest.
func (b *Blob) Descriptor() v1.Descriptor { return b.desc }

// Size is the blob's size.
func (b *Blob) Size() int64 { return b.desc.Size }

// String names the blob and its registry, for errors and logs.
func (b *Blob) String() string { return b.desc.Digest.String() + " in " + b.repo.String() }

// ReadAt reads len(p) bytes at off with one ranged request. Its errors
// name the range; the caller names the blob (String).
func (b *Blob) ReadAt(p []byte, off int64) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if off < 0 || off+int64(len(p)) > b.desc.Size {
		return 0, fmt.Errorf("reading bytes %d-%d: outside the blob's %d bytes", off, off+int64(len(p))-1, b.desc.Size)
	}
	req, err := http.NewRequestWithContext(b.ctx, http.MethodGet, b.url, nil)
	if err != nil {
		return 0, err
	}
	last := off + int64(len(p)) - 1
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, last))
	resp, err := b.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("reading bytes %d-%d of the blob: %w", off, last, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return 0, fmt.Errorf("reading bytes %d-%d of the blob: %w", off, last, ErrRangeIgnored)
	}
	if err := transport.CheckError(resp, http.StatusPartialContent); err != nil {
		return 0, fmt.Errorf("reading bytes %d-%d of the blob: %w", off, last, err)
	}
	if got := resp.Header.Get("Content-Range"); !strings.HasPrefix(got, "bytes "+strconv.FormatInt(off, 10)+"-"+strconv.FormatInt(last, 10)+"/") {
		return 0, fmt.Errorf("reading bytes %d-%d of the blob: the registry sent the range %q", off, last, got)
	}
	n, err := io.ReadFull(resp.Body, p)
	if err != nil {
		return n, fmt.Errorf("reading bytes %d-%d of the blob: %w", off, last, err)
	}
	return n, nil
}
