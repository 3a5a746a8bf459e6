package step

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	spdx "github.com/spdx/tools-golang/spdx/v2/v2_3"

	"github.com/slipway-build/slipway/e2e/harness"
)

// An image with a real rpm database: packages built with Debian's rpmbuild
// and installed with rpm into a root (the SQLite rpmdb of rpm 4.16 on,
// Fedora's and RHEL 9's), copied into a scratch image. The SBOM lists
// exactly what rpm -qa lists for that root.
func TestSBOMRPM(t *testing.T) {
	harness.SkipIfShort(t, "rpm and rpmbuild")
	for _, tool := range []string{"rpm", "rpmbuild"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: apt-get install rpm", tool)
		}
	}
	reg := harness.StartRegistry(t)
	ctxDir := writeContext(t, map[string]string{
		"Dockerfile":          "FROM scratch\nCOPY root/ /\n",
		"root/etc/os-release": "ID=fedora\nVERSION_ID=42\n",
	})
	root := filepath.Join(ctxDir, "root")
	top := t.TempDir()
	var rpms []string
	for _, p := range []struct{ name, epoch, version, release string }{
		{"slipway-rpm-one", "", "1.2.3", "4"},
		{"slipway-rpm-two", "2", "0.9", "1.fc42"},
	} {
		spec := filepath.Join(top, p.name+".spec")
		epoch := ""
		if p.epoch != "" {
			epoch = "Epoch: " + p.epoch + "\n"
		}
		harness.WriteFile(t, spec, fmt.Sprintf(`Name: %s
%sVersion: %s
Release: %s
Summary: a test package
License: MIT
BuildArch: noarch
%%description
A test package.
%%install
mkdir -p %%{buildroot}/usr/share/%s
echo %s > %%{buildroot}/usr/share/%s/README
%%files
/usr/share/%s/README
`, p.name, epoch, p.version, p.release, p.name, p.name, p.name, p.name))
		output(t, "rpmbuild", "-bb", "--quiet", "--define", "_topdir "+top, spec)
		rpms = append(rpms, filepath.Join(top, "RPMS", "noarch", fmt.Sprintf("%s-%s-%s.noarch.rpm", p.name, p.version, p.release)))
	}
	// Debian's rpm keeps its database in ~/.rpmdb unless told: /var/lib/rpm
	// is where Fedora's and RHEL's is.
	rpm := func(args ...string) string {
		return output(t, "rpm", append([]string{"--root", root, "--dbpath", "/var/lib/rpm"}, args...)...)
	}
	rpm("--initdb")
	rpm(append([]string{"-i", "--nodeps", "--noscripts", "--ignoreos"}, rpms...)...)
	if _, err := os.Stat(filepath.Join(root, "var/lib/rpm/rpmdb.sqlite")); err != nil {
		t.Fatalf("rpm wrote no SQLite database: %v", err)
	}
	want := strings.Fields(strings.ReplaceAll(rpm("-qa", "--qf", `%{NAME}=%|EPOCH?{%{EPOCH}:}|%{VERSION}-%{RELEASE} `), "=", " "))
	var wantPkgs []string
	for i := 0; i+1 < len(want); i += 2 {
		wantPkgs = append(wantPkgs, want[i]+" "+want[i+1])
	}
	sort.Strings(wantPkgs)
	if len(wantPkgs) != 2 {
		t.Fatalf("rpm -qa lists %q", wantPkgs)
	}

	doc := buildSBOM(t, reg, ctxDir, "team/rpm-sbom")
	got, purls := rpmPackages(doc)
	if strings.Join(got, "\n") != strings.Join(wantPkgs, "\n") {
		t.Errorf("the SBOM's rpm packages differ from rpm -qa's:\nSBOM:   %q\nrpm -qa: %q", got, wantPkgs)
	}
	// syft's purl for the same package.
	const wantPURL = "pkg:rpm/fedora/slipway-rpm-two@0.9-1.fc42?arch=noarch&distro=fedora-42&epoch=2&upstream=slipway-rpm-two-0.9-1.fc42.src.rpm"
	if !slices.Contains(purls, wantPURL) {
		t.Errorf("the SBOM lacks %s: %q", wantPURL, purls)
	}
}

func rpmPackages(doc *spdx.Document) (pkgs, purls []string) {
	for _, p := range doc.Packages {
		for _, ref := range p.PackageExternalReferences {
			if ref.RefType == "purl" && strings.HasPrefix(ref.Locator, "pkg:rpm/") {
				pkgs = append(pkgs, p.PackageName+" "+p.PackageVersion)
				purls = append(purls, ref.Locator)
			}
		}
	}
	sort.Strings(pkgs)
	return pkgs, purls
}

// output runs a command and returns its standard output.
func output(t *testing.T, command string, args ...string) string {
	t.Helper()
	cmd := exec.Command(command, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", command, strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}
