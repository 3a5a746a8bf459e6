package job

import (
	"strings"
	"testing"

	"github.com/slipway-build/slipway/engine/build"
)

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
