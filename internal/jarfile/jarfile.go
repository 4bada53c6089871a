// Package jarfile reads a JAR's manifest, for the control plane's upload
// checks and the runner's image builder alike.
package jarfile

import "strings"

// ManifestPath is where a JAR keeps its manifest.
const ManifestPath = "META-INF/MANIFEST.MF"

// MainAttributes parses the main section of a manifest: "Name: value"
// lines up to the first blank line, with continuation lines (which start
// with one space) joined to the line before.
func MainAttributes(manifest []byte) map[string]string {
	m := map[string]string{}
	text := strings.ReplaceAll(strings.ReplaceAll(string(manifest), "\r\n", "\n"), "\n ", "")
	for _, line := range strings.Split(text, "\n") {
		if line == "" {
			break
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m
}
