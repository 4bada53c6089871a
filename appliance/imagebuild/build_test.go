package imagebuild

import (
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"

	"github.com/cameleer/cameleer/internal/testkit/testutil"
)

func TestPlainJar(t *testing.T) {
	in := Input{Base: empty.Image, Agent: []byte("agent"), App: testutil.Zip(t, map[string]string{"META-INF/MANIFEST.MF": "Main-Class: a.Main\r\n", "a/Main.class": "x"}), Env: []string{"GREETING=hi"}}
	a, err := Image(in)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Image(in)
	if err != nil {
		t.Fatal(err)
	}
	da, _ := a.Image.Digest()
	db, _ := b.Image.Digest()
	if da != db {
		t.Errorf("same inputs, digests %s and %s", da, db)
	}
	cf, err := a.Image.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/opt/java/bin/java", "-javaagent:/cameleer/agent.jar", "-jar", "/app/app.jar"}
	if a.SpringBoot || len(cf.Config.Entrypoint) != 4 || cf.Config.Entrypoint[3] != want[3] || cf.Config.User != User {
		t.Errorf("config: %+v", cf.Config)
	}
	found := false
	for _, e := range cf.Config.Env {
		found = found || e == "GREETING=hi"
	}
	if !found {
		t.Errorf("env %v lacks GREETING", cf.Config.Env)
	}
}

func TestSpringBootLayers(t *testing.T) {
	app := func(classes string) []byte {
		return testutil.Zip(t, map[string]string{
			"META-INF/MANIFEST.MF": "Main-Class: org.springframework.boot.loader.launch.JarLauncher\r\nStart-Class: a.App\r\n",
			"org/springframework/boot/loader/launch/JarLauncher.class":         "loader",
			"BOOT-INF/lib/camel-core-4.0.0.jar":                                "camel",
			"BOOT-INF/lib/mine-1.0-SNAPSHOT.jar":                               "snapshot",
			"BOOT-INF/classes/a/App.class":                                     classes,
			"BOOT-INF/classes/application.properties":                          "x=1",
			"org/springframework/boot/loader/launch/LaunchedClassLoader.class": "loader2",
		})
	}
	v1, err := Image(Input{Base: empty.Image, Agent: []byte("agent"), App: app("v1")})
	if err != nil {
		t.Fatal(err)
	}
	v2, err := Image(Input{Base: empty.Image, Agent: []byte("agent"), App: app("v2")})
	if err != nil {
		t.Fatal(err)
	}
	if !v1.SpringBoot || len(v1.Layers) != 3 {
		t.Fatalf("layers %v", v1.Layers)
	}
	if v1.Layers[0] != v2.Layers[0] || v1.Layers[1] != v2.Layers[1] {
		t.Error("a new app version rewrote the dependency or loader layer")
	}
	if v1.Layers[2] == v2.Layers[2] {
		t.Error("the application layer did not change with the classes")
	}
	cf, _ := v1.Image.ConfigFile()
	if got := cf.Config.Entrypoint; len(got) != 5 || got[3] != "/app" || got[4] != "org.springframework.boot.loader.launch.JarLauncher" {
		t.Errorf("entrypoint %v", got)
	}
}

func TestRefusesNonJars(t *testing.T) {
	if _, err := Image(Input{Base: empty.Image, Agent: []byte("a"), App: []byte("not a zip")}); err == nil {
		t.Error("built from a non-JAR")
	}
	if _, err := Image(Input{Base: empty.Image, Agent: []byte("a"), App: testutil.Zip(t, map[string]string{"a.class": "x"})}); err == nil {
		t.Error("built without a Main-Class")
	}
}

func TestCacheReusesUnchangedLayers(t *testing.T) {
	app := func(classes string) []byte {
		return testutil.Zip(t, map[string]string{
			"META-INF/MANIFEST.MF": "Main-Class: org.springframework.boot.loader.launch.JarLauncher\r\n",
			"org/springframework/boot/loader/launch/JarLauncher.class": "loader",
			"BOOT-INF/lib/camel-core-4.0.0.jar":                        "camel",
			"BOOT-INF/classes/a/App.class":                             classes,
		})
	}
	cache := &Cache{Max: 4}
	var results []Result
	for _, v := range []string{"v1", "v2", "v1"} {
		res, err := Image(Input{Base: empty.Image, Agent: []byte("agent"), App: app(v), Cache: cache})
		if err != nil {
			t.Fatal(err)
		}
		results = append(results, res)
	}
	uncached, err := Image(Input{Base: empty.Image, Agent: []byte("agent"), App: app("v1")})
	if err != nil {
		t.Fatal(err)
	}
	d0, _ := results[0].Image.Digest()
	d2, _ := results[2].Image.Digest()
	du, _ := uncached.Image.Digest()
	if d0 != du || d2 != du {
		t.Errorf("the cache changed the image: %s %s, uncached %s", d0, d2, du)
	}
	if results[0].Layers[0] != results[1].Layers[0] || results[0].Layers[2] == results[1].Layers[2] {
		t.Errorf("layers %v then %v", results[0].Layers, results[1].Layers)
	}
	if len(cache.layers) > cache.Max {
		t.Errorf("the cache holds %d layers, more than %d", len(cache.layers), cache.Max)
	}
	small := &Cache{MaxBytes: 1} // no layer fits: nothing stays
	if _, err := Image(Input{Base: empty.Image, Agent: []byte("agent"), App: app("v1"), Cache: small}); err != nil {
		t.Fatal(err)
	}
	if len(small.layers) != 0 || small.bytes != 0 {
		t.Errorf("a cache of 1 byte holds %d layers, %d bytes", len(small.layers), small.bytes)
	}
}
