// Package layout_test holds the tree to its layering, as Tailscale's
// tstest/deptest does: the appliance and the control plane do not import
// each other (they meet only in api and tunnel, the contract they share),
// product code does not import the test kits, and cmd/ only wires
// commands to the packages that do the work.
package layout_test

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/cameleer/cameleer/"

type pkg struct {
	ImportPath string
	Dir        string
	GoFiles    []string
	Deps       []string
}

// packages lists the module's packages with what they import, directly or
// not, under every build tag the tree uses.
func packages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps=false", "-tags", "node docker payload multinode console", "-json=ImportPath,Dir,GoFiles,Deps", module+"...")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 40 {
		t.Fatalf("go list found %d packages: the listing no longer works", len(pkgs))
	}
	return pkgs
}

func rel(path string) string { return strings.TrimPrefix(path, module) }

func under(path, dir string) bool { p := rel(path); return p == dir || strings.HasPrefix(p, dir+"/") }

func TestLayering(t *testing.T) {
	for _, p := range packages(t) {
		for _, d := range p.Deps {
			if !strings.HasPrefix(d, module) {
				continue
			}
			switch {
			case under(p.ImportPath, "appliance") && under(d, "controlplane"):
				t.Errorf("%s imports %s: the runner and the control plane meet only in api and tunnel", rel(p.ImportPath), rel(d))
			case under(p.ImportPath, "controlplane") && under(d, "appliance"):
				t.Errorf("%s imports %s: the runner and the control plane meet only in api and tunnel", rel(p.ImportPath), rel(d))
			case under(d, "internal/testkit") && !under(p.ImportPath, "internal/testkit") && !under(p.ImportPath, "test"):
				t.Errorf("%s imports the test kit %s", rel(p.ImportPath), rel(d))
			}
		}
	}
}

// TestCommandsOnlyWire: a function in cmd/ is main, a command's
// constructor (new...Command: flags, and a RunE that calls the package
// doing the work), or a helper of at most maxHelper lines.
func TestCommandsOnlyWire(t *testing.T) {
	const maxHelper = 15
	fset := token.NewFileSet()
	for _, p := range packages(t) {
		if !under(p.ImportPath, "cmd") {
			continue
		}
		for _, name := range p.GoFiles {
			f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, decl := range f.Decls {
				fn, ok := decl.(*ast.FuncDecl)
				if !ok || fn.Body == nil {
					continue
				}
				n := fn.Name.Name
				if n == "main" || strings.HasPrefix(n, "new") && strings.HasSuffix(n, "Command") {
					continue
				}
				if lines := fset.Position(fn.End()).Line - fset.Position(fn.Pos()).Line + 1; lines > maxHelper {
					t.Errorf("%s: %s is %d lines: cmd/ wires commands; move what it does into the package it belongs to", fset.Position(fn.Pos()), n, lines)
				}
			}
		}
	}
}
