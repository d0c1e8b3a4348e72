package deploy

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// sectionRef finds citations of a section of a repository page: `docs/design.md, "Many nodes"`,
// `docs/client-protocol.md ("Close codes")`, `README.md, "A first look"`, `BENCHMARKS.md,
// "Resume"`, and the same with escaped quotes inside JSON strings. Group 1 is the page, group 2
// the section.
var sectionRef = regexp.MustCompile(`((?:README|BENCHMARKS|SECURITY)(?:\.md)?|docs/[a-z0-9-]+\.md)\s*(?:,\s*|\(\s*)\\?"([^"\\]+)\\?"`)

// mdName finds names of Markdown files ("STYLE.md", "docs/design.md") and relative paths that
// go up ("../notes", "../../docs/x.md"); a citation is one that stays in the repository and
// exists there (see citesOutside).
var mdName = regexp.MustCompile(`(?:\.\./)+[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*|(?:[A-Za-z0-9_-]+/)*[A-Za-z0-9_-]+\.md\b`)

// mdLink finds the targets of Markdown links and images: [text](target) and ![alt](target).
var mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// pendingMerge are link targets that branches merged together with this one add (the status
// page's screenshots, the benchmark charts, SECURITY.md and two docs pages). The test fails once
// one of them exists, so that whoever merges removes it from this list and the link is checked.
var pendingMerge = map[string]bool{}

// repoFiles calls f with the repository-relative path and content of every file the tests of
// this package read: Go code (tests aside), Markdown, YAML, JSON, JavaScript, HTML, nginx
// configuration, the Dockerfile and the Makefile.
func repoFiles(t *testing.T, f func(path string, data []byte)) {
	t.Helper()
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
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
		case strings.HasSuffix(name, "_test.go"), strings.HasSuffix(name, ".png"), strings.HasSuffix(name, ".svg"):
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
		rel, err := filepath.Rel("..", path)
		if err != nil {
			return err
		}
		f(filepath.ToSlash(rel), data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// page is a Markdown page: its headings, the anchors GitHub gives them, and its lines (a
// citation may name a paragraph that starts with the name).
type page struct {
	headings map[string]bool
	anchors  map[string]bool
	lines    []string
}

// readPage reads the page at rel (repository-relative); false if there is none.
func readPage(t *testing.T, rel string) (page, bool) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", filepath.FromSlash(rel)))
	if err != nil {
		return page{}, false
	}
	p := page{headings: map[string]bool{}, anchors: map[string]bool{}, lines: strings.Split(string(data), "\n")}
	fence := false
	for _, line := range p.lines {
		if strings.HasPrefix(line, "```") {
			fence = !fence
			continue
		}
		if fence || !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.TrimSpace(strings.TrimLeft(line, "#"))
		p.headings[h] = true
		a := anchor(h)
		for n := 1; p.anchors[a]; n++ { // GitHub numbers repeated headings: x, x-1, x-2
			a = anchor(h) + "-" + strconv.Itoa(n)
		}
		p.anchors[a] = true
	}
	return p, true
}

// has reports whether the page has the section: a heading, or a paragraph that starts with it.
func (p page) has(section string) bool {
	if p.headings[section] {
		return true
	}
	for _, line := range p.lines {
		if strings.HasPrefix(line, section) || strings.HasPrefix(line, "**"+section) {
			return true
		}
	}
	return false
}

// anchor is GitHub's anchor for a heading: lower case, punctuation other than - and _ dropped,
// spaces made hyphens.
func anchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
		}
	}
	return b.String()
}

// TestReferencesNameExistingSections: every section of a repository page that the deployment
// artifacts, the docs and the product code cite exists (a heading, or a paragraph that starts
// with the name), and none of them cites a file outside the repository (a Markdown file the
// repository does not hold, or a path that climbs out of it), which a reader of a clone cannot
// open.
func TestReferencesNameExistingSections(t *testing.T) {
	mdNames := map[string]bool{} // the base names of the repository's Markdown files
	repoFiles(t, func(path string, _ []byte) {
		if strings.HasSuffix(path, ".md") {
			mdNames[filepath.Base(path)] = true
		}
	})
	pages := map[string]page{}
	refs := 0
	docsRefs := 0
	repoFiles(t, func(path string, data []byte) {
		for i, line := range strings.Split(string(data), "\n") {
			for _, m := range sectionRef.FindAllStringSubmatch(line, -1) {
				refs++
				file := m[1]
				if !strings.HasSuffix(file, ".md") {
					file += ".md"
				}
				if strings.HasPrefix(file, "docs/") {
					docsRefs++
				}
				p, ok := pages[file]
				if !ok {
					if p, ok = readPage(t, file); !ok {
						if !pendingMerge[file] {
							t.Errorf("%s:%d cites %s, which does not exist", path, i+1, file)
						}
						continue
					}
					pages[file] = p
				}
				if !p.has(m[2]) {
					t.Errorf("%s:%d refers to the section %q of %s, which it does not have", path, i+1, m[2], file)
				}
			}
			if strings.HasPrefix(line, "//go:generate ") {
				continue // a build command: it may name outputs a fresh clone has not built yet
			}
			if name, ok := citesOutside(path, line, mdNames); ok {
				t.Errorf("%s:%d cites %s, a file outside the repository: %s", path, i+1, name, strings.TrimSpace(line))
			}
		}
	})
	if refs < 20 || docsRefs < 15 {
		t.Errorf("found %d section citations, %d of docs/ pages; the pattern no longer matches how they are written", refs, docsRefs)
	}
}

// TestMarkdownLinksResolve: every relative link of the repository's Markdown pages (README.md,
// BENCHMARKS.md, docs/) names a file of the repository, and its #anchor, when it has one, a
// heading of that page; so that docs/ stands alone in a clone.
func TestMarkdownLinksResolve(t *testing.T) {
	links := 0
	repoFiles(t, func(path string, data []byte) {
		if !strings.HasSuffix(path, ".md") || strings.HasPrefix(path, "test/") {
			return
		}
		fence := false
		for i, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(line, "```") {
				fence = !fence
			}
			if fence {
				continue
			}
			for _, m := range mdLink.FindAllStringSubmatch(line, -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				links++
				file, frag, _ := strings.Cut(target, "#")
				rel := path
				if file != "" {
					rel = filepath.ToSlash(filepath.Clean(filepath.Join(filepath.Dir(path), file)))
				}
				if strings.HasPrefix(rel, "../") || strings.HasPrefix(file, "/") {
					t.Errorf("%s:%d links outside the repository: %s", path, i+1, target)
					continue
				}
				if _, err := os.Stat(filepath.Join("..", filepath.FromSlash(rel))); err != nil {
					if !pendingMerge[rel] {
						t.Errorf("%s:%d links to %s, which does not exist", path, i+1, rel)
					}
					continue
				}
				if frag == "" || !strings.HasSuffix(rel, ".md") {
					continue
				}
				p, _ := readPage(t, rel)
				if !p.anchors[frag] {
					t.Errorf("%s:%d links to #%s, which %s has no heading for", path, i+1, frag, rel)
				}
			}
		}
	})
	if links < 30 {
		t.Errorf("found %d relative links; the pattern no longer matches how they are written", links)
	}
	for rel := range pendingMerge {
		if _, err := os.Stat(filepath.Join("..", filepath.FromSlash(rel))); err == nil {
			t.Errorf("%s exists now: remove it from pendingMerge, so that links to it are checked", rel)
		}
	}
}

// TestTestsCiteNoFileOutsideTheRepository: test comments, which repoFiles leaves out, cite the
// contracts in docs/ too, never a file a reader of a clone cannot open.
func TestTestsCiteNoFileOutsideTheRepository(t *testing.T) {
	outside := []string{"DESIGN" + ".md", "../" + "shared"} // split so this file does not cite them
	checked := 0
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
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
		if !strings.HasSuffix(d.Name(), "_test.go") || d.Name() == "references_test.go" {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		checked++
		for i, line := range strings.Split(string(data), "\n") {
			for _, o := range outside {
				if strings.Contains(line, o) {
					t.Errorf("%s:%d cites a file outside the repository: %s", path, i+1, strings.TrimSpace(line))
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 50 {
		t.Errorf("checked %d test files; the walk no longer finds them", checked)
	}
}

// citesOutside reports the first Markdown file line names that the repository does not hold: a
// bare name ("design.md", as link texts say) must be the name of one of its files; a path must
// exist from the repository root or beside path (the citing file, relative to the root) and stay
// inside the repository.
func citesOutside(path, line string, names map[string]bool) (string, bool) {
	for _, name := range mdName.FindAllString(line, -1) {
		name = strings.TrimRight(name, ".")
		if !strings.Contains(name, "/") {
			if !names[name] {
				return name, true
			}
			continue
		}
		found := false
		for _, base := range []string{"..", filepath.Join("..", filepath.Dir(path))} {
			full := filepath.Join(base, filepath.FromSlash(name))
			if rel, err := filepath.Rel("..", full); err != nil || strings.HasPrefix(rel, "..") {
				continue // climbs out of the repository from there
			}
			if _, err := os.Stat(full); err == nil {
				found = true
				break
			}
		}
		if !found {
			return name, true
		}
	}
	return "", false
}
