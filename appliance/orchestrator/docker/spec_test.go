package docker

import (
	"maps"
	"reflect"
	"regexp"
	"testing"

	"github.com/cameleer/cameleer/appliance/orchestrator"
)

// Docker's rule for container names; network names are held to it here
// too.
var dockerNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// Apps whose tenant, environment and name joined with '-' read the same get
// names of their own.
func TestDockerNamesDistinct(t *testing.T) {
	pairs := [][2]orchestrator.App{
		{{Tenant: "acme", Environment: "prod", Name: "eu-api"}, {Tenant: "acme", Environment: "prod-eu", Name: "api"}},
		{{Tenant: "acme-eu", Environment: "prod", Name: "api"}, {Tenant: "acme", Environment: "eu-prod", Name: "api"}},
	}
	for _, p := range pairs {
		a, b := p[0], p[1]
		for _, x := range p {
			if err := checkNames(x); err != nil {
				t.Fatal(err)
			}
			for _, n := range []string{envNetwork(x.Tenant, x.Environment), routerName(x), instanceName(x, 0)} {
				if !dockerNameRE.MatchString(n) {
					t.Errorf("%q is no valid Docker name", n)
				}
			}
			if r := routerName(x); regexp.MustCompile(`[.@]`).MatchString(r) {
				t.Errorf("router name %q has what Traefik's labels split on", r)
			}
		}
		for what, f := range map[string]func(orchestrator.App) string{
			"network":   func(a orchestrator.App) string { return envNetwork(a.Tenant, a.Environment) },
			"router":    routerName,
			"container": func(a orchestrator.App) string { return instanceName(a, 0) },
		} {
			if f(a) == f(b) {
				t.Errorf("%+v and %+v share the %s name %q", a, b, what, f(a))
			}
		}
	}
	if err := checkNames(orchestrator.App{Tenant: "acme", Environment: "prod_eu", Name: "api"}); err == nil {
		t.Error("an environment named with '_', the names' separator, is accepted")
	}
}

// An instance's spec label changes with anything in its definition, its
// routing and host config as much as its image and environment, and with
// nothing else.
func TestDockerSpecDigest(t *testing.T) {
	d := &Orchestrator{AppsDomain: "apps.test"}
	a := orchestrator.App{Tenant: "acme", Environment: "dev", Name: "orders", Image: "reg/orders@sha256:aa", Port: 8080,
		Env: map[string]string{"GREETING": "hello"}, Secrets: map[string]string{"TOKEN": "t0ken"}}
	want := d.appContainer(a, appSpec(a))
	digest := want.Labels[labelSpec]
	if again := d.appContainer(a, appSpec(a)); again.Labels[labelSpec] != digest {
		t.Errorf("the same app gives digests %s and %s", digest, again.Labels[labelSpec])
	}
	if i1 := want.forInstance(1); i1.Labels[labelSpec] != digest || i1.Labels[labelInstance] != "1" || want.Labels[labelInstance] != "" {
		t.Errorf("instance 1: labels %v, from %v", i1.Labels, want.Labels)
	}

	for what, change := range map[string]func(*Orchestrator, *orchestrator.App){
		"apps domain": func(d *Orchestrator, _ *orchestrator.App) { d.AppsDomain = "apps.example" },
		"image":       func(_ *Orchestrator, a *orchestrator.App) { a.Image = "reg/orders@sha256:bb" },
		"port":        func(_ *Orchestrator, a *orchestrator.App) { a.Port = 9090 },
		"env":         func(_ *Orchestrator, a *orchestrator.App) { a.Env = map[string]string{"GREETING": "hi"} },
		"secret":      func(_ *Orchestrator, a *orchestrator.App) { a.Secrets = map[string]string{"TOKEN": "other"} },
	} {
		d2, a2 := &Orchestrator{AppsDomain: d.AppsDomain}, a
		change(d2, &a2)
		if got := d2.appContainer(a2, appSpec(a2)).Labels[labelSpec]; got == digest {
			t.Errorf("a changed %s keeps the digest %s", what, got)
		}
	}

	// Whatever sets them, labels and host config count.
	unlabelled := func() containerSpec {
		c := want
		c.Labels = maps.Clone(want.Labels)
		delete(c.Labels, labelSpec)
		return c
	}
	if got := digestOf(unlabelled()); got != digest {
		t.Fatalf("digest without the spec label: %s, want %s", got, digest)
	}
	c := unlabelled()
	c.HostConfig.Memory++
	if digestOf(c) == digest {
		t.Error("a changed memory limit keeps the digest")
	}
	c = unlabelled()
	c.Labels["traefik.http.routers."+routerName(a)+".entrypoints"] = "websecure"
	if digestOf(c) == digest {
		t.Error("a changed routing label keeps the digest")
	}
}

// What an instance is made of reads back from the container the daemon
// made, whose environment has the image's variables merged in, as it was
// deployed: Start keeps a stopped instance rather than replace it.
func TestDockerSpecOf(t *testing.T) {
	d := &Orchestrator{AppsDomain: "apps.test"}
	a := orchestrator.App{Tenant: "acme", Environment: "dev", Name: "orders", Image: "reg/orders@sha256:aa", Port: 8080,
		Env: map[string]string{"GREETING": "hello", "JAVA_OPTS": "-Xmx256m"}, Secrets: map[string]string{"TOKEN": "t0ken"}}
	want := d.appContainer(a, appSpec(a))
	var c containerInfo
	c.Config.Labels = want.forInstance(0).Labels
	// The image's variables first, the app's overriding them in place or
	// appended, as the daemon merges them.
	c.Config.Env = []string{"PATH=/usr/bin", "JAVA_OPTS=-Xmx256m", "LANG=C.UTF-8", "GREETING=hello", "TOKEN=t0ken"}
	s, err := specOf(c, "orders-0")
	if err != nil {
		t.Fatal(err)
	}
	if got := d.appContainer(a, s); !reflect.DeepEqual(got, want) {
		t.Errorf("read back:\n%+v\nwant\n%+v", got, want)
	}
}
