package main

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"testing"
)

func TestBundlePEM(t *testing.T) {
	a, n, err := bundlePEM()
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := bundlePEM()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Error("two runs gave different bundles")
	}
	// Every block is a CA certificate, and the count printed is the count written.
	blocks := 0
	for rest := a; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if !cert.IsCA {
			t.Errorf("%s is not a CA", cert.Subject)
		}
		blocks++
	}
	if blocks != n || n < 100 {
		t.Errorf("%d PEM blocks, %d counted; want the same, and the ~100+ Mozilla roots", blocks, n)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(a) {
		t.Error("the bundle does not load into a CertPool")
	}
}
