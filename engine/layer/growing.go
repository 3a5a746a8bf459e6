package layer

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/stream"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// growingLayer is a layer while Write is still compressing it into its
// file: its compressed bytes can be read as they land, so that an upload
// runs beside the compression instead of after it. Its digests and size
// are stream.ErrNotComputed until the file is complete, which makes
// go-containerregistry upload it as a stream (POST, one PATCH, then the PUT
// naming the digest once the last byte was read) and never HEAD or mount it.
// A read never returns io.EOF before Write has succeeded: a failed Write
// makes every reader fail, and a registry commits no blob whose upload
// failed.
type growingLayer struct {
	path      string
	mediaType types.MediaType

	mu      sync.Mutex
	changed *sync.Cond
	written int64
	final   *fileLayer // set once Write succeeded
	err     error      // set once Write failed
}

// newGrowingLayer is the layer being written to path; write sets its media
// type before anything reads it.
func newGrowingLayer(path string) *growingLayer {
	g := &growingLayer{path: path}
	g.changed = sync.NewCond(&g.mu)
	return g
}

// grew records n more bytes written to the file.
func (g *growingLayer) grew(n int) {
	g.mu.Lock()
	g.written += int64(n)
	g.mu.Unlock()
	g.changed.Broadcast()
}

// finish ends the writing: l is the complete layer, or err why there is
// none.
func (g *growingLayer) finish(l *fileLayer, err error) {
	g.mu.Lock()
	if err != nil {
		g.err = fmt.Errorf("the layer being uploaded was not written: %w", err)
	} else {
		g.final = l
	}
	g.mu.Unlock()
	g.changed.Broadcast()
}

func (g *growingLayer) complete() (*fileLayer, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.err != nil:
		return nil, g.err
	case g.final == nil:
		return nil, stream.ErrNotComputed
	}
	return g.final, nil
}

func (g *growingLayer) Digest() (v1.Hash, error) {
	l, err := g.complete()
	if err != nil {
		return v1.Hash{}, err
	}
	return l.digest, nil
}

func (g *growingLayer) DiffID() (v1.Hash, error) {
	l, err := g.complete()
	if err != nil {
		return v1.Hash{}, err
	}
	return l.diffID, nil
}

func (g *growingLayer) Size() (int64, error) {
	l, err := g.complete()
	if err != nil {
		return 0, err
	}
	return l.size, nil
}

func (g *growingLayer) MediaType() (types.MediaType, error) { return g.mediaType, nil }

// Compressed reads the file from its start, waiting for the bytes not yet
// written. Each call is a new reader, as a retried upload needs.
func (g *growingLayer) Compressed() (io.ReadCloser, error) {
	f, err := os.Open(g.path)
	if err != nil {
		return nil, err
	}
	return &growingReader{g: g, f: f}, nil
}

func (g *growingLayer) Uncompressed() (io.ReadCloser, error) {
	return nil, errors.New("a layer being written has no uncompressed reader; use the layer Write returns")
}

type growingReader struct {
	g   *growingLayer
	f   *os.File
	off int64
}

func (r *growingReader) Read(p []byte) (int, error) {
	g := r.g
	g.mu.Lock()
	for r.off == g.written && g.final == nil && g.err == nil {
		g.changed.Wait()
	}
	available, failed := g.written-r.off, g.err
	g.mu.Unlock()
	if failed != nil {
		return 0, failed
	}
	if available == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > available {
		p = p[:available]
	}
	n, err := r.f.ReadAt(p, r.off)
	r.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (r *growingReader) Close() error { return r.f.Close() }

// growthWriter tells a growingLayer of every write that reached its file.
type growthWriter struct {
	w io.Writer
	g *growingLayer
}

func (w growthWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	w.g.grew(n)
	return n, err
}
