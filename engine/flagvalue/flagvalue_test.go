package flagvalue

import (
	"reflect"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestBuildArgs(t *testing.T) {
	env := map[string]string{"FROM_ENV": "e", "EMPTY": ""}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	got, err := BuildArgs([]string{"A=1", "B=x=y", "C=", "FROM_ENV", "EMPTY", "MISSING"}, lookup)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"A": "1", "B": "x=y", "C": "", "FROM_ENV": "e", "EMPTY": ""}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if _, err := BuildArgs([]string{"=v"}, lookup); err == nil {
		t.Error("an empty name must be refused")
	}
}

func TestPairs(t *testing.T) {
	tests := []struct {
		name          string
		values        []string
		valueRequired bool
		want          map[string]string
		wantErr       string
	}{
		{name: "none", want: nil},
		{name: "last wins, = in value", values: []string{"a=1", "b=x=y", "a=2"}, want: map[string]string{"a": "2", "b": "x=y"}},
		{name: "empty value allowed", values: []string{"a="}, want: map[string]string{"a": ""}},
		{name: "empty value refused", values: []string{"a="}, valueRequired: true, wantErr: `--f "a=": want key=value`},
		{name: "no =", values: []string{"a"}, wantErr: `--f "a": want key=value`},
		{name: "no key", values: []string{"=a"}, wantErr: `--f "=a": want key=value`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Pairs("--f", "key=value", tt.values, tt.valueRequired)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("want error %q, got %v", tt.wantErr, err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v %v, want %v", got, err, tt.want)
			}
		})
	}
}

func TestPlatform(t *testing.T) {
	for in, want := range map[string]v1.Platform{
		// As BuildKit's --platform: containerd's normalisation.
		"linux/arm64/v8": {OS: "linux", Architecture: "arm64"},
		"linux/aarch64":  {OS: "linux", Architecture: "arm64"},
		"linux/arm":      {OS: "linux", Architecture: "arm", Variant: "v7"},
		"linux/arm/v6":   {OS: "linux", Architecture: "arm", Variant: "v6"},
		"linux/x86_64":   {OS: "linux", Architecture: "amd64"},
		"linux/s390x":    {OS: "linux", Architecture: "s390x"},
	} {
		p, err := Platform(in)
		if err != nil || p.OS != want.OS || p.Architecture != want.Architecture || p.Variant != want.Variant {
			t.Errorf("Platform(%q) = %+v, %v; want %+v", in, p, err, want)
		}
	}
	if _, err := Platform("arm64"); err == nil {
		t.Error("want an error for a platform without an OS")
	}
	if p, err := Platform(""); err != nil || p.OS != "" {
		t.Errorf("empty: got %+v %v, want the zero platform", p, err)
	}
}
