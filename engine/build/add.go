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

	"github.com/slipway-build/slipway/engine/compressed"
)

// openArchive returns a tar reader if the file is a tar, plain or
// compressed in one of the formats docker's ADD unpacks.
func openArchive(file string) (*tar.Reader, io.Closer, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, nil, err
	}
	r, _, err := compressed.Reader(f)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return tar.NewReader(r), closers{r, f}, nil
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
	tr, closer, err := openArchive(file)
	if err != nil {
		return false
	}
	defer closer.Close()
	_, err = tr.Next()
	return err == nil
}

// extractArchive unpacks a local archive into dest, as `tar -x` would, each
// entry confined to the stage root.
func (c *copier) extractArchive(file, dest string) error {
	tr, closer, err := openArchive(file)
	if err != nil {
		return err
	}
	defer closer.Close()
	if err := c.mkdirParents(dest); err != nil {
		return err
	}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading archive %s: %w", path.Base(file), err)
		}
		name := path.Clean("/" + hdr.Name)
		if name == "/" {
			continue
		}
		target := path.Join(dest, name)
		if err := c.mkdirParents(path.Dir(target)); err != nil {
			return err
		}
		host, resolved, err := c.destPath(target)
		if err != nil {
			return err
		}
		fi := hdr.FileInfo()
		// BuildKit keeps the archive's owners unless --chown says otherwise.
		uid, gid := hdr.Uid, hdr.Gid
		if c.chownSet {
			uid, gid = c.uid, c.gid
		}
		if existing, err := os.Lstat(host); err == nil && !(existing.IsDir() && hdr.Typeflag == tar.TypeDir) {
			if err := os.RemoveAll(host); err != nil {
				return err
			}
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.Mkdir(host, 0o700); err != nil && !os.IsExist(err) {
				return fmt.Errorf("unpacking %s: %w", resolved, err)
			}
		case tar.TypeReg:
			out, err := os.OpenFile(host, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return fmt.Errorf("unpacking %s: %w", resolved, err)
			}
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("unpacking %s: %w", resolved, err)
			}
		case tar.TypeSymlink:
			if err := os.Symlink(hdr.Linkname, host); err != nil {
				return fmt.Errorf("unpacking %s: %w", resolved, err)
			}
		case tar.TypeLink:
			linkHost, linkResolved, err := c.destPath(path.Join(dest, path.Clean("/"+hdr.Linkname)))
			if err != nil {
				return err
			}
			if !c.dst.holdsContent() && !c.created[linkResolved] {
				// A sparse root holds the image's files empty.
				return fmt.Errorf("hardlink %s to %s, which the archive did not write: %w", resolved, linkResolved, errNeedsRoot)
			}
			if err := os.Link(linkHost, host); err != nil {
				return fmt.Errorf("unpacking hardlink %s: %w", resolved, err)
			}
			c.record(resolved)
			continue
		default:
			// Devices and fifos in an ADDed archive are skipped, as
			// unprivileged docker builds do.
			continue
		}
		if err := finish(host, uid, gid, fi.Mode(), hdr.ModTime, c.epoch); err != nil {
			return fmt.Errorf("unpacking %s: %w", resolved, err)
		}
		c.record(resolved)
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
