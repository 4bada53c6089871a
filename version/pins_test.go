package version

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadPins(t *testing.T) {
	p := filepath.Join(t.TempDir(), "versions")
	os.WriteFile(p, []byte("# comment\n\nA=v1\n  B=2.0  \n"), 0o644)
	pins, err := ReadPins(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(pins) != 2 || pins["A"] != "v1" || pins["B"] != "2.0" {
		t.Fatalf("pins = %v", pins)
	}
	os.WriteFile(p, []byte("A=v1\nnot a pin\n"), 0o644)
	if _, err := ReadPins(p); err == nil || !strings.Contains(err.Error(), ":2:") {
		t.Fatalf("err = %v, want the bad line named", err)
	}
}
