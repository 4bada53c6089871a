package version

import (
	"fmt"
	"os"
	"strings"
)

// ReadPins parses embed/versions, the one file that pins every part of the
// engine: KEY=VALUE lines, '#' comments and blank lines.
func ReadPins(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read version pins: %w", err)
	}
	pins := map[string]string{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("%s:%d: %q is not KEY=VALUE", path, i+1, line)
		}
		pins[k] = v
	}
	return pins, nil
}
