package attest

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"

	rpmdb "github.com/anchore/go-rpmdb/pkg"
	// The SQLite driver go-rpmdb reads rpmdb.sqlite through (database/sql
	// "sqlite"), the one syft registers for its rpm cataloguer: pure Go, so
	// the binaries stay static.
	_ "modernc.org/sqlite"
)

// isRPMDB tells whether p (cleaned, absolute) is an rpm database, named as
// syft's rpm cataloguer finds them (pkg.RpmDBGlob, here at the image's
// root only): Berkeley DB Packages (RHEL 7 and 8, older SUSE), ndb
// Packages.db (SUSE) and rpmdb.sqlite (Fedora 33 on, RHEL 9 on), under
// /var/lib/rpm, /usr/share/rpm or /usr/lib/sysimage/rpm.
func isRPMDB(p string) bool {
	for _, dir := range []string{"/var/lib/rpm/", "/usr/share/rpm/", "/usr/lib/sysimage/rpm/"} {
		switch strings.TrimPrefix(p, dir) {
		case "Packages", "Packages.db", "rpmdb.sqlite":
			return strings.HasPrefix(p, dir)
		}
	}
	return false
}

// maxRPMDB bounds the rpm database copied out of an image: a large
// distribution's is tens of megabytes.
const maxRPMDB = 1 << 30

// copyRPMDB copies an rpm database out of the image into dir: go-rpmdb,
// like SQLite, reads a file, not a stream.
func copyRPMDB(dir string, r io.Reader) (string, error) {
	f, err := os.CreateTemp(dir, "rpmdb-*")
	if err != nil {
		return "", err
	}
	n, err := io.Copy(f, io.LimitReader(r, maxRPMDB+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n > maxRPMDB {
		err = fmt.Errorf("larger than %d bytes", maxRPMDB)
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// rpmPackages lists the packages of the rpm database copied to file (the
// image's path where), with go-rpmdb, the reader syft's rpm cataloguer is
// built on, named as syft names them: version "EPOCH:VERSION-RELEASE" (no
// "EPOCH:" without an epoch), purl pkg:rpm/DISTRO/NAME@VERSION-RELEASE with
// the arch, epoch, source rpm and distro qualifiers.
func rpmPackages(where, file string, distro map[string]string) ([]Package, error) {
	db, err := rpmdb.Open(file)
	if err != nil {
		return nil, fmt.Errorf("%s: reading the rpm database: %w", where, err)
	}
	defer db.Close()
	list, err := db.ListPackages()
	if err != nil {
		return nil, fmt.Errorf("%s: reading the rpm database: %w", where, err)
	}
	ns := distro["ID"]
	switch {
	case ns == "rhel":
		ns = "redhat"
	case strings.HasPrefix(ns, "opensuse"):
		ns = "opensuse"
	}
	var pkgs []Package
	for _, e := range list {
		if e == nil || e.Name == "" || e.Version == "" {
			continue
		}
		vr := e.Version
		if e.Release != "" {
			vr += "-" + e.Release
		}
		version := vr
		q := map[string]string{}
		if e.Arch != "" {
			q["arch"] = e.Arch
		}
		if e.Epoch != nil {
			version = strconv.Itoa(*e.Epoch) + ":" + vr
			q["epoch"] = strconv.Itoa(*e.Epoch)
		}
		if e.SourceRpm != "" {
			q["upstream"] = e.SourceRpm
		}
		purl := "pkg:rpm/"
		if ns != "" {
			purl += url.PathEscape(ns) + "/"
		}
		purl += url.PathEscape(e.Name) + "@" + url.PathEscape(vr)
		var qs []string
		for k, v := range q {
			qs = append(qs, k+"="+url.QueryEscape(v))
		}
		sort.Strings(qs) // purl qualifiers are sorted by key
		if d := distroQualifier(distro); d != "" {
			qs = append(qs, d)
			sort.Strings(qs)
		}
		if len(qs) > 0 {
			purl += "?" + strings.Join(qs, "&")
		}
		pkgs = append(pkgs, Package{Name: e.Name, Version: version, PURL: purl, Location: where})
	}
	return pkgs, nil
}
