package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/patternmatcher"
	"golang.org/x/sys/unix"

	"github.com/slipway-build/slipway/engine/dockerfile"
	"github.com/slipway-build/slipway/engine/layer"
	"github.com/slipway-build/slipway/engine/phase"
	"github.com/slipway-build/slipway/engine/rootfs"
	"github.com/slipway-build/slipway/engine/userdb"
)

// copySpec is what COPY and ADD have in common.
type copySpec struct {
	add      bool
	sources  []string
	contents []instructions.SourceContent
	dest     string
	from     string
	chown    string
	chmod    string
	parents  bool
	excludes []string
	checksum string
	unpack   *bool
	text     string
}

func copyFromCopy(c *instructions.CopyCommand) copySpec {
	return copySpec{
		sources: c.SourcePaths, contents: c.SourceContents, dest: c.DestPath,
		from: c.From, chown: c.Chown, chmod: c.Chmod, parents: c.Parents,
		excludes: c.ExcludePatterns, text: "COPY",
	}
}

func copyFromAdd(c *instructions.AddCommand) copySpec {
	return copySpec{
		add: true, sources: c.SourcePaths, contents: c.SourceContents, dest: c.DestPath,
		chown: c.Chown, chmod: c.Chmod, excludes: c.ExcludePatterns,
		checksum: c.Checksum, unpack: c.Unpack, text: "ADD",
	}
}

// sourceTree is where COPY reads from: the build context (with its
// .dockerignore) or another stage's or image's filesystem.
type sourceTree struct {
	root    string
	ignore  func(rel string, isDir bool) (bool, error)
	context bool
}

// copier holds one COPY's settings while it writes files.
type copier struct {
	s        *stage
	dst      root
	tree     sourceTree
	uid      int
	gid      int
	keepIDs  bool
	chownSet bool
	mode     *os.FileMode
	exclude  *patternmatcher.PatternMatcher
	epoch    *time.Time
	changes  []layer.Change
	links    map[uint64]string
	created  map[string]bool
}

func (s *stage) copyTo(ctx context.Context, d root, st *step, spec copySpec) error {
	c := &copier{s: s, dst: d, epoch: s.b.opts.Epoch, links: map[uint64]string{}, created: map[string]bool{}}
	if err := c.setup(ctx, spec); err != nil {
		return err
	}
	dest := spec.dest
	if !path.IsAbs(dest) {
		wd := st.config.WorkingDir
		if wd == "" {
			wd = "/"
		}
		dest = path.Join(wd, dest)
		if strings.HasSuffix(spec.dest, "/") || spec.dest == "." || spec.dest == "" {
			dest += "/"
		}
	}
	// BuildKit copies each source, and each match of a wildcard, on its
	// own: into dest when dest ends in / or is a directory by then, else
	// as dest. Several sources need no trailing slash (docker's classic
	// builder asks for one): without it, the last source wins.
	destIsDir := strings.HasSuffix(dest, "/") || strings.HasSuffix(spec.dest, "/.")

	// As in BuildKit, a wildcard that matches nothing is no error while
	// another source gives files. When none does it is one, as in docker's
	// classic builder and kaniko; BuildKit v0.34.2 builds even that,
	// copying nothing.
	var noMatch error
	matched := len(spec.contents) > 0
	stopCopy := phase.Start(phase.Copy)
	defer stopCopy()
	for _, src := range spec.sources {
		if err := ctx.Err(); err != nil {
			return err
		}
		var err error
		if isURL(src) {
			if !spec.add {
				return fmt.Errorf("source %s: COPY cannot fetch URLs: use ADD", src)
			}
			err = c.addURL(ctx, src, dest, destIsDir, spec.checksum)
		} else {
			err = c.copyLocal(spec, src, dest, destIsDir)
		}
		var empty errEmptyWildcard
		if errors.As(err, &empty) {
			if noMatch == nil {
				noMatch = err
			}
			continue
		}
		if err != nil {
			return err
		}
		matched = true
	}
	if !matched && noMatch != nil {
		return noMatch
	}
	for _, content := range spec.contents {
		if err := c.writeInline(content, dest, destIsDir); err != nil {
			return err
		}
	}
	stopCopy()
	c.created = nil // a path per file copied, not needed to commit them
	return s.commitTo(d, c.changes, copyHistory(spec)+" # buildkit")
}

func copyHistory(spec copySpec) string {
	parts := []string{spec.text}
	if spec.parents {
		parts = append(parts, "--parents")
	}
	if spec.chown != "" {
		parts = append(parts, "--chown="+spec.chown)
	}
	if spec.chmod != "" {
		parts = append(parts, "--chmod="+spec.chmod)
	}
	parts = append(parts, spec.sources...)
	for _, c := range spec.contents {
		parts = append(parts, "<<"+c.Path)
	}
	parts = append(parts, spec.dest)
	return strings.Join(parts, " ")
}

func (c *copier) setup(ctx context.Context, spec copySpec) error {
	s := c.s
	if spec.chown != "" {
		if err := c.dst.revealUserDB(); err != nil {
			return err
		}
		uid, gid, err := userdb.ResolveChown(c.dst.dir(), spec.chown)
		if err != nil {
			return err
		}
		c.uid, c.gid, c.chownSet = int(uid), int(gid), true
	}
	if spec.chmod != "" {
		m, err := strconv.ParseUint(spec.chmod, 8, 32)
		if err != nil || m > 0o7777 {
			return fmt.Errorf("invalid chmod parameter: '%v'. it should be octal string and between 0 and 07777", spec.chmod)
		}
		mode := rootfs.FileMode(uint32(m))
		c.mode = &mode
	}
	if len(spec.excludes) > 0 {
		pm, err := patternmatcher.New(spec.excludes)
		if err != nil {
			return fmt.Errorf("--exclude: %w", err)
		}
		c.exclude = pm
	}
	if spec.from == "" {
		ign := s.b.ignore
		c.tree = sourceTree{root: s.b.opts.ContextDir, ignore: ign.Excluded, context: true}
		return nil
	}
	c.keepIDs = spec.chown == ""
	if s.b.liveRoot(spec.from, spec.sources, s) {
		s.b.opts.Log.Debug("Copying from the stage's files in place", "from", spec.from)
		c.tree = sourceTree{root: "/", ignore: s.b.ignoredIn}
		return nil
	}
	root, err := s.b.fromTree(ctx, spec.from, true, s)
	if err != nil {
		return err
	}
	c.tree = sourceTree{root: root, ignore: func(string, bool) (bool, error) { return false, nil }}
	return nil
}

func (c *copier) copyLocal(spec copySpec, src, dest string, destIsDir bool) error {
	pivot := ""
	if spec.parents {
		if before, after, ok := strings.Cut(src, "/./"); ok {
			pivot, src = before, path.Join(before, after)
		}
	}
	rel, err := c.relSource(src)
	if err != nil {
		return err
	}
	matches := []string{rel}
	if dockerfile.HasWildcard(rel) {
		if matches, err = dockerfile.Glob(c.tree.root, rel, c.tree.ignore); err != nil {
			return err
		}
		if len(matches) == 0 {
			return errEmptyWildcard{src: src, tree: c.tree.describe()}
		}
	}
	for _, m := range matches {
		if c.excluded(m) {
			continue
		}
		host, err := c.resolveSource(m)
		if err != nil {
			return err
		}
		fi, err := os.Stat(host)
		if err != nil {
			return fmt.Errorf("%s: not found in %s%s", src, c.tree.describe(), c.tree.ignoreHint())
		}
		target := dest
		if spec.parents {
			relToPivot := m
			if pivot != "" {
				p, _ := c.relSource(pivot)
				relToPivot = strings.TrimPrefix(strings.TrimPrefix(m, p), "/")
			}
			target = path.Join(dest, relToPivot)
			if fi.IsDir() {
				target += "/"
			}
		} else if !fi.IsDir() && (destIsDir || c.isDir(dest)) {
			target = path.Join(dest, path.Base(m))
		}
		if fi.IsDir() {
			err = c.copyDir(host, m, target)
		} else if spec.add && (spec.unpack == nil || *spec.unpack) && isArchive(host) {
			err = c.extractArchive(host, strings.TrimSuffix(dest, "/")+"/")
		} else if target, err = c.followDest(target); err == nil {
			err = c.copyFile(host, target, fi)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// followDest resolves a file's destination as BuildKit does (fs.RootPath):
// through every symlink, the last one too, inside the root, so that a
// COPY onto a symlink writes where it points, and one onto a dangling
// link creates its target.
func (c *copier) followDest(imagePath string) (string, error) {
	if err := c.dst.reveal(imagePath); err != nil {
		return "", err
	}
	host, err := securejoin.SecureJoin(c.dst.dir(), imagePath)
	if err != nil {
		return "", fmt.Errorf("resolving %s in the image: %w", imagePath, err)
	}
	rel, err := filepath.Rel(c.dst.dir(), host)
	if err != nil {
		return "", err
	}
	return path.Join("/", filepath.ToSlash(rel)), nil
}

// errEmptyWildcard is a wildcard source that matches nothing.
type errEmptyWildcard struct{ src, tree string }

func (e errEmptyWildcard) Error() string {
	return fmt.Sprintf("no source files were specified: %s matches nothing in %s", e.src, e.tree)
}

// excluded reports a source that --exclude names, whether matched by the
// source's own wildcard ("COPY --exclude=*.txt hom* /dir/") or below it.
func (c *copier) excluded(rel string) bool {
	if c.exclude == nil {
		return false
	}
	m, _ := c.exclude.MatchesOrParentMatches(rel)
	if !m {
		m, _ = c.exclude.MatchesOrParentMatches(path.Base(rel))
	}
	return m
}

// relSource cleans a COPY source to a path relative to the source tree.
// In the build context a path may not climb out: docker refuses that too.
func (c *copier) relSource(src string) (string, error) {
	if c.tree.context {
		cleaned := path.Clean(src)
		if cleaned == ".." || strings.HasPrefix(cleaned, "../") {
			return "", fmt.Errorf("forbidden path outside the build context: %s: COPY and ADD only read files inside --context", src)
		}
	}
	rel := strings.TrimPrefix(path.Clean("/"+src), "/")
	if rel == "" {
		rel = "."
	}
	return rel, nil
}

// resolveSource follows symlinks in a source path as if the tree were /,
// so a link in the context can never lead outside it.
func (c *copier) resolveSource(rel string) (string, error) {
	host, err := securejoin.SecureJoin(c.tree.root, rel)
	if err != nil {
		return "", fmt.Errorf("resolving %s: %w", rel, err)
	}
	if rel != "." {
		if excluded, err := c.tree.ignore(rel, false); err != nil {
			return "", err
		} else if excluded {
			return "", fmt.Errorf("%s: not found in %s: it is excluded by .dockerignore", rel, c.tree.describe())
		}
	}
	return host, nil
}

func (t sourceTree) describe() string {
	if t.context {
		return "the build context"
	}
	return "the source stage or image"
}

func (t sourceTree) ignoreHint() string {
	if t.context {
		return " (check the path, relative to --context, and .dockerignore)"
	}
	return ""
}

// copyDir copies a directory's contents (not the directory itself, as
// docker does) to dest. A dest it creates is made as its missing parents
// are, with the --chmod mode (BuildKit v0.34's fsutil copy), else 0755; an
// existing dest keeps its mode. The directories inside take the source's
// mode, or --chmod.
func (c *copier) copyDir(hostSrc, relSrc, dest string) error {
	if err := c.mkdirParents(path.Dir(path.Clean(dest))); err != nil {
		return err
	}
	if err := c.dst.reveal(dest); err != nil {
		return err
	}
	mode := os.FileMode(0o755)
	if c.mode != nil {
		mode = *c.mode
	}
	created, err := mkdirAll(c.dst.dir(), dest, mode, c.parentUID(), c.parentGID(), c.epoch)
	for _, p := range created {
		c.record(p)
	}
	if err != nil {
		return err
	}
	return filepath.WalkDir(hostSrc, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("reading %s: %w", p, err)
		}
		if p == hostSrc {
			return nil
		}
		relInDir, _ := filepath.Rel(hostSrc, p)
		relInDir = filepath.ToSlash(relInDir)
		relInTree := path.Join(relSrc, relInDir)
		if excluded, err := c.tree.ignore(relInTree, d.IsDir()); err != nil {
			return err
		} else if excluded {
			if d.IsDir() && c.tree.context {
				if skip, err := c.s.b.ignore.SkipDir(relInTree); err != nil {
					return err
				} else if skip {
					return filepath.SkipDir
				}
			}
			return nil
		}
		if c.exclude != nil {
			if m, _ := c.exclude.MatchesOrParentMatches(relInDir); m {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
		}
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		target := path.Join(dest, relInDir)
		if info.IsDir() {
			return c.ensureDir(target, info)
		}
		return c.copyFile(p, target, info)
	})
}

// destPath resolves an image path inside the stage root, following the
// image's own symlinks (a COPY to /var/run/x lands where /var/run points),
// and returns the host path and the image path it really names.
func (c *copier) destPath(imagePath string) (host, resolved string, err error) {
	if err := c.dst.reveal(imagePath); err != nil {
		return "", "", err
	}
	dir, base := path.Split(path.Clean(imagePath))
	hostDir, err := securejoin.SecureJoin(c.dst.dir(), dir)
	if err != nil {
		return "", "", fmt.Errorf("resolving %s in the image: %w", imagePath, err)
	}
	relDir, err := filepath.Rel(c.dst.dir(), hostDir)
	if err != nil {
		return "", "", err
	}
	resolved = path.Join("/", filepath.ToSlash(relDir), base)
	return filepath.Join(hostDir, base), resolved, nil
}

// isDir reports whether an image path is an existing directory, which a
// lone file source is copied into rather than over.
func (c *copier) isDir(imagePath string) bool {
	if c.dst.reveal(imagePath) != nil {
		return false
	}
	host, err := securejoin.SecureJoin(c.dst.dir(), imagePath)
	if err != nil {
		return false
	}
	fi, err := os.Stat(host)
	return err == nil && fi.IsDir()
}

func (c *copier) owner(fi os.FileInfo) (int, int) {
	if c.keepIDs {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			return int(st.Uid), int(st.Gid)
		}
	}
	return c.uid, c.gid
}

// ensureDir makes dest a directory with src's mode and the COPY's owner,
// creating missing parents as BuildKit does (owned by the --chown user).
func (c *copier) ensureDir(dest string, src os.FileInfo) error {
	parent := path.Dir(path.Clean(dest))
	if err := c.mkdirParents(parent); err != nil {
		return err
	}
	host, resolved, err := c.destPath(dest)
	if err != nil {
		return err
	}
	if resolved == "/" {
		return nil
	}
	existing, err := os.Lstat(host)
	switch {
	case err == nil && existing.IsDir():
		// Merging into an existing directory leaves its metadata alone.
		return nil
	case err == nil:
		if err := os.RemoveAll(host); err != nil {
			return err
		}
	}
	mode := src.Mode()
	if c.mode != nil {
		mode = *c.mode
	}
	if err := os.Mkdir(host, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", resolved, err)
	}
	uid, gid := c.owner(src)
	if err := finish(host, uid, gid, mode|os.ModeDir, src.ModTime(), c.epoch); err != nil {
		return fmt.Errorf("creating %s: %w", resolved, err)
	}
	c.record(resolved)
	return nil
}

// mkdirParents creates the missing parents of a destination as BuildKit
// does: owned by the --chown user (else root), with the --chmod mode
// verbatim (else 0755).
func (c *copier) mkdirParents(dir string) error {
	mode := os.FileMode(0o755)
	if c.mode != nil {
		mode = *c.mode
	}
	if err := c.dst.reveal(dir); err != nil {
		return err
	}
	created, err := mkdirAll(c.dst.dir(), dir, mode, c.parentUID(), c.parentGID(), c.epoch)
	for _, p := range created {
		c.record(p)
	}
	return err
}

func (c *copier) parentUID() int {
	if c.chownSet {
		return c.uid
	}
	return 0
}

func (c *copier) parentGID() int {
	if c.chownSet {
		return c.gid
	}
	return 0
}

func (c *copier) record(imagePath string) {
	if c.created[imagePath] {
		return
	}
	c.created[imagePath] = true
	c.changes = append(c.changes, layer.Change{Path: imagePath})
}

// copyFile copies a regular file, symlink, device or fifo to dest.
func (c *copier) copyFile(hostSrc, dest string, fi os.FileInfo) error {
	if err := c.mkdirParents(path.Dir(dest)); err != nil {
		return err
	}
	host, resolved, err := c.destPath(dest)
	if err != nil {
		return err
	}
	if existing, err := os.Lstat(host); err == nil {
		if existing.IsDir() && fi.IsDir() {
			return nil
		}
		if err := os.RemoveAll(host); err != nil {
			return fmt.Errorf("replacing %s: %w", resolved, err)
		}
	}
	uid, gid := c.owner(fi)
	mode := fi.Mode()
	if c.mode != nil && fi.Mode()&os.ModeSymlink == 0 {
		mode = *c.mode | (fi.Mode() & os.ModeType)
	}
	// os.Stat gives a *syscall.Stat_t, never x/sys/unix's type.
	st, _ := fi.Sys().(*syscall.Stat_t)
	if st != nil && st.Nlink > 1 && fi.Mode().IsRegular() {
		if first, ok := c.links[st.Ino]; ok {
			if err := os.Link(first, host); err != nil {
				return fmt.Errorf("linking %s: %w", resolved, err)
			}
			c.record(resolved)
			return nil
		}
		c.links[st.Ino] = host
	}
	switch {
	case fi.Mode()&os.ModeSymlink != 0:
		target, err := os.Readlink(hostSrc)
		if err != nil {
			return err
		}
		if err := os.Symlink(target, host); err != nil {
			return fmt.Errorf("creating symlink %s: %w", resolved, err)
		}
	case fi.Mode().IsRegular():
		if err := copyContent(hostSrc, host); err != nil {
			return fmt.Errorf("copying to %s: %w", resolved, err)
		}
	case fi.Mode()&(os.ModeDevice|os.ModeNamedPipe) != 0 && st != nil:
		if err := unix.Mknod(host, st.Mode, int(st.Rdev)); err != nil {
			return fmt.Errorf("creating device %s: %w", resolved, err)
		}
	default:
		return fmt.Errorf("copying %s: unsupported file type %s", resolved, fi.Mode().Type())
	}
	if err := finish(host, uid, gid, mode, fi.ModTime(), c.epoch); err != nil {
		return fmt.Errorf("setting metadata of %s: %w", resolved, err)
	}
	// BuildKit sends the context with its xattrs and keeps them on copy;
	// file capabilities (security.capability) travel this way. They are
	// set after the owner, since chown clears a file's capabilities.
	if err := copyXattrs(hostSrc, host); err != nil {
		return fmt.Errorf("copying extended attributes to %s: %w", resolved, err)
	}
	c.record(resolved)
	return nil
}

// writeInline writes a COPY <<EOF heredoc as a file (mode 0644).
func (c *copier) writeInline(content instructions.SourceContent, dest string, destIsDir bool) error {
	target := dest
	if destIsDir || strings.HasSuffix(dest, "/") {
		target = path.Join(dest, content.Path)
	}
	target, err := c.followDest(target)
	if err != nil {
		return err
	}
	if err := c.mkdirParents(path.Dir(target)); err != nil {
		return err
	}
	host, resolved, err := c.destPath(target)
	if err != nil {
		return err
	}
	if fi, err := os.Lstat(host); err == nil && fi.IsDir() {
		if err := c.dst.reveal(path.Join(resolved, content.Path)); err != nil {
			return err
		}
		host, resolved = filepath.Join(host, content.Path), path.Join(resolved, content.Path)
	}
	_ = os.Remove(host)
	if err := os.WriteFile(host, []byte(content.Data), 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", resolved, err)
	}
	mode := os.FileMode(0o644)
	if c.mode != nil {
		mode = *c.mode
	}
	now := time.Now()
	if err := finish(host, c.uid, c.gid, mode, now, c.epoch); err != nil {
		return err
	}
	c.record(resolved)
	return nil
}

func copyContent(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// finish sets owner, mode and times, in that order, since chown clears
// setuid bits.
func finish(host string, uid, gid int, mode os.FileMode, mtime time.Time, epoch *time.Time) error {
	if err := os.Lchown(host, uid, gid); err != nil {
		return err
	}
	if mode&os.ModeSymlink == 0 {
		if err := unix.Chmod(host, rootfs.UnixMode(mode)); err != nil {
			return err
		}
	}
	if epoch != nil && mtime.After(*epoch) {
		mtime = *epoch
	}
	ts := []unix.Timespec{unix.NsecToTimespec(mtime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	return unix.UtimesNanoAt(unix.AT_FDCWD, host, ts, unix.AT_SYMLINK_NOFOLLOW)
}

func copyXattrs(src, dst string) error {
	x, err := rootfs.ImageXattrs(src)
	if err != nil {
		return err
	}
	for name, value := range x {
		if err := unix.Lsetxattr(dst, name, []byte(value), 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
			return err
		}
	}
	return nil
}

// mkdirAll creates the missing directories of an image path inside root
// and returns the image paths it created.
func mkdirAll(root, imagePath string, mode os.FileMode, uid, gid int, epoch *time.Time) ([]string, error) {
	var created []string
	cur := "/"
	for _, part := range strings.Split(strings.Trim(path.Clean(imagePath), "/"), "/") {
		if part == "" {
			continue
		}
		host, err := securejoin.SecureJoin(root, path.Join(cur, part))
		if err != nil {
			return created, fmt.Errorf("resolving %s in the image: %w", imagePath, err)
		}
		rel, _ := filepath.Rel(root, host)
		cur = path.Join("/", filepath.ToSlash(rel))
		fi, err := os.Stat(host)
		if err == nil {
			if !fi.IsDir() {
				return created, fmt.Errorf("cannot create directory %s: %s exists and is not a directory", imagePath, cur)
			}
			continue
		}
		if parent := path.Dir(cur); parent != "/" {
			// A symlink led to cur, whose parents may be missing too: they
			// are made inside the root, as BuildKit makes the parents of
			// the path a destination resolves to (fs.RootPath, MkdirAll).
			// cur is resolved, so its parent has no symlinks left to
			// follow out of the root.
			if _, err := os.Lstat(filepath.Dir(host)); errors.Is(err, os.ErrNotExist) {
				more, err := mkdirAll(root, parent, mode, uid, gid, epoch)
				created = append(created, more...)
				if err != nil {
					return created, err
				}
			}
		}
		if err := os.Mkdir(host, 0o700); err != nil {
			return created, fmt.Errorf("creating %s: %w", cur, err)
		}
		if err := finish(host, uid, gid, mode|os.ModeDir, time.Now(), epoch); err != nil {
			return created, err
		}
		created = append(created, cur)
	}
	return created, nil
}

func isURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}
