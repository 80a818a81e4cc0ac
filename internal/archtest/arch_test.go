// Package archtest guards the repository's architecture rules with tests:
// every package under cmd/, internal/ and client/ has a package doc comment,
// and the public client/ packages never depend on internal/ code, directly
// or through other packages of the module.
package archtest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

const modulePath = "github.com/photoncloud/photoncloud"

// pkgInfo is what the rules need to know about one package directory.
type pkgInfo struct {
	hasDoc  bool
	imports map[string]bool // import paths of the non-test files
}

// scan parses every package directory under the module root, skipping
// testdata, hidden directories and nested modules (tools/, test/etcdcompat/).
func scan(t *testing.T, root string) map[string]*pkgInfo {
	t.Helper()
	pkgs := map[string]*pkgInfo{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		name := d.Name()
		if path != root && (name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
			return filepath.SkipDir
		}
		if path != root {
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir
			}
		}
		info, err := parseDir(path)
		if err != nil {
			return err
		}
		if info != nil {
			rel, _ := filepath.Rel(root, path)
			pkgs[filepath.ToSlash(rel)] = info
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pkgs
}

// parseDir returns nil for a directory without .go files. A package made of
// test files only (like this one) must carry its doc in a test file.
func parseDir(dir string) (*pkgInfo, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var src, tests []string
	for _, e := range entries {
		n := e.Name()
		switch {
		case e.IsDir() || !strings.HasSuffix(n, ".go"):
		case strings.HasSuffix(n, "_test.go"):
			tests = append(tests, n)
		default:
			src = append(src, n)
		}
	}
	files := src
	if len(files) == 0 {
		files = tests
	}
	if len(files) == 0 {
		return nil, nil
	}
	info := &pkgInfo{imports: map[string]bool{}}
	fset := token.NewFileSet()
	for _, n := range files {
		f, err := parser.ParseFile(fset, filepath.Join(dir, n), nil, parser.ParseComments|parser.ImportsOnly)
		if err != nil {
			return nil, err
		}
		if strings.HasSuffix(f.Name.Name, "_test") {
			continue // external test package; documented by its package under test
		}
		if hasDoc(f) {
			info.hasDoc = true
		}
		if len(src) > 0 {
			for _, imp := range f.Imports {
				p, _ := strconv.Unquote(imp.Path.Value)
				info.imports[p] = true
			}
		}
	}
	return info, nil
}

func hasDoc(f *ast.File) bool {
	return f.Doc != nil && strings.TrimSpace(f.Doc.Text()) != ""
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil || !strings.Contains(string(data), "module "+modulePath+"\n") {
		t.Fatalf("%s is not the module root: %v", root, err)
	}
	return root
}

func underAny(rel string, tops ...string) bool {
	for _, top := range tops {
		if rel == top || strings.HasPrefix(rel, top+"/") {
			return true
		}
	}
	return false
}

func TestPackageDocs(t *testing.T) {
	pkgs := scan(t, moduleRoot(t))
	var missing []string
	for rel, p := range pkgs {
		if underAny(rel, "cmd", "internal", "client") && !p.hasDoc {
			missing = append(missing, rel)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("packages without a package doc comment (add one saying what the package is for):\n  %s", strings.Join(missing, "\n  "))
	}
}

func TestClientDoesNotImportInternal(t *testing.T) {
	pkgs := scan(t, moduleRoot(t))
	for rel := range pkgs {
		if !underAny(rel, "client") {
			continue
		}
		// Walk the module-local import graph so an indirect path through
		// another package (say api/) is caught too.
		seen := map[string]string{rel: ""} // package -> the package that imported it
		queue := []string{rel}
		for len(queue) > 0 {
			cur := queue[0]
			queue = queue[1:]
			p := pkgs[cur]
			if p == nil {
				continue
			}
			for imp := range p.imports {
				local, ok := strings.CutPrefix(imp, modulePath+"/")
				if !ok {
					continue
				}
				if _, done := seen[local]; done {
					continue
				}
				seen[local] = cur
				if underAny(local, "internal") {
					chain := []string{local}
					for at := cur; at != ""; at = seen[at] {
						chain = append([]string{at}, chain...)
					}
					t.Errorf("%s imports internal code: %s", rel, strings.Join(chain, " -> "))
					continue
				}
				queue = append(queue, local)
			}
		}
	}
}

// TestRulesSeeViolations makes sure the scanner is not vacuous: a package
// without doc and a client importing internal/ must be reported.
func TestRulesSeeViolations(t *testing.T) {
	root := t.TempDir()
	write := func(rel, src string) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("internal/nodoc/a.go", "package nodoc\n")
	write("internal/doc/a.go", "// Package doc is documented.\npackage doc\n")
	write("client/x/x.go", "// Package x is a client.\npackage x\n\nimport _ \""+modulePath+"/internal/doc\"\n")
	write("empty/README", "no go files\n")
	pkgs := scan(t, root)
	if len(pkgs) != 3 {
		t.Fatalf("scanned %d packages, want 3: %v", len(pkgs), pkgs)
	}
	if pkgs["internal/nodoc"].hasDoc || !pkgs["internal/doc"].hasDoc {
		t.Fatal("doc detection wrong")
	}
	if !pkgs["client/x"].imports[modulePath+"/internal/doc"] {
		t.Fatal("import not recorded")
	}
}
