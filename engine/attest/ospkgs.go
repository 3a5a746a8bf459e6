package attest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"

	"pault.ag/go/debian/control"
)

// osReleaseFields reads os-release's ID and VERSION_ID (man os-release).
func osReleaseFields(b []byte) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok {
			continue
		}
		out[k] = strings.Trim(v, `"'`)
	}
	return out
}

func distroQualifier(distro map[string]string) string {
	if distro["ID"] == "" {
		return ""
	}
	d := distro["ID"]
	if distro["VERSION_ID"] != "" {
		d += "-" + distro["VERSION_ID"]
	}
	return "distro=" + url.QueryEscape(d)
}

// dpkgPackages lists the installed packages of a dpkg status file.
func dpkgPackages(where, status string, distro map[string]string) ([]Package, error) {
	r, err := control.NewParagraphReader(strings.NewReader(status), nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	ns := distro["ID"]
	if ns == "" {
		ns = "debian"
	}
	var pkgs []Package
	for {
		para, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		name, version := para.Values["Package"], para.Values["Version"]
		if name == "" || version == "" {
			continue
		}
		// dpkg keeps removed-but-configured packages in the file too.
		if st := para.Values["Status"]; st != "" && !strings.HasSuffix(st, " installed") {
			continue
		}
		q := []string{}
		if arch := para.Values["Architecture"]; arch != "" {
			q = append(q, "arch="+url.QueryEscape(arch))
		}
		if d := distroQualifier(distro); d != "" {
			q = append(q, d)
		}
		purl := "pkg:deb/" + url.PathEscape(ns) + "/" + url.PathEscape(name) + "@" + url.PathEscape(version)
		if len(q) > 0 {
			purl += "?" + strings.Join(q, "&")
		}
		pkgs = append(pkgs, Package{Name: name, Version: version, PURL: purl, Location: where})
	}
	return pkgs, nil
}

// apkPackages lists the packages of apk's installed database, whose records
// are blocks of "K:value" lines (P the name, V the version, A the arch),
// separated by blank lines (wiki.alpinelinux.org/wiki/Apk_spec).
func apkPackages(where, db string, distro map[string]string) []Package {
	ns := distro["ID"]
	if ns == "" {
		ns = "alpine"
	}
	var pkgs []Package
	var name, version, arch string
	flush := func() {
		if name != "" && version != "" {
			q := []string{}
			if arch != "" {
				q = append(q, "arch="+url.QueryEscape(arch))
			}
			if d := distroQualifier(distro); d != "" {
				q = append(q, d)
			}
			purl := "pkg:apk/" + url.PathEscape(ns) + "/" + url.PathEscape(name) + "@" + url.PathEscape(version)
			if len(q) > 0 {
				purl += "?" + strings.Join(q, "&")
			}
			pkgs = append(pkgs, Package{Name: name, Version: version, PURL: purl, Location: where})
		}
		name, version, arch = "", "", ""
	}
	sc := bufio.NewScanner(strings.NewReader(db))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			flush()
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch k {
		case "P":
			name = v
		case "V":
			version = v
		case "A":
			arch = v
		}
	}
	flush()
	return pkgs
}
