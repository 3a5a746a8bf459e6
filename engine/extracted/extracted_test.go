package extracted

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestKeepThenOpen(t *testing.T) {
	d := Dir(t.TempDir())
	f := d.Create()
	if f == nil {
		t.Fatal("Create: nil")
	}
	content := "a layer tar"
	f.Write([]byte(content))
	sum := sha256.Sum256([]byte(content))
	diffID := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	if err := d.Keep(f, diffID); err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(string(d), "sha256", diffID.Hex+".tar"); d.Path(diffID) != want {
		t.Errorf("Path = %s, want %s", d.Path(diffID), want)
	}
	r, err := d.Open(diffID)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if b, _ := io.ReadAll(r); string(b) != content {
		t.Errorf("kept %q, want %q", b, content)
	}
	entries, _ := os.ReadDir(filepath.Join(string(d), "sha256"))
	if len(entries) != 1 {
		t.Errorf("%d entries, want the one layer and no temporary file", len(entries))
	}
}
