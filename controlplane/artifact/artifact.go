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
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/cameleer/cameleer/internal/atomicfile"
	"github.com/cameleer/cameleer/internal/httpjson"
	"github.com/cameleer/cameleer/internal/jarfile"
)

// Limits bound what is accepted, and say where the check may use disk.
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
	// MaxDepth is how deep JARs may nest, the upload being 0.
	MaxDepth int
	// TempDir is where a compressed nested JAR is decompressed for the
	// scan ("" for the system's), as a .nested.tmp-* file.
	TempDir string
}

// DefaultLimits suit Camel apps, Spring Boot fat JARs included.
var DefaultLimits = Limits{
	MaxSize:         512 << 20,
	MaxEntries:      100_000,
	MaxRatio:        100,
	MaxUncompressed: 2 << 30,
	MaxNested:       128 << 20,
	MaxDepth:        3, // Spring Boot's libraries are 1 deep
}

// Error is a refusal: Status is the HTTP status to answer. It is the one
// HTTP status error of the project, httpjson's.
type Error = httpjson.StatusError

func refuse(status int, format string, a ...any) *Error {
	return httpjson.Errorf(status, format, a...)
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
	sr := io.NewSectionReader(f, 0, size)
	h := sha256.New()
	if _, err := io.Copy(h, sr); err != nil {
		return info, err
	}
	info.SHA256 = hex.EncodeToString(h.Sum(nil))
	if wantSHA256 != "" && !strings.EqualFold(wantSHA256, info.SHA256) {
		return info, refuse(http.StatusUnprocessableEntity, "SHA-256 mismatch: the upload is %s, the request said %s", info.SHA256, wantSHA256)
	}
	c := checker{lim: lim, vulns: vulns}
	if err := c.directory(sr, "the archive"); err != nil {
		return info, err
	}
	zr, err := zip.NewReader(sr, size)
	if err != nil {
		return info, refuse(http.StatusUnsupportedMediaType, "not a ZIP or JAR file: %v", err)
	}
	if err := c.archive(sr, zr, "", 0); err != nil {
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

// archive checks every entry of zr, read from r (the nested archive at
// prefix, depth deep, if not the upload), and scans the archive's Maven
// descriptors and nested JARs. The entries are counted first, so that what
// is left of MaxEntries for a nested archive bounds all that is open.
func (c *checker) archive(r *io.SectionReader, zr *zip.Reader, prefix string, depth int) error {
	c.entries += len(zr.File)
	if c.entries > c.lim.MaxEntries {
		return refuse(http.StatusUnprocessableEntity, "zip bomb: over %d entries", c.lim.MaxEntries)
	}
	for _, f := range zr.File {
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
			if err := c.nested(r, f, prefix, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// directory refuses the archive in r, named what, if its central directory
// lists or holds more entries than are left of MaxEntries. It comes before
// zip.NewReader, which makes a record of a few hundred bytes for every entry
// before any limit applies: a directory of tiny entries would cost many
// times the upload in memory.
func (c *checker) directory(r *io.SectionReader, what string) error {
	end, ok := centralDirectory(r, r.Size())
	if !ok {
		return nil // zip.NewReader says what is wrong
	}
	left := c.lim.MaxEntries - c.entries
	limit := fmt.Sprint(left)
	if c.entries > 0 {
		limit = fmt.Sprintf("the %d left of %d", left, c.lim.MaxEntries)
	}
	if end.entries > uint64(left) {
		return refuse(http.StatusUnprocessableEntity, "zip bomb: %s lists %d entries, over %s", what, end.entries, limit)
	}
	if end.size > uint64(end.at) {
		return refuse(http.StatusUnprocessableEntity, "zip bomb: %s has a central directory of %d bytes, more than it holds", what, end.size)
	}
	// zip.NewReader reads entries until one is not there and matches their
	// number against the record's only modulo 65536, so count them too:
	// from where the record puts the directory or, if zip.NewReader finds
	// an entry there, from its offset as if nothing came before the archive.
	starts := []int64{end.at - int64(end.size)}
	if end.offset < uint64(starts[0]) {
		starts = append(starts, int64(end.offset))
	}
	for _, off := range starts {
		if countEntries(r, off, left+1) > left {
			return refuse(http.StatusUnprocessableEntity, "zip bomb: %s holds over %s entries", what, limit)
		}
	}
	return nil
}

// directoryEnd is what an archive's end of central directory record says.
type directoryEnd struct {
	entries, size, offset uint64
	at                    int64 // where the record, the ZIP64 one if any, starts
}

// centralDirectory reads the end of central directory record of the
// archive in r (size bytes), false if there is none. It finds the record
// zip.NewReader does, lest the two disagree.
func centralDirectory(r io.ReaderAt, size int64) (directoryEnd, bool) {
	le := binary.LittleEndian
	// The last signature in the last 65 KiB, none if its comment runs past
	// the end.
	buf := make([]byte, min(size, 65<<10))
	if n, _ := r.ReadAt(buf, size-int64(len(buf))); n < len(buf) {
		return directoryEnd{}, false
	}
	i := bytes.LastIndex(buf[:max(len(buf)-18, 0)], []byte("PK\x05\x06"))
	if i < 0 || i+22+int(le.Uint16(buf[i+20:])) > len(buf) {
		return directoryEnd{}, false
	}
	b := buf[i:]
	end := directoryEnd{
		entries: uint64(le.Uint16(b[10:])),
		size:    uint64(le.Uint32(b[12:])),
		offset:  uint64(le.Uint32(b[16:])),
		at:      size - int64(len(b)),
	}
	// zip.NewReader also takes a size of 0xffff to mean ZIP64.
	zip64 := end.entries == 0xffff || end.size == 0xffff || end.size == 0xffffffff || end.offset == 0xffffffff
	if !zip64 || end.at < 20 {
		return end, true
	}
	loc := make([]byte, 20)
	if n, _ := r.ReadAt(loc, end.at-20); n < len(loc) {
		return directoryEnd{}, false
	}
	at := int64(le.Uint64(loc[8:]))
	if le.Uint32(loc) != 0x07064b50 || le.Uint32(loc[4:]) != 0 || le.Uint32(loc[16:]) != 1 || at < 0 {
		return end, true // no ZIP64 locator: the record's numbers hold
	}
	b = make([]byte, 56)
	if n, _ := r.ReadAt(b, at); n < len(b) || le.Uint32(b) != 0x06064b50 {
		return directoryEnd{}, false
	}
	return directoryEnd{entries: le.Uint64(b[32:]), size: le.Uint64(b[40:]), offset: le.Uint64(b[48:]), at: at}, true
}

// countEntries counts, up to limit, the central directory entries that
// follow one another from off in r, as zip.NewReader reads them.
func countEntries(r *io.SectionReader, off int64, limit int) int {
	le := binary.LittleEndian
	br := bufio.NewReader(io.NewSectionReader(r, off, r.Size()-off))
	var h [46]byte
	n := 0
	for ; n < limit; n++ {
		if _, err := io.ReadFull(br, h[:]); err != nil || le.Uint32(h[:]) != 0x02014b50 {
			break
		}
		// Its name, extra field and comment.
		skip := int(le.Uint16(h[28:])) + int(le.Uint16(h[30:])) + int(le.Uint16(h[32:]))
		if _, err := br.Discard(skip); err != nil {
			break
		}
	}
	return n
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
	var b bytes.Buffer
	if err := copyEntry(&b, f, f.Name); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// copyEntry writes the entry f, named name, to w, refusing one that is
// larger than its header says.
func copyEntry(w io.Writer, f *zip.File, name string) error {
	rc, err := f.Open()
	if err != nil {
		return refuse(http.StatusUnprocessableEntity, "entry %q: %v", name, err)
	}
	defer rc.Close()
	n, err := io.Copy(w, io.LimitReader(rc, int64(f.UncompressedSize64)+1))
	var pe *fs.PathError
	if errors.As(err, &pe) {
		// Reading the upload's file or writing a temp file failed: the
		// server's trouble, not the upload's fault.
		return fmt.Errorf("entry %q: %w", name, err)
	}
	if err != nil {
		return refuse(http.StatusUnprocessableEntity, "entry %q: %v", name, err)
	}
	if uint64(n) > f.UncompressedSize64 {
		return refuse(http.StatusUnprocessableEntity, "zip bomb: entry %q is larger than its header says", name)
	}
	return nil
}

// nested checks the JAR f of the archive read from r, depth deep. Neither
// kind is held in memory: a stored one, as Spring Boot keeps its libraries,
// is read in place, and a compressed one from a temp file.
func (c *checker) nested(r *io.SectionReader, f *zip.File, prefix string, depth int) error {
	name := prefix + f.Name
	if depth > c.lim.MaxDepth {
		return refuse(http.StatusUnprocessableEntity, "entry %q is a JAR nested %d deep, over the limit of %d", name, depth, c.lim.MaxDepth)
	}
	if f.UncompressedSize64 > c.lim.MaxNested {
		return refuse(http.StatusUnprocessableEntity, "entry %q is %d bytes, over %d", name, f.UncompressedSize64, c.lim.MaxNested)
	}
	var body *io.SectionReader
	if f.Method == zip.Store {
		off, err := f.DataOffset()
		if err != nil {
			return refuse(http.StatusUnprocessableEntity, "entry %q: %v", name, err)
		}
		if f.CompressedSize64 != f.UncompressedSize64 || off+int64(f.CompressedSize64) > r.Size() {
			return refuse(http.StatusUnprocessableEntity, "entry %q: %v", name, zip.ErrFormat)
		}
		body = io.NewSectionReader(r, off, int64(f.CompressedSize64))
	} else {
		tmp, err := extract(f, name, c.lim.TempDir)
		if err != nil {
			return err
		}
		defer tmp.Close()
		body = io.NewSectionReader(tmp, 0, int64(f.UncompressedSize64))
	}
	if err := c.directory(body, fmt.Sprintf("entry %q", name)); err != nil {
		return err
	}
	zr, err := zip.NewReader(body, body.Size())
	if err != nil {
		return nil // a .jar that is not a ZIP is not a library
	}
	return c.archive(body, zr, name+"!/", depth)
}

// extract decompresses the entry f, named name, into a temp file in dir.
// The file is unlinked at once and read while open, so that nothing is left
// behind however the check ends.
func extract(f *zip.File, name, dir string) (*os.File, error) {
	tmp, err := os.CreateTemp(dir, atomicfile.TempPattern("nested"))
	if err != nil {
		return nil, fmt.Errorf("decompress entry %q: %w", name, err)
	}
	if err := os.Remove(tmp.Name()); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("decompress entry %q: %w", name, err)
	}
	if err := copyEntry(tmp, f, name); err != nil {
		tmp.Close()
		return nil, err
	}
	return tmp, nil
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
