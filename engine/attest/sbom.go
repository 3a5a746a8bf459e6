package attest

import (
	"archive/tar"
	"bytes"
	"debug/buildinfo"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx/v2/common"
	spdx "github.com/spdx/tools-golang/spdx/v2/v2_3"
)

// Package is one software package found in an image.
type Package struct {
	Name    string
	Version string
	// PURL is the package URL (github.com/package-url/purl-spec).
	PURL string
	// Location is the file in the image it was found in.
	Location string
}

// maxGoBinary bounds what Packages reads of one file into memory.
const maxGoBinary = 512 << 20

// Packages lists the software in img, from one walk over its flattened
// filesystem:
//   - the dpkg database (var/lib/dpkg/status, and distroless images'
//     var/lib/dpkg/status.d/*), read with pault.ag/go/debian's control
//     file parser;
//   - the apk database (lib/apk/db/installed);
//   - the modules compiled into Go binaries, from the build information
//     the Go linker embeds (debug/buildinfo): the main module, every
//     dependency (a replaced one under its replacement) and the standard
//     library, as syft and govulncheck name them;
//   - the rpm database (Berkeley DB, ndb or SQLite, where syft looks for
//     one), read with go-rpmdb as syft's rpm cataloguer does, from a copy
//     in a temporary directory (WithScratchDir).
func Packages(img v1.Image, opts ...PackagesOption) ([]Package, error) {
	o := packagesOptions{scratchDir: os.TempDir()}
	for _, opt := range opts {
		opt(&o)
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	var pkgs []Package
	var osRelease []byte
	var dpkg, apk [][2]string // (path, content), read once the distro is known
	var rpm [][2]string       // (path, copy), read once the distro is known
	defer func() {
		for _, f := range rpm {
			os.Remove(f[1])
		}
	}()
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading the image's files: %w", err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		p := path.Clean("/" + hdr.Name)
		switch {
		case p == "/etc/os-release" || p == "/usr/lib/os-release":
			if osRelease == nil || p == "/etc/os-release" {
				if osRelease, err = io.ReadAll(io.LimitReader(tr, 64<<10)); err != nil {
					return nil, fmt.Errorf("reading %s: %w", p, err)
				}
			}
			continue
		case p == "/var/lib/dpkg/status" || strings.HasPrefix(p, "/var/lib/dpkg/status.d/") && !strings.HasSuffix(p, ".md5sums"):
			b, err := io.ReadAll(io.LimitReader(tr, 256<<20))
			if err != nil {
				return nil, fmt.Errorf("reading %s: %w", p, err)
			}
			dpkg = append(dpkg, [2]string{p, string(b)})
			continue
		case isRPMDB(p):
			f, err := copyRPMDB(o.scratchDir, tr)
			if err != nil {
				return nil, fmt.Errorf("copying %s out of the image: %w", p, err)
			}
			rpm = append(rpm, [2]string{p, f})
			continue
		case p == "/lib/apk/db/installed":
			b, err := io.ReadAll(io.LimitReader(tr, 256<<20))
			if err != nil {
				return nil, fmt.Errorf("reading %s: %w", p, err)
			}
			apk = append(apk, [2]string{p, string(b)})
			continue
		}
		if hdr.Mode&0o111 == 0 || hdr.Size < 4 || hdr.Size > maxGoBinary {
			continue
		}
		var magic [4]byte
		if _, err := io.ReadFull(tr, magic[:]); err != nil {
			return nil, fmt.Errorf("reading %s: %w", hdr.Name, err)
		}
		if string(magic[:]) != "\x7fELF" {
			continue
		}
		// One buffer of the file's size: the magic, then the rest.
		elf := make([]byte, hdr.Size)
		copy(elf, magic[:])
		if _, err := io.ReadFull(tr, elf[len(magic):]); err != nil {
			return nil, fmt.Errorf("reading %s: %w", hdr.Name, err)
		}
		bi, err := buildinfo.Read(bytes.NewReader(elf))
		if err != nil {
			continue // an ELF file that is not a Go binary
		}
		pkgs = append(pkgs, goModules(bi, p)...)
	}
	distro := osReleaseFields(osRelease)
	for _, f := range dpkg {
		found, err := dpkgPackages(f[0], f[1], distro)
		if err != nil {
			return nil, err
		}
		pkgs = append(pkgs, found...)
	}
	for _, f := range apk {
		pkgs = append(pkgs, apkPackages(f[0], f[1], distro)...)
	}
	for _, f := range rpm {
		found, err := rpmPackages(f[0], f[1], distro)
		if err != nil {
			return nil, err
		}
		pkgs = append(pkgs, found...)
	}
	return pkgs, nil
}

// PackagesOption configures Packages.
type PackagesOption func(*packagesOptions)

type packagesOptions struct{ scratchDir string }

// WithScratchDir is where Packages copies an rpm database to read it (the
// system's temporary directory by default). In in-place mode that is the
// build's work directory: / is the built image there.
func WithScratchDir(dir string) PackagesOption {
	return func(o *packagesOptions) {
		if dir != "" {
			o.scratchDir = dir
		}
	}
}

// GoPackages lists the modules of the Go binaries in img only.
func GoPackages(img v1.Image, opts ...PackagesOption) ([]Package, error) {
	all, err := Packages(img, opts...)
	if err != nil {
		return nil, err
	}
	var pkgs []Package
	for _, p := range all {
		if strings.HasPrefix(p.PURL, "pkg:golang/") {
			pkgs = append(pkgs, p)
		}
	}
	return pkgs, nil
}

func goModules(bi *buildinfo.BuildInfo, loc string) []Package {
	mod := func(m *debug.Module) Package {
		for m.Replace != nil {
			m = m.Replace
		}
		version := m.Version
		return Package{Name: m.Path, Version: version, PURL: goPURL(m.Path, version), Location: loc}
	}
	var pkgs []Package
	if bi.Main.Path != "" {
		pkgs = append(pkgs, mod(&bi.Main))
	}
	for _, d := range bi.Deps {
		pkgs = append(pkgs, mod(d))
	}
	return append(pkgs, Package{Name: "stdlib", Version: bi.GoVersion, PURL: goPURL("stdlib", bi.GoVersion), Location: loc})
}

func goPURL(modPath, version string) string {
	ns, n := path.Split(modPath)
	p := "pkg:golang/"
	if ns != "" {
		p += escapePath(strings.TrimSuffix(ns, "/")) + "/"
	}
	p += url.PathEscape(n)
	if version != "" {
		p += "@" + url.PathEscape(version)
	}
	return p
}

func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i := range parts {
		parts[i] = url.PathEscape(parts[i])
	}
	return strings.Join(parts, "/")
}

// SBOMOptions name the image an SBOM describes.
type SBOMOptions struct {
	// Name is the image's repository, e.g. ghcr.io/slipway-build/slipway.
	Name string
	// Digest is the image's manifest (or index) digest.
	Digest v1.Hash
	// Tool is the creating tool, "slipway-VERSION".
	Tool string
	// Created is the document's creation time.
	Created time.Time
}

// SPDX writes an SPDX 2.3 JSON document: the image as the described package,
// containing pkgs. Packages found more than once (a module linked into
// several binaries) are listed once, with every location in a comment.
func SPDX(pkgs []Package, o SBOMOptions) ([]byte, error) {
	if o.Name == "" || o.Digest.Hex == "" {
		return nil, fmt.Errorf("an SBOM needs the image's name and digest")
	}
	imageID := common.ElementID("Image")
	doc := &spdx.Document{
		SPDXVersion:       spdx.Version,
		DataLicense:       spdx.DataLicense,
		SPDXIdentifier:    "DOCUMENT",
		DocumentName:      o.Name + "@" + o.Digest.String(),
		DocumentNamespace: "https://github.com/slipway-build/slipway/spdx/" + url.PathEscape(o.Name) + "/" + o.Digest.Hex,
		CreationInfo: &spdx.CreationInfo{
			Creators: []common.Creator{{CreatorType: "Tool", Creator: o.Tool}},
			Created:  o.Created.UTC().Format(time.RFC3339),
		},
	}
	doc.Packages = append(doc.Packages, &spdx.Package{
		PackageName:             o.Name,
		PackageSPDXIdentifier:   imageID,
		PackageVersion:          o.Digest.String(),
		PackageDownloadLocation: "NOASSERTION",
		PrimaryPackagePurpose:   "CONTAINER",
		PackageChecksums:        []common.Checksum{{Algorithm: common.SHA256, Value: o.Digest.Hex}},
		PackageExternalReferences: []*spdx.PackageExternalReference{{
			Category: "PACKAGE-MANAGER", RefType: "purl", Locator: ociPURL(o.Name, o.Digest),
		}},
	})
	doc.Relationships = append(doc.Relationships, &spdx.Relationship{
		RefA: common.MakeDocElementID("", "DOCUMENT"), RefB: common.MakeDocElementID("", string(imageID)), Relationship: "DESCRIBES",
	})

	type key struct{ purl, name, version string }
	where := map[key][]string{}
	var order []key
	for _, p := range pkgs {
		k := key{p.PURL, p.Name, p.Version}
		if _, ok := where[k]; !ok {
			order = append(order, k)
		}
		where[k] = append(where[k], p.Location)
	}
	sort.Slice(order, func(i, j int) bool {
		if order[i].name != order[j].name {
			return order[i].name < order[j].name
		}
		return order[i].version < order[j].version
	})
	for i, k := range order {
		id := common.ElementID(fmt.Sprintf("Package-%d", i+1))
		p := &spdx.Package{
			PackageName:             k.name,
			PackageSPDXIdentifier:   id,
			PackageVersion:          k.version,
			PackageDownloadLocation: "NOASSERTION",
			PackageComment:          "found in " + strings.Join(where[k], ", "),
		}
		if k.purl != "" {
			p.PackageExternalReferences = []*spdx.PackageExternalReference{{Category: "PACKAGE-MANAGER", RefType: "purl", Locator: k.purl}}
		}
		doc.Packages = append(doc.Packages, p)
		doc.Relationships = append(doc.Relationships, &spdx.Relationship{
			RefA: common.MakeDocElementID("", string(imageID)), RefB: common.MakeDocElementID("", string(id)), Relationship: "CONTAINS",
		})
	}
	var buf bytes.Buffer
	if err := spdxjson.Write(doc, &buf, spdxjson.Indent("  ")); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func ociPURL(repo string, d v1.Hash) string {
	name := path.Base(repo)
	return "pkg:oci/" + url.PathEscape(name) + "@" + url.PathEscape(d.String()) + "?repository_url=" + url.QueryEscape(repo)
}
