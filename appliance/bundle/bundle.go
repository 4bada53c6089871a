// Package bundle makes and checks the air-gapped bundle: one tar of the
// cameleer binary, install.sh and the SBOM, with SHA256SUMS over them and
// SHA256SUMS.sig, an ed25519 signature of SHA256SUMS by the project's key.
// What checks a bundle is a key it already trusts (the one baked into a
// cameleer binary, docs/install.md): a bundle carries no key of its own.
package bundle

import (
	"archive/tar"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

const (
	// Sums names the checksums file, as `sha256sum -c` reads it.
	Sums = "SHA256SUMS"
	// Signature names the detached signature of Sums.
	Signature = "SHA256SUMS.sig"
)

// Files are what a bundle must carry beside Sums and Signature.
var Files = []string{"cameleer", "install.sh", "cameleer.spdx.json"}

// ParsePublicKey reads a key as `cameleer version` prints it: base64 of
// its DER SubjectPublicKeyInfo, which is also a PEM body for openssl.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	der, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("bundle signing key: %w", err)
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("bundle signing key: %w", err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("bundle signing key: a %T, not ed25519", k)
	}
	return pub, nil
}

// FormatPublicKey is ParsePublicKey's inverse.
func FormatPublicKey(pub ed25519.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err) // an ed25519 key always marshals
	}
	return base64.StdEncoding.EncodeToString(der)
}

// ReadPrivateKey reads a PKCS #8 PEM ed25519 key (what `openssl genpkey
// -algorithm ed25519` writes too).
func ReadPrivateKey(file string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s: no PEM key", file)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: a %T, not ed25519", file, k)
	}
	return priv, nil
}

// PrivateKeyPEM is the key as ReadPrivateKey reads it.
func PrivateKeyPEM(priv ed25519.PrivateKey) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		panic(err) // an ed25519 key always marshals
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// Write writes the bundle to w: under dir/, the files (by base name, from
// their paths), SHA256SUMS and its signature by priv.
func Write(w io.Writer, dir string, priv ed25519.PrivateKey, files []string) error {
	tw := tar.NewWriter(w)
	var sums bytes.Buffer
	for _, f := range files {
		name := filepath.Base(f)
		h, err := addFile(tw, dir, name, f)
		if err != nil {
			return err
		}
		fmt.Fprintf(&sums, "%s  %s\n", h, name)
	}
	for name, b := range map[string][]byte{Sums: sums.Bytes(), Signature: ed25519.Sign(priv, sums.Bytes())} {
		if err := tw.WriteHeader(&tar.Header{Name: dir + "/" + name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := tw.Write(b); err != nil {
			return err
		}
	}
	return tw.Close()
}

func addFile(tw *tar.Writer, dir, name, file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	if err := tw.WriteHeader(&tar.Header{Name: dir + "/" + name, Mode: int64(st.Mode().Perm()), Size: st.Size(), Typeflag: tar.TypeReg,
		ModTime: st.ModTime()}); err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tw, h), f); err != nil {
		return "", fmt.Errorf("bundle %s: %w", file, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Extract checks the bundle in file against pub and extracts it into dst
// (made, or empty), returning where its files are. Nothing is left in dst
// unless every check passed: the signature of SHA256SUMS, each file's
// SHA-256, and every file of Files there, none else.
func Extract(file string, pub ed25519.PublicKey, dst string) (string, error) {
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return "", err
	}
	dir, err := extract(file, pub, dst)
	if err != nil {
		if left, _ := os.ReadDir(dst); left != nil {
			for _, e := range left {
				os.RemoveAll(filepath.Join(dst, e.Name()))
			}
		}
		return "", fmt.Errorf("bundle %s: %w: nothing installed", file, err)
	}
	return dir, nil
}

// ErrTampered says a bundle's content is not what its signature covers.
var ErrTampered = errors.New("does not match its signature")

func extract(file string, pub ed25519.PublicKey, dst string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var dir string
	got := map[string]string{} // name -> sha256
	var sums, sig []byte
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", fmt.Errorf("not a whole tar: %w", err)
		}
		d, name := path.Split(hdr.Name)
		d = strings.TrimSuffix(d, "/")
		if hdr.Typeflag == tar.TypeDir {
			continue
		}
		if hdr.Typeflag != tar.TypeReg || d == "" || strings.Contains(d, "/") || d == ".." || name == "" || (dir != "" && d != dir) {
			return "", fmt.Errorf("unexpected entry %q", hdr.Name)
		}
		dir = d
		switch {
		case name == Sums || name == Signature:
			b, err := io.ReadAll(io.LimitReader(tr, 1<<16))
			if err != nil {
				return "", fmt.Errorf("not a whole tar: %w", err)
			}
			if name == Sums {
				sums = b
			} else {
				sig = b
			}
		case slices.Contains(Files, name):
			if _, dup := got[name]; dup {
				return "", fmt.Errorf("%s twice", name)
			}
			if err := os.MkdirAll(filepath.Join(dst, dir), 0o700); err != nil {
				return "", err
			}
			out, err := os.OpenFile(filepath.Join(dst, dir, name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, os.FileMode(hdr.Mode).Perm()&0o755)
			if err != nil {
				return "", err
			}
			h := sha256.New()
			_, err = io.Copy(io.MultiWriter(out, h), tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return "", fmt.Errorf("%s: not whole: %w", name, err)
			}
			got[name] = hex.EncodeToString(h.Sum(nil))
		default:
			return "", fmt.Errorf("unexpected file %q", name)
		}
	}
	if sums == nil || sig == nil {
		return "", fmt.Errorf("no %s or %s: not a signed bundle", Sums, Signature)
	}
	if !ed25519.Verify(pub, sums, sig) {
		return "", fmt.Errorf("%s %w (signed by another key, or changed)", Sums, ErrTampered)
	}
	want := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(sums)), "\n") {
		h, name, ok := strings.Cut(line, "  ")
		if !ok {
			return "", fmt.Errorf("%s: cannot read %q", Sums, line)
		}
		want[name] = h
	}
	for _, name := range Files {
		switch {
		case got[name] == "":
			return "", fmt.Errorf("no %s in it", name)
		case want[name] != got[name]:
			return "", fmt.Errorf("%s %w: SHA-256 %s, signed %s", name, ErrTampered, got[name], want[name])
		}
	}
	return filepath.Join(dst, dir), nil
}

// Install checks the bundle in file against key (a public key as
// version.SigningKey holds it) and puts its cameleer into binDir by a
// rename, returning where. Nothing is put anywhere unless every check
// passed.
func Install(file, key, binDir string) (string, error) {
	if key == "" {
		return "", errors.New("this cameleer was built without a bundle signing key (not by make): it trusts no bundle")
	}
	pub, err := ParsePublicKey(key)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return "", err
	}
	// Beside the target: the same file system, so the rename below is one.
	tmp, err := os.MkdirTemp(binDir, ".cameleer-bundle-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	dir, err := Extract(file, pub, tmp)
	if err != nil {
		return "", err
	}
	dst := filepath.Join(binDir, "cameleer")
	if err := os.Rename(filepath.Join(dir, "cameleer"), dst); err != nil {
		return "", err
	}
	return dst, nil
}
