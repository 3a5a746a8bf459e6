package main

import (
	"bytes"
	"encoding/base64"
	"io"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func remoteImage(d name.Digest) (v1.Image, error) {
	return remote.Image(d, remote.WithAuthFromKeychain(authn.DefaultKeychain))
}

func v1Hash(d name.Digest) (v1.Hash, error) { return v1.NewHash(d.DigestStr()) }

func decodeBase64(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
