// Command mkbundle makes the air-gapped bundle (make bundle) and keeps the
// key that signs it:
//
//	mkbundle -key FILE keygen      make FILE (PKCS #8 ed25519, 0600) if it is not there
//	mkbundle -key FILE pub         print its public key as cameleer bakes it in
//	mkbundle -key FILE -o OUT -dir NAME FILE...
//	                               write the bundle: the files under NAME/,
//	                               SHA256SUMS and SHA256SUMS.sig
package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cameleer/cameleer/appliance/bundle"
	"github.com/cameleer/cameleer/internal/atomicfile"
)

func main() {
	key := flag.String("key", "", "the signing key (PKCS #8 PEM)")
	out := flag.String("o", "", "the bundle to write")
	dir := flag.String("dir", "cameleer", "the directory the bundle's files are in")
	flag.Parse()
	if err := run(*key, *out, *dir, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "mkbundle:", err)
		os.Exit(1)
	}
}

func run(key, out, dir string, args []string) error {
	if key == "" {
		return errors.New("-key is needed")
	}
	switch {
	case len(args) == 1 && args[0] == "keygen":
		if _, err := os.Stat(key); err == nil {
			return nil
		}
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(key), 0o700); err != nil {
			return err
		}
		_, err = atomicfile.WriteFile(key, bundle.PrivateKeyPEM(priv), 0o600)
		return err
	case len(args) == 1 && args[0] == "pub":
		priv, err := bundle.ReadPrivateKey(key)
		if err != nil {
			return err
		}
		fmt.Println(bundle.FormatPublicKey(priv.Public().(ed25519.PublicKey)))
		return nil
	case out != "" && len(args) > 0:
		priv, err := bundle.ReadPrivateKey(key)
		if err != nil {
			return err
		}
		f, err := os.Create(out + ".new")
		if err != nil {
			return err
		}
		defer os.Remove(out + ".new")
		if err := bundle.Write(f, dir, priv, args); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		return os.Rename(out+".new", out)
	}
	return errors.New("usage: mkbundle -key FILE keygen|pub, or -key FILE -o OUT [-dir NAME] FILE ...: see its doc")
}
