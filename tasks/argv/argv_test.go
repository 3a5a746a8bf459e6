package argv

import (
	"reflect"
	"testing"
)

func TestExpandListTail(t *testing.T) {
	flags := []string{"--build-arg", "--destination"}
	tests := []struct {
		name string
		in   []string
		want []string
	}{{
		name: "no tail",
		in:   []string{"--context=/src", "--destination=r/a"},
		want: []string{"--context=/src", "--destination=r/a"},
	}, {
		name: "tekton arrays expanded to whole arguments",
		in:   []string{"--context=/src", "--", "--build-arg", "A=1", "B=x y", "--destination", "r/a:1", "r/a:2"},
		want: []string{"--context=/src", "--build-arg=A=1", "--build-arg=B=x y", "--destination=r/a:1", "--destination=r/a:2"},
	}, {
		name: "empty tekton arrays leave only markers",
		in:   []string{"--context=/src", "--", "--build-arg", "--destination"},
		want: []string{"--context=/src"},
	}, {
		name: "argo multi-line parameters",
		in:   []string{"--", "--build-arg", "A=1\nB=2\n", "--destination", "", "--args", "--reproducible\r\n--verbosity=debug"},
		want: []string{"--build-arg=A=1", "--build-arg=B=2", "--reproducible", "--verbosity=debug"},
	}, {
		name: "raw arguments that look like markers of other flags stay verbatim",
		in:   []string{"--", "--args", "--label=a=b", "--cache"},
		want: []string{"--label=a=b", "--cache"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ExpandListTail(tt.in, flags...)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) == 0 && len(tt.want) == 0 {
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ExpandListTail(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestExpandListTailRejectsValueWithoutFlag(t *testing.T) {
	if _, err := ExpandListTail([]string{"--", "A=1"}, "--build-arg"); err == nil {
		t.Fatal("a value right after -- was accepted; want an error naming the list flags")
	}
}
