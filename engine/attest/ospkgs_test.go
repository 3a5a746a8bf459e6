package attest

import (
	"testing"
)

func TestDpkgPackages(t *testing.T) {
	status := `Package: base-files
Essential: yes
Status: install ok installed
Architecture: amd64
Version: 12.4+deb12u5
Description: Debian base system miscellaneous files
 This package contains the basic filesystem hierarchy.

Package: gone
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: libc6
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Version: 2.36-9+deb12u7
`
	pkgs, err := dpkgPackages("/var/lib/dpkg/status", status, map[string]string{"ID": "debian", "VERSION_ID": "12"})
	if err != nil {
		t.Fatal(err)
	}
	want := []Package{
		{"base-files", "12.4+deb12u5", "pkg:deb/debian/base-files@12.4+deb12u5?arch=amd64&distro=debian-12", "/var/lib/dpkg/status"},
		{"libc6", "2.36-9+deb12u7", "pkg:deb/debian/libc6@2.36-9+deb12u7?arch=amd64&distro=debian-12", "/var/lib/dpkg/status"},
	}
	if len(pkgs) != len(want) {
		t.Fatalf("got %+v", pkgs)
	}
	for i := range want {
		if pkgs[i] != want[i] {
			t.Errorf("got %+v, want %+v", pkgs[i], want[i])
		}
	}
}

func TestApkPackages(t *testing.T) {
	db := "C:Q1abc=\nP:musl\nV:1.2.5-r0\nA:x86_64\nT:the musl c library\n\nP:busybox\nV:1.36.1-r29\nA:x86_64\n"
	pkgs := apkPackages("/lib/apk/db/installed", db, map[string]string{"ID": "alpine", "VERSION_ID": "3.20.3"})
	if len(pkgs) != 2 || pkgs[0].Name != "musl" || pkgs[1].Version != "1.36.1-r29" ||
		pkgs[0].PURL != "pkg:apk/alpine/musl@1.2.5-r0?arch=x86_64&distro=alpine-3.20.3" {
		t.Errorf("got %+v", pkgs)
	}
}

func TestIsRPMDB(t *testing.T) {
	for p, want := range map[string]bool{
		"/var/lib/rpm/rpmdb.sqlite":             true,
		"/var/lib/rpm/Packages":                 true,
		"/usr/lib/sysimage/rpm/Packages.db":     true,
		"/usr/share/rpm/Packages":               true,
		"/var/lib/rpm/rpmdb.sqlite-wal":         false,
		"/var/lib/rpm/Basenames":                false,
		"/opt/var/lib/rpm/Packages":             false,
		"/usr/lib/sysimage/rpm/rpmdb.sqlite":    true,
		"/var/lib/dpkg/status":                  false,
		"/usr/lib/sysimage/rpm/sub/Packages.db": false,
	} {
		if got := isRPMDB(p); got != want {
			t.Errorf("isRPMDB(%q) = %v, want %v", p, got, want)
		}
	}
}
