package deploy

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// sectionRef finds references to a README section: `README.md, "Several nodes"`,
// `README ("Close codes")`, and the same with escaped quotes inside JSON strings.
var sectionRef = regexp.MustCompile(`README(?:\.md)?\s*(?:,\s*|\(\s*)\\?"([^"\\]+)\\?"`)

// TestReferencesNameExistingSections: every README section that the deployment artifacts, the
// docs and the product code point to exists (a heading, or a paragraph that starts with the
// name), and none of them cites a file outside the repository (DESIGN.md, ../shared), which a
// reader of a clone cannot open.
func TestReferencesNameExistingSections(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	exists := func(section string) bool {
		for _, line := range strings.Split(string(readme), "\n") {
			if strings.TrimSpace(strings.TrimLeft(line, "#")) == section || strings.HasPrefix(line, section) {
				return true
			}
		}
		return false
	}
	refs := 0
	err = filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "node_modules", "vendor", "artifacts":
				return filepath.SkipDir
			}
			return nil
		}
		name := d.Name()
		switch {
		case strings.HasSuffix(name, "_test.go"), strings.HasSuffix(name, ".png"):
			return nil
		case !strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, ".yaml") && !strings.HasSuffix(name, ".yml") &&
			!strings.HasSuffix(name, ".conf") && !strings.HasSuffix(name, ".md") && !strings.HasSuffix(name, ".json") &&
			!strings.HasSuffix(name, ".js") && !strings.HasSuffix(name, ".html") && name != "Dockerfile" && name != "Makefile":
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(data), "\n") {
			for _, m := range sectionRef.FindAllStringSubmatch(line, -1) {
				refs++
				if !exists(m[1]) {
					t.Errorf("%s:%d refers to README section %q, which README.md does not have", path, i+1, m[1])
				}
			}
			if strings.Contains(line, "DESIGN.md") || strings.Contains(line, "../shared") {
				t.Errorf("%s:%d cites a file outside the repository: %s", path, i+1, strings.TrimSpace(line))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if refs < 5 {
		t.Errorf("found %d README section references; the pattern no longer matches how they are written", refs)
	}
}
