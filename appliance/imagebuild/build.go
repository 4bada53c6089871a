// Package imagebuild turns an app's JAR into an immutable image without a Docker
// daemon: the Java runtime base image, a layer with the Cameleer agent, the
// app's layers, and a config that starts the app with the agent attached.
// A Spring Boot fat JAR is unpacked into three layers, as Spring Boot's
// layertools and Jib do: dependencies, the loader, and the application, so
// a new version of the app with the same dependencies reuses that layer.
// Every layer is reproducible: the same inputs give the same digest.
package imagebuild

import (
	"archive/zip"
	"bytes"
	"fmt"
	"io"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/appliance/images"
	"github.com/cameleer/cameleer/internal/jarfile"
)

// Where things go in an app image.
const (
	AgentPath = "/cameleer/agent.jar"
	AppDir    = "/app"
	// User runs the app; the base image defines it.
	User = "10001:10001"
	// AgentPort is where the agent serves the JVM's facts.
	AgentPort = api.AgentPort
)

// Input is what an app image is made of.
type Input struct {
	// Base is the Java runtime image (/opt/java).
	Base v1.Image
	// Agent is the agent JAR's content.
	Agent []byte
	// App is the app JAR's content.
	App []byte
	// Env is added to the image's environment (KEY=VALUE).
	Env []string
	// Labels are set on the image.
	Labels map[string]string
	// Cache, when not nil, reuses the layers of earlier builds.
	Cache *Cache
}

// Result is a built image and how it starts.
type Result struct {
	Image      v1.Image
	SpringBoot bool
	// Layers are the app's layers' digests, dependencies first.
	Layers []v1.Hash
}

// Image builds the app image.
func Image(in Input) (Result, error) {
	var res Result
	if in.Base == nil || len(in.Agent) == 0 || len(in.App) == 0 {
		return res, fmt.Errorf("build: base image, agent and app are all needed")
	}
	zr, err := zip.NewReader(bytes.NewReader(in.App), int64(len(in.App)))
	if err != nil {
		return res, fmt.Errorf("build: the app is not a JAR: %w", err)
	}
	mainClass, err := mainClass(zr)
	if err != nil {
		return res, err
	}
	agentLayer, err := in.Cache.layer([]images.File{{Name: strings.TrimPrefix(AgentPath, "/"), Mode: 0o644, Data: in.Agent}})
	if err != nil {
		return res, err
	}
	layers := []v1.Layer{agentLayer}
	cmd := []string{"/opt/java/bin/java", "-javaagent:" + AgentPath}
	if isSpringBoot(zr, mainClass) {
		res.SpringBoot = true
		appLayers, err := springBootLayers(zr, in.Cache)
		if err != nil {
			return res, err
		}
		layers = append(layers, appLayers...)
		// The exploded layout starts from the loader on the class path.
		cmd = append(cmd, "-cp", AppDir, mainClass)
	} else {
		l, err := in.Cache.layer([]images.File{{Name: strings.TrimPrefix(AppDir, "/") + "/app.jar", Mode: 0o644, Data: in.App}})
		if err != nil {
			return res, err
		}
		layers = append(layers, l)
		cmd = append(cmd, "-jar", AppDir+"/app.jar")
	}
	for _, l := range layers[1:] {
		d, err := l.Digest()
		if err != nil {
			return res, err
		}
		res.Layers = append(res.Layers, d)
	}
	env := append([]string{fmt.Sprintf("CAMELEER_AGENT_PORT=%d", AgentPort)}, in.Env...)
	res.Image, err = images.Build(in.Base, layers, images.Config{
		Entrypoint:   cmd,
		Env:          env,
		User:         User,
		WorkingDir:   AppDir,
		Labels:       in.Labels,
		ExposedPorts: []string{fmt.Sprintf("%d/tcp", AgentPort)},
	})
	return res, err
}

func mainClass(zr *zip.Reader) (string, error) {
	for _, f := range zr.File {
		if f.Name != jarfile.ManifestPath {
			continue
		}
		b, err := readEntry(f)
		if err != nil {
			return "", err
		}
		if mc := jarfile.MainAttributes(b)["Main-Class"]; mc != "" {
			return mc, nil
		}
	}
	return "", fmt.Errorf("build: the app has no Main-Class")
}

func isSpringBoot(zr *zip.Reader, mainClass string) bool {
	if !strings.HasPrefix(mainClass, "org.springframework.boot.loader.") {
		return false
	}
	for _, f := range zr.File {
		if strings.HasPrefix(f.Name, "BOOT-INF/") {
			return true
		}
	}
	return false
}

// springBootLayers unpacks a fat JAR under AppDir in three layers: the
// released dependencies (BOOT-INF/lib, not -SNAPSHOT), the loader
// (org/springframework/boot/loader), and everything else (the app's classes
// and resources, snapshot dependencies, META-INF).
func springBootLayers(zr *zip.Reader, cache *Cache) ([]v1.Layer, error) {
	var deps, loader, app []images.File
	root := strings.TrimPrefix(AppDir, "/")
	for _, f := range zr.File {
		if strings.HasSuffix(f.Name, "/") {
			continue
		}
		b, err := readEntry(f)
		if err != nil {
			return nil, err
		}
		file := images.File{Name: path.Join(root, f.Name), Mode: 0o644, Data: b}
		switch {
		case strings.HasPrefix(f.Name, "BOOT-INF/lib/") && !strings.Contains(f.Name, "-SNAPSHOT"):
			deps = append(deps, file)
		case strings.HasPrefix(f.Name, "org/springframework/boot/loader/"):
			loader = append(loader, file)
		default:
			app = append(app, file)
		}
	}
	var layers []v1.Layer
	for _, files := range [][]images.File{deps, loader, app} {
		l, err := cache.layer(files)
		if err != nil {
			return nil, err
		}
		layers = append(layers, l)
	}
	return layers, nil
}

func readEntry(f *zip.File) ([]byte, error) {
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("build: %s: %w", f.Name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("build: %s: %w", f.Name, err)
	}
	return b, nil
}
