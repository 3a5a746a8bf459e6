// Package dockerfile is Slipway's Dockerfile front end. It parses with
// BuildKit's parser and instructions packages and ports the meaning BuildKit
// gives them (frontend/dockerfile/dockerfile2llb), keeping the typed
// instructions apart from their execution:
//
//   - Parse reads a Dockerfile, accepts `# syntax=docker/dockerfile:1.x` as
//     the built-in syntax and refuses what Slipway cannot honour, with the
//     line of the offending instruction.
//   - Dockerfile.Plan resolves the global ARGs and each FROM, picks the
//     target and returns the stages it needs, each with the earlier stages
//     it depends on, so a builder can run independent stages in parallel.
//   - Scope carries one stage's ARG and ENV state with BuildKit's
//     precedence and expands instructions with it, just before each runs.
//   - ParseTriggers turns a base image's ONBUILD triggers into commands.
//   - Ignore matches .dockerignore patterns as BuildKit does and walks a
//     context, pruning excluded directories where `!` exceptions allow.
package dockerfile
