// Package sbom writes an SPDX 2.3 JSON software bill of materials for the
// engine payload: every part with its version and digest, and for every Go
// binary each module compiled into it, read from the binary's build info.
package sbom

import (
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Package is one entry of the bill.
type Package struct {
	Name    string
	Version string
	// SHA256 is the hex digest of the package's main file, if it has one.
	SHA256 string
	// PURL is the package URL, e.g. pkg:golang/k8s.io/api@v0.34.3.
	PURL string
	// Contains are the modules compiled into this package.
	Contains []Package
}

// GoModules lists the modules compiled into the Go binary at path.
func GoModules(path string) ([]Package, error) {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read build info of %s: %w", path, err)
	}
	var mods []Package
	add := func(path, version string) {
		mods = append(mods, Package{Name: path, Version: version, PURL: "pkg:golang/" + path + "@" + version})
	}
	add("stdlib", strings.TrimPrefix(bi.GoVersion, "go"))
	for _, d := range bi.Deps {
		if d.Replace != nil {
			d = d.Replace
		}
		add(d.Path, d.Version)
	}
	return mods, nil
}

type document struct {
	SPDXVersion       string         `json:"spdxVersion"`
	DataLicense       string         `json:"dataLicense"`
	SPDXID            string         `json:"SPDXID"`
	Name              string         `json:"name"`
	DocumentNamespace string         `json:"documentNamespace"`
	CreationInfo      creationInfo   `json:"creationInfo"`
	Packages          []spdxPackage  `json:"packages"`
	Relationships     []relationship `json:"relationships"`
}

type creationInfo struct {
	Created  string   `json:"created"`
	Creators []string `json:"creators"`
}

type spdxPackage struct {
	Name             string        `json:"name"`
	SPDXID           string        `json:"SPDXID"`
	VersionInfo      string        `json:"versionInfo"`
	DownloadLocation string        `json:"downloadLocation"`
	FilesAnalyzed    bool          `json:"filesAnalyzed"`
	Checksums        []checksum    `json:"checksums,omitempty"`
	ExternalRefs     []externalRef `json:"externalRefs,omitempty"`
}

type checksum struct {
	Algorithm     string `json:"algorithm"`
	ChecksumValue string `json:"checksumValue"`
}

type externalRef struct {
	ReferenceCategory string `json:"referenceCategory"`
	ReferenceType     string `json:"referenceType"`
	ReferenceLocator  string `json:"referenceLocator"`
}

type relationship struct {
	Element string `json:"spdxElementId"`
	Type    string `json:"relationshipType"`
	Related string `json:"relatedSpdxElement"`
}

// Write writes the bill for the payload named name, identified by its
// SHA-256, as SPDX JSON. created is the build time (the commit time, so the
// output is reproducible). A module found in several parts appears once.
func Write(w io.Writer, name, sha string, created time.Time, parts []Package) error {
	doc := document{
		SPDXVersion:       "SPDX-2.3",
		DataLicense:       "CC0-1.0",
		SPDXID:            "SPDXRef-DOCUMENT",
		Name:              name,
		DocumentNamespace: "https://spdx.cameleer.dev/" + name + "-" + sha,
		CreationInfo:      creationInfo{Created: created.UTC().Format(time.RFC3339), Creators: []string{"Tool: cameleer-mkpayload"}},
	}
	seen := map[string]bool{}
	addPkg := func(p Package) string {
		id := spdxID(p)
		if seen[id] {
			return id
		}
		seen[id] = true
		sp := spdxPackage{Name: p.Name, SPDXID: id, VersionInfo: p.Version, DownloadLocation: "NOASSERTION"}
		if p.SHA256 != "" {
			sp.Checksums = []checksum{{Algorithm: "SHA256", ChecksumValue: p.SHA256}}
		}
		if p.PURL != "" {
			sp.ExternalRefs = []externalRef{{ReferenceCategory: "PACKAGE-MANAGER", ReferenceType: "purl", ReferenceLocator: p.PURL}}
		}
		doc.Packages = append(doc.Packages, sp)
		return id
	}
	for _, p := range parts {
		id := addPkg(p)
		doc.Relationships = append(doc.Relationships, relationship{"SPDXRef-DOCUMENT", "DESCRIBES", id})
		for _, c := range p.Contains {
			doc.Relationships = append(doc.Relationships, relationship{id, "CONTAINS", addPkg(c)})
		}
	}
	sort.SliceStable(doc.Relationships, func(i, j int) bool {
		a, b := doc.Relationships[i], doc.Relationships[j]
		if a.Element != b.Element {
			return a.Element < b.Element
		}
		return a.Related < b.Related
	})
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

var notIDChar = regexp.MustCompile(`[^A-Za-z0-9.-]+`)

// spdxID names a package by name and version; SPDX IDs allow only letters,
// digits, '.' and '-', so a short hash keeps distinct names distinct.
func spdxID(p Package) string {
	h := sha256.Sum256([]byte(p.Name + "@" + p.Version))
	return "SPDXRef-" + notIDChar.ReplaceAllString(p.Name+"-"+p.Version, "-") + "-" + hex.EncodeToString(h[:4])
}
