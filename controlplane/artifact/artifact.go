// Package artifact checks an uploaded Camel app before anything is stored:
// it must be a ZIP/JAR within limits, match the SHA-256 the uploader gave,
// hold no entry that escapes its root and no zip bomb, name a Main-Class or
// have the Spring Boot layout, and embed no library known to be vulnerable.
// Every refusal is an *Error with the HTTP status to answer and one line.
package artifact

import (
	"archive/zip"
	"bufio"
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/cameleer/cameleer/internal/jarfile"
)

// Limits bound what is accepted.
type Limits struct {
	// MaxSize is the largest upload.
	MaxSize int64
	// MaxEntries is the most entries in the archive, nested archives
	// counted with their entries.
	MaxEntries int
	// MaxRatio is the highest uncompressed:compressed ratio of an entry
	// larger than 1 MiB.
	MaxRatio uint64
	// MaxUncompressed bounds the sum of the entries' sizes.
	MaxUncompressed uint64
	// MaxNested is the largest nested JAR that is opened for the scan.
	MaxNested uint64
}

// DefaultLimits suit Camel apps, Spring Boot fat JARs included.
var DefaultLimits = Limits{
	MaxSize:         512 << 20,
	MaxEntries:      100_000,
	MaxRatio:        100,
	MaxUncompressed: 2 << 30,
	MaxNested:       128 << 20,
}

// Error is a refusal: Status is the HTTP status to answer.
type Error struct {
	Status int
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

func refuse(status int, format string, a ...any) *Error {
	return &Error{Status: status, Msg: fmt.Sprintf(format, a...)}
}

// Info is what an accepted artifact is.
type Info struct {
	SHA256     string `json:"sha256"`
	Size       int64  `json:"size"`
	MainClass  string `json:"mainClass,omitempty"`
	SpringBoot bool   `json:"springBoot"`
	// StartClass is a Spring Boot app's own main class.
	StartClass string `json:"startClass,omitempty"`
	Entries    int    `json:"entries"`
}

// Check validates the artifact in f (size bytes). wantSHA256, if not empty,
// is the hex SHA-256 the uploader says it sent.
func Check(f io.ReaderAt, size int64, wantSHA256 string, lim Limits, vulns *VulnDB) (Info, error) {
	info := Info{Size: size}
	if size > lim.MaxSize {
		return info, refuse(http.StatusRequestEntityTooLarge, "the artifact is %d bytes, over the limit of %d", size, lim.MaxSize)
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, size)); err != nil {
		return info, err
	}
	info.SHA256 = hex.EncodeToString(h.Sum(nil))
	if wantSHA256 != "" && !strings.EqualFold(wantSHA256, info.SHA256) {
		return info, refuse(http.StatusUnprocessableEntity, "SHA-256 mismatch: the upload is %s, the request said %s", info.SHA256, wantSHA256)
	}
	zr, err := zip.NewReader(f, size)
	if err != nil {
		return info, refuse(http.StatusUnsupportedMediaType, "not a ZIP or JAR file: %v", err)
	}
	c := checker{lim: lim, vulns: vulns}
	if err := c.archive(zr, ""); err != nil {
		return info, err
	}
	info.Entries = c.entries
	m, err := manifest(zr)
	if err != nil {
		return info, err
	}
	info.MainClass, info.StartClass = m["Main-Class"], m["Start-Class"]
	info.SpringBoot = c.bootClasses || strings.HasPrefix(info.MainClass, "org.springframework.boot.loader.")
	if info.MainClass == "" && !info.SpringBoot {
		return info, refuse(http.StatusUnprocessableEntity, "no Main-Class in META-INF/MANIFEST.MF and not a Spring Boot layout: cannot tell how to start it")
	}
	if len(c.found) > 0 {
		return info, refuse(http.StatusUnprocessableEntity, "known-vulnerable %s", strings.Join(c.found, "; "))
	}
	return info, nil
}

type checker struct {
	lim          Limits
	vulns        *VulnDB
	entries      int
	uncompressed uint64
	bootClasses  bool
	found        []string
}

// archive checks every entry of zr (inside the nested archive at prefix, if
// any), and scans the archive's Maven descriptors and nested JARs.
func (c *checker) archive(zr *zip.Reader, prefix string) error {
	for _, f := range zr.File {
		c.entries++
		if c.entries > c.lim.MaxEntries {
			return refuse(http.StatusUnprocessableEntity, "zip bomb: over %d entries", c.lim.MaxEntries)
		}
		name := f.Name
		if err := safeName(name); err != nil {
			return refuse(http.StatusUnprocessableEntity, "entry %q %v", prefix+name, err)
		}
		c.uncompressed += f.UncompressedSize64
		if c.uncompressed > c.lim.MaxUncompressed {
			return refuse(http.StatusUnprocessableEntity, "zip bomb: over %d bytes uncompressed", c.lim.MaxUncompressed)
		}
		if f.UncompressedSize64 > 1<<20 && f.UncompressedSize64 > c.lim.MaxRatio*max(f.CompressedSize64, 1) {
			return refuse(http.StatusUnprocessableEntity, "zip bomb: entry %q expands %d times", prefix+name, f.UncompressedSize64/max(f.CompressedSize64, 1))
		}
		if prefix == "" && strings.HasPrefix(name, "BOOT-INF/classes/") {
			c.bootClasses = true
		}
		switch {
		case strings.HasPrefix(name, "META-INF/maven/") && strings.HasSuffix(name, "/pom.properties"):
			if err := c.pom(f, prefix); err != nil {
				return err
			}
		case strings.HasSuffix(name, ".jar") && !strings.HasSuffix(name, "/") && c.vulns != nil:
			if err := c.nested(f, prefix); err != nil {
				return err
			}
		}
	}
	return nil
}

// safeName refuses names that could escape the directory an archive is
// unpacked into.
func safeName(name string) error {
	switch {
	case strings.HasPrefix(name, "/") || strings.HasPrefix(name, `\`):
		return fmt.Errorf("has an absolute path")
	case len(name) >= 2 && name[1] == ':':
		return fmt.Errorf("has a drive letter")
	case strings.Contains(name, `\`):
		return fmt.Errorf("has a backslash")
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return fmt.Errorf("climbs out with '..'")
		}
	}
	return nil
}

// read reads an entry whole, refusing one that is larger than it says or
// than limit.
func read(f *zip.File, limit uint64) ([]byte, error) {
	if f.UncompressedSize64 > limit {
		return nil, refuse(http.StatusUnprocessableEntity, "entry %q is %d bytes, over %d", f.Name, f.UncompressedSize64, limit)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, refuse(http.StatusUnprocessableEntity, "entry %q: %v", f.Name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, int64(f.UncompressedSize64)+1))
	if err != nil {
		return nil, refuse(http.StatusUnprocessableEntity, "entry %q: %v", f.Name, err)
	}
	if uint64(len(b)) > f.UncompressedSize64 {
		return nil, refuse(http.StatusUnprocessableEntity, "zip bomb: entry %q is larger than its header says", f.Name)
	}
	return b, nil
}

func (c *checker) nested(f *zip.File, prefix string) error {
	b, err := read(f, c.lim.MaxNested)
	if err != nil {
		return err
	}
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil // a .jar that is not a ZIP is not a library
	}
	return c.archive(zr, prefix+f.Name+"!/")
}

func (c *checker) pom(f *zip.File, prefix string) error {
	if c.vulns == nil {
		return nil
	}
	b, err := read(f, 64<<10)
	if err != nil {
		return err
	}
	props := properties(b)
	g, a, v := props["groupId"], props["artifactId"], props["version"]
	if adv := c.vulns.Match(g, a, v); adv != "" {
		where := strings.TrimSuffix(prefix, "!/")
		if where == "" {
			where = f.Name
		}
		c.found = append(c.found, fmt.Sprintf("%s:%s %s in %s: %s", g, a, v, where, adv))
	}
	return nil
}

// properties parses a Java .properties file (key=value lines).
func properties(b []byte) map[string]string {
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '!' {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m
}

// manifest reads the main attributes of the archive's manifest.
func manifest(zr *zip.Reader) (map[string]string, error) {
	for _, f := range zr.File {
		if path.Clean(f.Name) != jarfile.ManifestPath {
			continue
		}
		b, err := read(f, 1<<20)
		if err != nil {
			return nil, err
		}
		return jarfile.MainAttributes(b), nil
	}
	return map[string]string{}, nil
}

//go:embed vulnerable.json
var defaultVulns []byte

// VulnDB is the list of known-vulnerable libraries.
type VulnDB struct {
	Libraries []struct {
		Group    string `json:"group"`
		Artifact string `json:"artifact"`
		From     string `json:"from"`
		To       string `json:"to"`
		Advisory string `json:"advisory"`
	} `json:"libraries"`
}

// LoadVulnDB reads path, or the built-in list when path does not exist.
func LoadVulnDB(path string) (*VulnDB, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) || path == "" {
		b = defaultVulns
	} else if err != nil {
		return nil, err
	}
	var db VulnDB
	if err := json.Unmarshal(b, &db); err != nil {
		return nil, fmt.Errorf("vulnerability list %s: %w", path, err)
	}
	return &db, nil
}

// Match is the advisory for a library version, "" if none applies.
func (db *VulnDB) Match(group, artifact, version string) string {
	if version == "" {
		return ""
	}
	for _, l := range db.Libraries {
		if l.Group == group && l.Artifact == artifact && compareVersions(version, l.From) >= 0 && compareVersions(version, l.To) <= 0 {
			return l.Advisory
		}
	}
	return ""
}

// compareVersions orders Maven versions by their numeric parts; a version
// with a qualifier (2.15.0-rc1) comes before the release (2.15.0).
func compareVersions(a, b string) int {
	na, qa := splitVersion(a)
	nb, qb := splitVersion(b)
	for i := range max(len(na), len(nb)) {
		var x, y int
		if i < len(na) {
			x = na[i]
		}
		if i < len(nb) {
			y = nb[i]
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	switch {
	case qa == qb:
		return 0
	case qa == "":
		return 1
	case qb == "":
		return -1
	}
	return strings.Compare(qa, qb)
}

// splitVersion reads the leading numeric parts of a version and what
// follows them (the qualifier). RELEASE, Final and GA name releases.
func splitVersion(v string) ([]int, string) {
	var nums []int
	rest := v
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 {
			break
		}
		n, _ := strconv.Atoi(rest[:i])
		nums = append(nums, n)
		rest = rest[i:]
		if !strings.HasPrefix(rest, ".") || len(rest) < 2 || rest[1] < '0' || rest[1] > '9' {
			break
		}
		rest = rest[1:]
	}
	qual := strings.TrimLeft(rest, ".-_")
	switch strings.ToUpper(qual) {
	case "RELEASE", "FINAL", "GA":
		qual = ""
	}
	return nums, qual
}
