package orchestrator

import (
	"regexp"
	"testing"
)

// Docker's rule for container names; network names are held to it here
// too.
var dockerNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// Apps whose tenant, environment and name joined with '-' read the same get
// names of their own.
func TestDockerNamesDistinct(t *testing.T) {
	pairs := [][2]App{
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
		for what, f := range map[string]func(App) string{
			"network":   func(a App) string { return envNetwork(a.Tenant, a.Environment) },
			"router":    routerName,
			"container": func(a App) string { return instanceName(a, 0) },
		} {
			if f(a) == f(b) {
				t.Errorf("%+v and %+v share the %s name %q", a, b, what, f(a))
			}
		}
	}
	if err := checkNames(App{Tenant: "acme", Environment: "prod_eu", Name: "api"}); err == nil {
		t.Error("an environment named with '_', the names' separator, is accepted")
	}
}
