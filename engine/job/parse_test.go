package job

import (
	"reflect"
	"strings"
	"testing"

	"github.com/slipway-build/slipway/engine/build"
)

func TestParseBuildArgs(t *testing.T) {
	env := map[string]string{"FROM_ENV": "e", "EMPTY": ""}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	got, err := ParseBuildArgs([]string{"A=1", "B=x=y", "C=", "FROM_ENV", "EMPTY", "MISSING"}, lookup)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"A": "1", "B": "x=y", "C": "", "FROM_ENV": "e", "EMPTY": ""}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if _, err := ParseBuildArgs([]string{"=v"}, lookup); err == nil {
		t.Error("an empty name must be refused")
	}
}

func TestParseSecrets(t *testing.T) {
	tests := []struct {
		in      string
		id      string
		want    build.Secret
		wantErr string
	}{
		{in: "id=npm,src=/run/npmrc", id: "npm", want: build.Secret{File: "/run/npmrc"}},
		{in: "id=tok,env=GITHUB_TOKEN", id: "tok", want: build.Secret{Env: "GITHUB_TOKEN"}},
		{in: "id=TOKEN", id: "TOKEN", want: build.Secret{Env: "TOKEN"}},
		{in: "src=/x", wantErr: "id= is required"},
		{in: "id=a,src=/x,env=Y", wantErr: "not both"},
		{in: "id=a,foo=1", wantErr: "unknown field"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSecrets([]string{tt.in})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("want error %q, got %v", tt.wantErr, err)
				}
				return
			}
			if err != nil || got[tt.id] != tt.want {
				t.Errorf("got %v %v", got, err)
			}
		})
	}
}

func TestParsePlatform(t *testing.T) {
	p, err := ParsePlatform("linux/arm64/v8")
	if err != nil || p.OS != "linux" || p.Architecture != "arm64" || p.Variant != "v8" {
		t.Errorf("got %+v %v", p, err)
	}
	if _, err := ParsePlatform("arm64"); err == nil {
		t.Error("want an error for a platform without an OS")
	}
}
