package server

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestOpenAPICoversRoutes keeps docs/api/openapi.yaml true: every route the
// API serves has its path and method there.
func TestOpenAPICoversRoutes(t *testing.T) {
	src, err := os.ReadFile("routes.go")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := readOpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	// The routes mounted by hand (health, metrics), then the API's table.
	routes := regexp.MustCompile(`Handle(?:Func)?\("(?:([A-Z]+) )?(/[^"]*)"`).FindAllStringSubmatch(string(src), -1)
	for _, rt := range (&Server{}).apiRoutes() {
		method, path, ok := strings.Cut(rt.pattern, " ")
		if !ok {
			method, path = "", rt.pattern
		}
		routes = append(routes, []string{rt.pattern, method, path})
	}
	if len(routes) < 20 {
		t.Fatalf("found only %d routes: the pattern no longer matches", len(routes))
	}
	paths := parsePaths(doc)
	for _, r := range routes {
		method, path := strings.ToLower(r[1]), strings.TrimSuffix(strings.ReplaceAll(r[2], "{path...}", "{path}"), "/")
		if path == "/api/v1" || path == "" {
			continue // the authenticated sub-router's mount point; the console (web) at /
		}
		methods, ok := paths[path]
		if !ok {
			t.Errorf("%s is served but not in openapi.yaml", path)
			continue
		}
		if method != "" && !methods[method] {
			t.Errorf("%s %s is served but not in openapi.yaml", r[1], path)
		}
	}
}

func readOpenAPI() (string, error) {
	b, err := os.ReadFile("../../docs/api/openapi.yaml")
	return string(b), err
}

// parsePaths reads the paths and their methods from an OpenAPI document
// laid out as ours is (two-space indents).
func parsePaths(doc string) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	var cur string
	for _, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(line, "  /") && strings.HasSuffix(line, ":") {
			cur = strings.TrimSuffix(strings.TrimSpace(line), ":")
			out[cur] = map[string]bool{}
			continue
		}
		if cur != "" && strings.HasPrefix(line, "    ") && !strings.HasPrefix(line, "     ") {
			out[cur][strings.TrimSuffix(strings.Fields(line)[0], ":")] = true
		}
		if !strings.HasPrefix(line, " ") {
			cur = ""
		}
	}
	return out
}
