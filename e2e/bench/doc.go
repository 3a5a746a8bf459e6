// Package bench holds Slipway's speed and memory benchmarks (`make bench`):
// the same build contexts built by slipway-build, by `docker build` and by
// `buildah bud` in one run, reported as times, peak memory and ratios.
// Nothing here asserts a timing; the numbers go to the notes.
//
// What is measured, and how it is kept fair:
//
//   - Every tool builds and then pushes to the same loopback distribution
//     registry (harness.StartRegistry): a CI build's job ends with the push.
//     The wall time is build plus push; the table also shows the two parts
//     for docker and buildah, which run them as two commands.
//   - Cold builds. slipway-build has no local image store, so it pulls and
//     unpacks the base image inside its timed run, as it does in a pod.
//     docker and buildah get the base pulled into their stores before the
//     clock starts (docker: `docker pull` into dockerd; buildah: `buildah
//     pull` into a private --root made for this context), and then build
//     with no cache (docker: --no-cache; buildah: --layers=false, a fresh
//     store per context). That favours docker and buildah a little; it
//     removes the registry's speed from their numbers.
//   - docker is Docker 20.10's legacy builder (DOCKER_BUILDKIT=0) with
//     --network host. buildah is Debian's 1.28 with --isolation chroot,
//     its store under a temp dir (overlay where it mounts, vfs otherwise),
//     so that nothing global is touched. slipway-build runs in chroot mode.
//
// Memory. Two figures are reported, because no single one is comparable
// across a CLI tool and a daemon:
//
//   - peak-MiB, for slipway and buildah, is ru_maxrss from wait4 on the
//     tool's process: the peak resident set of the largest single process
//     in its tree (the tool itself or any waited-for descendant, such as a
//     RUN command), not the sum of the tree.
//   - tree-MiB is the peak over time of the summed RSS of a process tree,
//     sampled from /proc every 50 ms (shared pages counted in each process,
//     so it overstates). For docker it is the only figure that means
//     anything: the docker client does no work, so the tree is dockerd and
//     its descendants (containerd, shims, the RUN containers), and the
//     table shows dockerd's idle figure beside it.
//
// Contexts: a busybox base with COPY and RUN steps; a Debian base with
// apt-get install of a few small packages then the app code; a RUN that
// creates 20,000 small files followed by a RUN that changes one (snapshot
// cost); a RUN that writes a 1 GiB file (memory must stay bounded: layers
// are streamed).
//
// BenchmarkRebuild is the frame of issue 4's cache benchmark: rebuilds of
// the Debian app after (a) no change, (b) an app code change and (c) a
// dependency file change, with docker's warm daemon cache and buildah
// --layers (its store kept, or empty each time with --cache-from/--cache-to
// the registry) as references. Slipway's half is slipwayRebuild: a fresh
// slipway-build --cache process each time, its only state the registry and
// --cache-dir; it is skipped, with a note, while --cache is a placeholder.
//
// BenchmarkEmulatedRun is the cost of a RUN for another architecture: the
// same busybox-sh loop built for linux/amd64 (native) and linux/arm64
// (under the machine's QEMU binfmt handler), reported as ratio-emulated.
// On this 2-core machine: 4.0 s native, 40.9 s emulated, a ratio of 10.1.
//
// Run it as root with dockerd running and buildah installed. It builds
// slipway-build from this tree; SLIPWAY_BUILD_BIN=/abs/path/slipway-build
// measures a given binary instead. While tuning, SLIPWAY_BENCH_TOOLS=slipway
// (a comma-separated list) runs only those tools' halves of the rebuild
// benchmark, and SLIPWAY_BENCH_VERBOSITY=info prints slipway-build's JSON
// log, with timestamps, to stderr. On an idle machine it takes about 5
// minutes; under load from other work, 16.
//
//	make bench
//	go test -run '^$' -bench . -benchtime 1x -timeout 60m ./e2e/bench/...
//	go test -run '^$' -bench 'ColdBuild/busybox' -benchtime 1x ./e2e/bench/
package bench
