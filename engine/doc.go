// Package engine is Slipway's build engine. It holds no code itself; the
// work lives in small packages, each named for what it does, joined at
// narrow interfaces so that each can be tested alone:
//
//	dockerfile   parse a Dockerfile with BuildKit's parser into typed
//	             instructions; ARG/ENV scope and variable expansion with
//	             BuildKit's precedence; the stage graph (--target, unused
//	             stages skipped); .dockerignore matching.
//	buildcontext fetch a build context (dir, tar, http(s), git, s3, gs,
//	             azure) into a local directory: the context Source seam.
//	compressed   recognise and decompress gzip, bzip2, xz and zstd, for
//	             context tarballs and ADD alike.
//	flagvalue    parse kaniko's flag values (build args, key=value pairs,
//	             platforms); a leaf, so slipway-warm links no builder.
//	atomicfile   write a file beside its final path and rename it in.
//	registry     pull and push with go-containerregistry: credentials
//	             (docker config.json), TLS, insecure registries, mirrors,
//	             retries.
//	layer        write an OCI layer from a set of changed paths under a
//	             root directory, streamed through a temp file.
//	rootfs       extract image layers (and ADD's archives) into a root
//	             directory, confined to it, applying whiteouts; the index
//	             snapshots start from.
//	extracted    extracted layers kept on the node by diff ID, so a later
//	             build neither downloads nor decompresses them.
//	snapshot     find what a RUN changed under a root: the Snapshotter seam.
//	run          execute a RUN command in chroot or in-place mode: the
//	             Executor seam.
//	userdb       resolve user and group names in a root's /etc/passwd and
//	             /etc/group.
//	cache        the registry layer cache (content-addressed step keys, the
//	             Store of cached step layers, --cache-repo) and the base-image
//	             layout of --cache-dir (LayoutCache); RUN cache mounts live
//	             in build, extracted layers in extracted.
//	warm         the warmer: fill a --cache-dir with base images.
//	build        the Builder: plans each stage into steps (expanded
//	             instruction, config, cache key; no root or registry), then
//	             runs them on an unpacked, in-place or sparse root and
//	             returns the image; it joins all of the above.
//	publish      the Publisher: push to destinations, write tarballs, OCI
//	             layouts and digest files, only after every push succeeded.
//	job          the whole slipway-build step: parse the inputs, check the
//	             destinations, fetch the context, pick the image source and
//	             caches, build, publish.
//	logging      the log format and verbosity shared by every step.
package engine
