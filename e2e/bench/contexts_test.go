package bench

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-build/slipway/e2e/harness"
)

// buildContext is a Dockerfile and its files, built FROM the image its
// base function pushes to the registry.
type buildContext struct {
	name  string
	about string
	files map[string]string
	base  func(testing.TB, *harness.Registry) string
}

// write puts the context into a fresh directory and returns it.
func (c buildContext) write(b *testing.B) string {
	b.Helper()
	dir := b.TempDir()
	for name, content := range c.files {
		harness.WriteFile(b, filepath.Join(dir, name), content)
	}
	return dir
}

// busyboxApp is a small app on the busybox base: COPYs, RUNs that copy and
// hash what was copied, metadata instructions.
func busyboxApp() buildContext {
	files := map[string]string{
		"Dockerfile": `ARG BASE
FROM ${BASE}
WORKDIR /app
COPY app/ /app/
RUN mkdir -p /data && cp -r /app /data/copy && echo built > /data/stamp
COPY config.txt /etc/app.conf
RUN chmod -R go-w /app && sha256sum /app/*.txt > /app/SUMS
ENV APP_ENV=prod
USER app
CMD ["sh", "-c", "cat /data/stamp"]
`,
		"config.txt": "listen=:8080\n",
	}
	for i := range 30 {
		files[fmt.Sprintf("app/file%02d.txt", i)] = strings.Repeat(fmt.Sprintf("line %d of the app\n", i), 200)
	}
	return buildContext{name: "busybox", about: "busybox base, 3 COPY + 2 RUN", files: files, base: harness.Busybox}
}

// debianPackages are small packages with few dependencies; the rebuild
// benchmark's dependency change adds debianExtraPackage.
const (
	debianPackages     = "jq procps\n"
	debianExtraPackage = "less"
)

// debianApp is the typical app image: the package list, then apt-get,
// then the app code, ordered so that an app code change leaves apt-get
// cached. It is both a cold-build context and issue 4's rebuild app.
func debianApp() buildContext {
	return buildContext{
		name:  "debian-apt",
		about: "Debian minbase, apt-get install jq procps, COPY app code",
		files: map[string]string{
			"Dockerfile": `ARG BASE
FROM ${BASE}
COPY packages.txt /tmp/packages.txt
RUN apt-get update && apt-get install -y --no-install-recommends $(cat /tmp/packages.txt) && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY src/ /app/src/
CMD ["/bin/sh", "/app/src/main.sh"]
`,
			"packages.txt": debianPackages,
			"src/main.sh":  "#!/bin/sh\necho \"hello from $(jq --version)\"\n",
			"src/lib.sh":   "greet() { echo \"hi $1\"; }\n",
		},
		base: harness.Debian,
	}
}

// manyFiles is the snapshot cost case: one RUN creates 20,000 small files
// in 200 directories; the next RUN changes one, so its snapshot has to
// find one change among 20,000 unchanged files.
func manyFiles() buildContext {
	return buildContext{
		name:  "many-files",
		about: "RUN creating 20,000 files, then RUN changing one",
		files: map[string]string{
			"Dockerfile": `ARG BASE
FROM ${BASE}
RUN d=0; while [ $d -lt 200 ]; do mkdir -p /data/d$d; f=0; while [ $f -lt 100 ]; do echo "$d/$f" > /data/d$d/f$f; f=$((f+1)); done; d=$((d+1)); done
RUN echo changed > /data/d7/f7
`,
		},
		base: harness.Busybox,
	}
}

// largeFile is the memory case: a 1 GiB file written by RUN has to be
// streamed into its layer, never held in memory. Zeros keep the pushed
// blob small; the tar and gzip streams still see the full GiB. The base
// links no dd applet, hence /bin/busybox dd.
func largeFile() buildContext {
	return buildContext{
		name:  "large-file",
		about: "RUN dd writing a 1 GiB file",
		files: map[string]string{
			"Dockerfile": `ARG BASE
FROM ${BASE}
RUN /bin/busybox dd if=/dev/zero of=/big.bin bs=1048576 count=1024
`,
		},
		base: harness.Busybox,
	}
}

// multiStageGo is a compiled app: a build stage that installs Debian's Go
// toolchain with apt-get and builds a small program, and a final stage that
// holds only the binary. It is the heaviest workload: a large RUN layer in
// a stage that is never pushed.
func multiStageGo() buildContext {
	return buildContext{
		name:  "multi-stage-go",
		about: "Debian, apt-get install golang-go, go build, binary copied into a fresh stage",
		files: map[string]string{
			"Dockerfile": `ARG BASE
FROM ${BASE} AS build
RUN apt-get update && apt-get install -y --no-install-recommends golang-go && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY go.mod main.go ./
RUN CGO_ENABLED=0 go build -o /out/hello .
FROM ${BASE}
COPY --from=build /out/hello /usr/local/bin/hello
CMD ["hello"]
`,
			"go.mod":  "module example.com/hello\n\ngo 1.19\n",
			"main.go": "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello\") }\n",
		},
		base: harness.Debian,
	}
}
