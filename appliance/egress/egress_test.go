package egress

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"reflect"
	"sync"
	"testing"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/appliance/orchestrator"
)

// names is a resolver whose answers the test sets.
type names struct {
	mu      sync.Mutex
	answers map[string][]netip.Addr
	fail    error
}

func (n *names) set(host string, addrs ...string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.answers[host] = nil
	for _, a := range addrs {
		n.answers[host] = append(n.answers[host], netip.MustParseAddr(a))
	}
}

func (n *names) resolve(_ context.Context, host string) ([]netip.Addr, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.fail != nil {
		return nil, n.fail
	}
	a, ok := n.answers[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return a, nil
}

// applied records what the keeper applied, by environment.
type applied struct {
	calls map[string][][]orchestrator.EgressRule
	fail  error
}

func (a *applied) apply(_ context.Context, env string, rules []orchestrator.EgressRule) error {
	if a.fail != nil {
		return a.fail
	}
	a.calls[env] = append(a.calls[env], rules)
	return nil
}

func (a *applied) last(t *testing.T, env string, calls int) []orchestrator.EgressRule {
	t.Helper()
	if len(a.calls[env]) != calls {
		t.Fatalf("%s applied %d times, want %d: %+v", env, len(a.calls[env]), calls, a.calls[env])
	}
	if calls == 0 {
		return nil
	}
	return a.calls[env][calls-1]
}

func rule(port int, to ...string) orchestrator.EgressRule {
	r := orchestrator.EgressRule{Ports: []int{port}, Protocol: "tcp"}
	for _, p := range to {
		r.To = append(r.To, netip.MustParsePrefix(p))
	}
	return r
}

func TestKeeper(t *testing.T) {
	dns := &names{answers: map[string][]netip.Addr{}}
	dns.set("db.example", "192.0.2.20", "192.0.2.10", "::ffff:192.0.2.10", "2001:db8::1")
	out := &applied{calls: map[string][][]orchestrator.EgressRule{}}
	k := &Keeper{Apply: out.apply, Resolve: dns.resolve, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx := context.Background()

	eg := api.Egress{Revision: 2, Allow: []api.EgressRule{
		{CIDR: "10.1.2.0/24", Ports: []int{443}, Protocol: "tcp"},
		{Host: "db.example", Ports: []int{5432}, Protocol: "tcp"},
		{Host: "gone.example", Ports: []int{80}, Protocol: "tcp"},
	}}
	if err := k.Set(ctx, "dev", eg); err != nil {
		t.Fatal(err)
	}
	// IPv4 addresses, sorted, once each; a name that does not exist opens
	// nothing.
	want := []orchestrator.EgressRule{rule(443, "10.1.2.0/24"), rule(5432, "192.0.2.10/32", "192.0.2.20/32")}
	if got := out.last(t, "dev", 1); !reflect.DeepEqual(got, want) {
		t.Errorf("applied %+v, want %+v", got, want)
	}

	// The same again, or an older revision, applies nothing.
	k.Set(ctx, "dev", eg)
	k.Set(ctx, "dev", api.Egress{Revision: 1})
	out.last(t, "dev", 1)

	// Names resolved again: the same answer applies nothing; another one
	// applies the rules with it.
	k.refresh(ctx)
	out.last(t, "dev", 1)
	dns.set("db.example", "192.0.2.30")
	dns.set("gone.example", "198.51.100.1")
	k.refresh(ctx)
	want = []orchestrator.EgressRule{rule(443, "10.1.2.0/24"), rule(5432, "192.0.2.30/32"), rule(80, "198.51.100.1/32")}
	if got := out.last(t, "dev", 2); !reflect.DeepEqual(got, want) {
		t.Errorf("after the answers changed: %+v, want %+v", got, want)
	}

	// A name server that fails keeps the addresses; so nothing changes.
	dns.fail = errors.New("i/o timeout")
	k.refresh(ctx)
	out.last(t, "dev", 2)
	dns.fail = nil

	// What Apply refused is applied again at the next round.
	out.fail = errors.New("kubectl: connection refused")
	if err := k.Set(ctx, "prod", api.Egress{Revision: 1, Allow: []api.EgressRule{{CIDR: "10.9.0.0/16", Ports: []int{22}, Protocol: "tcp"}}}); err == nil {
		t.Error("a failed apply is no error")
	}
	out.fail = nil
	k.refresh(ctx)
	if got := out.last(t, "prod", 1); !reflect.DeepEqual(got, []orchestrator.EgressRule{rule(22, "10.9.0.0/16")}) {
		t.Errorf("prod after a failed apply: %+v", got)
	}

	// Emptied: nothing open.
	if err := k.Set(ctx, "dev", api.Egress{Revision: 3}); err != nil {
		t.Fatal(err)
	}
	if got := out.last(t, "dev", 3); got == nil || len(got) != 0 {
		t.Errorf("emptied: %#v, want no rules", got)
	}
}
