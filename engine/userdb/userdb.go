// Package userdb resolves user and group names the way the image sees them:
// from the /etc/passwd and /etc/group of the root filesystem being built,
// never from the machine running the build.
package userdb

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// User is a resolved identity for a process or for file ownership.
type User struct {
	UID, GID uint32
	// Groups are the supplementary groups the user belongs to in /etc/group.
	Groups []uint32
	// Home is the HOME a process gets when its environment has none:
	// runc, under BuildKit, takes it from the first passwd entry with the
	// process's uid, and "/" when there is none.
	Home string
}

type passwdEntry struct {
	name     string
	uid, gid uint32
	home     string
}

type groupEntry struct {
	name    string
	gid     uint32
	members []string
}

// ResolveUser resolves a USER value ("name", "uid", "name:group",
// "uid:gid") for running a process: without a group the primary group
// comes from /etc/passwd, and supplementary groups from /etc/group.
func ResolveUser(root, spec string) (User, error) {
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	if userPart == "" {
		userPart = "0"
	}
	passwd, err := readPasswd(root)
	if err != nil {
		return User{}, err
	}
	// BuildKit's fast path (executor/oci.ParseUIDGID): with both ids
	// numeric, or "root", no user database is read for them.
	if hasGroup {
		uid, ok1 := fileOpID(userPart)
		gid, ok2 := fileOpID(groupPart)
		if ok1 && ok2 {
			return User{UID: uid, GID: gid, Groups: []uint32{gid}, Home: homeOf(passwd, uid)}, nil
		}
	}
	var u User
	var name string
	if id, ok := numeric(userPart); ok {
		u.UID, u.GID = id, 0
		for _, p := range passwd {
			if p.uid == id {
				u.GID, name = p.gid, p.name
				break
			}
		}
	} else {
		p, found := findPasswd(passwd, userPart)
		if !found {
			return User{}, fmt.Errorf("unable to find user %s: no matching entries in /etc/passwd of the image", userPart)
		}
		u.UID, u.GID, name = p.uid, p.gid, p.name
	}
	u.Home = homeOf(passwd, u.UID)
	groups, err := readGroup(root)
	if err != nil {
		return User{}, err
	}
	if hasGroup {
		gid, err := resolveGroup(groups, groupPart)
		if err != nil {
			return User{}, err
		}
		u.GID = gid
		u.Groups = []uint32{gid}
		return u, nil
	}
	// The primary group is a supplementary group too, as runc and
	// BuildKit (ensureAdditionalGids) set it: `id` shows it in groups=.
	u.Groups = []uint32{u.GID}
	if name != "" {
		for _, g := range groups {
			for _, m := range g.members {
				if m == name && g.gid != u.GID {
					u.Groups = append(u.Groups, g.gid)
				}
			}
		}
	}
	return u, nil
}

// ResolveFileOwner resolves a USER value to the owner of the directories
// WORKDIR creates, with the rules of BuildKit's file operations
// (llb.WithUser, readUser), which differ from those for a process: "root"
// and a number need no passwd file and give that id as uid and gid; a name
// takes its passwd entry's uid and gid, and 0:0 when it has none; a group,
// by "root", number or name, sets the gid, and a name /etc/group lacks
// leaves it as it was.
func ResolveFileOwner(root, spec string) (uid, gid uint32, err error) {
	userPart, groupPart, _ := strings.Cut(spec, ":")
	if id, ok := fileOpID(userPart); ok {
		uid, gid = id, id
	} else {
		passwd, err := readPasswd(root)
		if err != nil {
			return 0, 0, err
		}
		if p, found := findPasswd(passwd, userPart); found {
			uid, gid = p.uid, p.gid
		}
	}
	if groupPart == "" {
		return uid, gid, nil
	}
	if id, ok := fileOpID(groupPart); ok {
		return uid, id, nil
	}
	groups, err := readGroup(root)
	if err != nil {
		return 0, 0, err
	}
	for _, g := range groups {
		if g.name == groupPart {
			return uid, g.gid, nil
		}
	}
	return uid, gid, nil
}

// fileOpID is BuildKit's parseUID: "root" is 0 without a passwd file.
func fileOpID(s string) (uint32, bool) {
	if s == "root" {
		return 0, true
	}
	return numeric(s)
}

// ResolveChown resolves a COPY/ADD --chown value as BuildKit's file
// operations do (readUser): a number without a group is also the gid, a
// name without one takes its passwd entry's gid. Unlike BuildKit, which
// silently gives 0:0 for a user or keeps the gid for a group that the
// image does not have, an unknown name is an error here.
func ResolveChown(root, spec string) (uid, gid uint32, err error) {
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	passwd, err := readPasswd(root)
	if err != nil {
		return 0, 0, err
	}
	if id, ok := numeric(userPart); ok {
		uid, gid = id, id
	} else {
		p, found := findPasswd(passwd, userPart)
		if !found {
			return 0, 0, fmt.Errorf("--chown=%s: unable to find user %s in /etc/passwd of the image: use a numeric uid or add the user first", spec, userPart)
		}
		uid, gid = p.uid, p.gid
	}
	if !hasGroup {
		return uid, gid, nil
	}
	groups, err := readGroup(root)
	if err != nil {
		return 0, 0, err
	}
	gid, err = resolveGroup(groups, groupPart)
	if err != nil {
		return 0, 0, fmt.Errorf("--chown=%s: %w", spec, err)
	}
	return uid, gid, nil
}

// homeOf is runc's HOME for a uid: the first passwd entry with it, else /.
func homeOf(passwd []passwdEntry, uid uint32) string {
	for _, p := range passwd {
		if p.uid == uid {
			return p.home
		}
	}
	return "/"
}

func resolveGroup(groups []groupEntry, spec string) (uint32, error) {
	if id, ok := numeric(spec); ok {
		return id, nil
	}
	for _, g := range groups {
		if g.name == spec {
			return g.gid, nil
		}
	}
	return 0, fmt.Errorf("unable to find group %s in /etc/group of the image: use a numeric gid or add the group first", spec)
}

func findPasswd(passwd []passwdEntry, name string) (passwdEntry, bool) {
	for _, p := range passwd {
		if p.name == name {
			return p, true
		}
	}
	return passwdEntry{}, false
}

func numeric(s string) (uint32, bool) {
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err == nil
}

func readPasswd(root string) ([]passwdEntry, error) {
	var out []passwdEntry
	err := readColonFile(root, "etc/passwd", func(f []string) {
		if len(f) < 6 {
			return
		}
		uid, ok1 := numeric(f[2])
		gid, ok2 := numeric(f[3])
		if ok1 && ok2 {
			out = append(out, passwdEntry{name: f[0], uid: uid, gid: gid, home: f[5]})
		}
	})
	return out, err
}

func readGroup(root string) ([]groupEntry, error) {
	var out []groupEntry
	err := readColonFile(root, "etc/group", func(f []string) {
		if len(f) < 3 {
			return
		}
		gid, ok := numeric(f[2])
		if !ok {
			return
		}
		g := groupEntry{name: f[0], gid: gid}
		if len(f) > 3 && f[3] != "" {
			g.members = strings.Split(f[3], ",")
		}
		out = append(out, g)
	})
	return out, err
}

// readColonFile reads a file of the image; a missing file is an empty
// database, as in scratch images, so numeric ids still work.
func readColonFile(root, rel string, line func([]string)) error {
	p, err := inRoot(root, rel)
	if err != nil {
		return err
	}
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading /%s of the image: %w", rel, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		line(strings.Split(text, ":"))
	}
	return sc.Err()
}

// inRoot resolves rel under root, following symlinks as if root were /,
// so that an image's /etc -> somewhere link cannot lead outside it.
func inRoot(root, rel string) (string, error) {
	cur := ""
	parts := strings.Split(rel, "/")
	for hops := 0; len(parts) > 0; {
		part := parts[0]
		parts = parts[1:]
		if part == "" || part == "." {
			continue
		}
		if part == ".." {
			cur = filepath.Dir("/" + cur)[1:]
			continue
		}
		next := filepath.Join(cur, part)
		target, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			cur = next
			continue
		}
		if hops++; hops > 40 {
			return "", fmt.Errorf("too many symlinks resolving /%s in the image", rel)
		}
		if filepath.IsAbs(target) {
			cur = ""
		}
		parts = append(strings.Split(target, "/"), parts...)
	}
	return filepath.Join(root, cur), nil
}
