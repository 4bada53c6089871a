package sbom

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

// The test binary is a real Go binary: its modules must show up in the bill.
func TestWriteListsGoModules(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	mods, err := GoModules(exe)
	if err != nil {
		t.Fatal(err)
	}
	if len(mods) == 0 || mods[0].Name != "stdlib" {
		t.Fatalf("modules = %+v", mods)
	}
	parts := []Package{
		{Name: "a", Version: "v1", SHA256: "00", Contains: mods},
		{Name: "b", Version: "v2", SHA256: "11", Contains: mods},
	}
	var buf bytes.Buffer
	if err := Write(&buf, "cameleer", "abc", time.Unix(0, 0), parts); err != nil {
		t.Fatal(err)
	}
	var doc document
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.SPDXVersion != "SPDX-2.3" || doc.CreationInfo.Created != "1970-01-01T00:00:00Z" {
		t.Fatalf("header = %+v", doc)
	}
	// Two parts plus each module once.
	if got, want := len(doc.Packages), 2+len(mods); got != want {
		t.Fatalf("%d packages, want %d", got, want)
	}
	if got, want := len(doc.Relationships), 2+2*len(mods); got != want {
		t.Fatalf("%d relationships, want %d", got, want)
	}
	for _, p := range doc.Packages {
		if strings.ContainsAny(strings.TrimPrefix(p.SPDXID, "SPDXRef-"), "/@_ ") {
			t.Fatalf("invalid SPDX ID %q", p.SPDXID)
		}
	}
	var again bytes.Buffer
	Write(&again, "cameleer", "abc", time.Unix(0, 0), parts)
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Fatal("the same input gave a different bill")
	}
}
