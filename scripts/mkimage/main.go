// Command mkimage builds one reproducible OCI image archive from a root
// filesystem directory. The Makefile calls it for each system image of the
// engine; see scripts/build-images.sh.
//
//	mkimage -rootfs DIR -ref NAME:TAG -o OUT.tar [-entrypoint /bin/x] [-cmd arg]...
//	        [-user UID] [-env K=V]... [-port 53/udp]... [-label K=V]... [-workdir DIR]
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cameleer/cameleer/appliance/images"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		rootfs, ref, out, user, workdir string
		entrypoint, cmd, env, ports     list
		labels                          list
	)
	flag.StringVar(&rootfs, "rootfs", "", "directory holding the image's files")
	flag.StringVar(&ref, "ref", "", "image name, e.g. cameleer.local/pause:3.10.1")
	flag.StringVar(&out, "o", "", "output archive")
	flag.StringVar(&user, "user", "", "user the image runs as")
	flag.StringVar(&workdir, "workdir", "", "working directory")
	flag.Var(&entrypoint, "entrypoint", "entrypoint argument (repeatable)")
	flag.Var(&cmd, "cmd", "cmd argument (repeatable)")
	flag.Var(&env, "env", "K=V environment variable (repeatable)")
	flag.Var(&ports, "port", "exposed port, e.g. 53/udp (repeatable)")
	flag.Var(&labels, "label", "K=V label (repeatable)")
	flag.Parse()
	if rootfs == "" || ref == "" || out == "" {
		return fmt.Errorf("-rootfs, -ref and -o are required")
	}
	lm := map[string]string{}
	for _, l := range labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			return fmt.Errorf("label %q is not K=V", l)
		}
		lm[k] = v
	}

	layer, err := images.LayerFromDir(rootfs)
	if err != nil {
		return err
	}
	img, err := images.Build(nil, []v1.Layer{layer}, images.Config{
		Entrypoint: entrypoint, Cmd: cmd, Env: env, User: user, WorkingDir: workdir,
		Labels: lm, ExposedPorts: ports,
	})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	tmp := out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if err := images.WriteArchive(f, img, ref); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}
