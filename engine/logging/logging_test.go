package logging

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestTextLooksLikeKaniko(t *testing.T) {
	var buf bytes.Buffer
	log, err := New(&buf, Options{})
	if err != nil {
		t.Fatal(err)
	}
	log.Info("Retrieving image manifest busybox", "platform", "linux/amd64")
	log.Debug("hidden at info")
	got := buf.String()
	if !strings.HasPrefix(got, "INFO[0000] Retrieving image manifest busybox platform=linux/amd64\n") {
		t.Errorf("got %q", got)
	}
}

func TestJSONAndLevels(t *testing.T) {
	var buf bytes.Buffer
	log, err := New(&buf, Options{Format: "json", Verbosity: "debug"})
	if err != nil {
		t.Fatal(err)
	}
	log.Debug("shown", "k", 1)
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil || rec["msg"] != "shown" {
		t.Errorf("not one JSON record: %q (%v)", buf.String(), err)
	}
}

func TestBadOptions(t *testing.T) {
	for _, o := range []Options{{Verbosity: "loud"}, {Format: "xml"}} {
		if _, err := New(&bytes.Buffer{}, o); err == nil {
			t.Errorf("%+v: want an error", o)
		}
	}
}
