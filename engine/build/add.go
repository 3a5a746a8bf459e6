package build

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"

	"github.com/slipway-build/slipway/engine/compressed"
	"github.com/slipway-build/slipway/engine/rootfs"
)

// openArchive returns the tar stream of a file, decompressed when it is
// in one of the formats docker's ADD unpacks (engine/compressed detects
// them).
func openArchive(file string) (io.Reader, io.Closer, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, nil, err
	}
	r, _, err := compressed.Reader(f)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return r, closers{r, f}, nil
}

// closers closes the decompressor, then the file under it.
type closers []io.Closer

func (cs closers) Close() error {
	var errs []error
	for _, c := range cs {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// isArchive reports whether ADD should unpack the file: it must read as a
// tar with at least one valid header.
func isArchive(file string) bool {
	r, closer, err := openArchive(file)
	if err != nil {
		return false
	}
	defer closer.Close()
	_, err = tar.NewReader(r).Next()
	return err == nil
}

// extractArchive unpacks a local archive into the directory dest, as
// BuildKit does (an Untar chrooted into dest): through rootfs's extractor,
// every entry confined to dest, the archive's owners kept unless --chown
// says otherwise, whiteout names written as files, devices skipped.
func (c *copier) extractArchive(file, dest string) error {
	if err := c.mkdirParents(dest); err != nil {
		return err
	}
	resolved, err := c.followDest(dest)
	if err != nil {
		return err
	}
	if !c.dst.holdsContent() {
		if err := c.revealArchive(file, resolved); err != nil {
			return err
		}
	}
	host, err := securejoin.SecureJoin(c.dst.dir(), resolved)
	if err != nil {
		return fmt.Errorf("resolving %s in the image: %w", dest, err)
	}
	r, closer, err := openArchive(file)
	if err != nil {
		return err
	}
	defer closer.Close()
	opts := []rootfs.Option{rootfs.AsArchive(), rootfs.WithoutDevices(), rootfs.WithoutContentHash()}
	if c.chownSet {
		opts = append(opts, rootfs.WithOwner(c.uid, c.gid))
	}
	written := rootfs.NewIndex()
	if err := rootfs.Extract(host, r, written, opts...); err != nil {
		return fmt.Errorf("unpacking archive %s: %w", path.Base(file), err)
	}
	written.Range(func(p string, _ rootfs.Entry) bool {
		c.record(path.Join(resolved, p))
		return true
	})
	return nil
}

// revealArchive makes what the archive writes over visible in a sparse
// root before it is unpacked there. A hardlink to a file the archive did
// not write needs that file's content, which a sparse root does not hold.
func (c *copier) revealArchive(file, dest string) error {
	r, closer, err := openArchive(file)
	if err != nil {
		return err
	}
	defer closer.Close()
	tr := tar.NewReader(r)
	wrote := map[string]bool{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading archive %s: %w", path.Base(file), err)
		}
		name := rootfs.Clean(hdr.Name)
		if name == "/" {
			continue
		}
		if hdr.Typeflag == tar.TypeLink && !wrote[rootfs.Clean(hdr.Linkname)] {
			return fmt.Errorf("hardlink %s to %s, which the archive did not write: %w", name, hdr.Linkname, errNeedsRoot)
		}
		if err := c.dst.reveal(path.Join(dest, name)); err != nil {
			return err
		}
		wrote[name] = true
	}
}

// addURL downloads an ADD URL into the image: mode 0600 unless --chmod,
// mtime from Last-Modified, and the --checksum verified before anything is
// written.
func (c *copier) addURL(ctx context.Context, src, dest string, destIsDir bool, checksum string) error {
	u, err := url.Parse(src)
	if err != nil {
		return fmt.Errorf("ADD %s: %w", src, err)
	}
	redacted := u.Redacted()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
	if err != nil {
		return fmt.Errorf("ADD %s: %w", redacted, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("ADD %s: %w", redacted, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("ADD %s: server answered %s", redacted, resp.Status)
	}
	tmp, err := os.CreateTemp(c.s.b.opts.WorkDir, "slipway-add-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(tmp, h), resp.Body)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("ADD %s: downloading: %w", redacted, err)
	}
	if checksum != "" {
		algo, want, ok := strings.Cut(checksum, ":")
		if !ok || algo != "sha256" {
			return fmt.Errorf("ADD --checksum=%s: use sha256:<hex>", checksum)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != want {
			return fmt.Errorf("ADD %s: checksum mismatch: got sha256:%s, want %s", redacted, got, checksum)
		}
	}
	mtime := time.Now()
	if lm, err := http.ParseTime(resp.Header.Get("Last-Modified")); err == nil {
		mtime = lm
	}
	if err := os.Chtimes(tmp.Name(), mtime, mtime); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o600); err != nil {
		return err
	}
	target := dest
	if destIsDir || strings.HasSuffix(dest, "/") {
		name := path.Base(u.Path)
		if name == "." || name == "/" {
			name = "__unnamed__"
		}
		target = path.Join(dest, name)
	}
	fi, err := os.Lstat(tmp.Name())
	if err != nil {
		return err
	}
	// The download is ours, not the context's: its owner is the --chown
	// user or root, never the build process's.
	keep := c.keepIDs
	c.keepIDs = false
	defer func() { c.keepIDs = keep }()
	return c.copyFile(tmp.Name(), target, fi)
}
