// Command cabundle writes the executor image's CA bundle: the Mozilla (NSS)
// server-authentication roots that golang.org/x/crypto/x509roots/fallback
// carries, as PEM. The module's version is pinned in go.mod and its content
// in go.sum, so the bundle changes only in a reviewed commit that moves that
// version, never with the trust store of the machine that builds the image
// (which may hold a local or proxy CA).
//
//	go run ./steps/image/cabundle -o certs/ca-certificates.crt
//
// Roots that NSS constrains beyond what X.509 can say (a "distrust after"
// date) are left out: a PEM file cannot carry the constraint, and trusting
// them unconstrained would be wider than Mozilla's decision.
package main

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"flag"
	"fmt"
	"os"

	"golang.org/x/crypto/x509roots/fallback/bundle"

	"github.com/slipway-build/slipway/engine/atomicfile"
)

func main() {
	out := flag.String("o", "", "write the PEM bundle here (default: standard output)")
	flag.Parse()
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "cabundle:", err)
		os.Exit(1)
	}
}

func run(out string) error {
	pemBytes, n, err := bundlePEM()
	if err != nil {
		return err
	}
	if out == "" {
		_, err = os.Stdout.Write(pemBytes)
		return err
	}
	if err := atomicfile.WriteFile(out, pemBytes, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "cabundle: %d roots written to %s\n", n, out)
	return nil
}

// bundlePEM encodes the unconstrained roots in the module's order, which is
// stable, so the same module version always gives the same bytes.
func bundlePEM() ([]byte, int, error) {
	var buf bytes.Buffer
	n := 0
	for root := range bundle.Roots() {
		if root.Constraint != nil {
			continue
		}
		cert, err := x509.ParseCertificate(root.Certificate)
		if err != nil {
			return nil, 0, fmt.Errorf("x509roots bundle: %w", err)
		}
		fmt.Fprintf(&buf, "# %s\n", cert.Subject)
		if err := pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: root.Certificate}); err != nil {
			return nil, 0, err
		}
		n++
	}
	if n == 0 {
		return nil, 0, fmt.Errorf("x509roots bundle holds no unconstrained root")
	}
	return buf.Bytes(), n, nil
}
