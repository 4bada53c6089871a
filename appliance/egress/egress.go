// Package egress keeps each environment's egress applied on this runner:
// the control plane's allow list, its host names resolved here and again
// every Interval, handed to the orchestrator whenever the addresses it
// comes to change.
package egress

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/appliance/orchestrator"
)

// Keeper holds the environments' egress. Its zero value is not ready: Apply
// is needed.
type Keeper struct {
	// Apply puts an environment's rules in place (the orchestrator's
	// Egress for this runner's tenant).
	Apply func(ctx context.Context, env string, rules []orchestrator.EgressRule) error
	// Resolve looks a host name's IPv4 addresses up; nil: this host's
	// resolver.
	Resolve func(ctx context.Context, host string) ([]netip.Addr, error)
	// Interval is how often host names are resolved again; 0: 30 s.
	Interval time.Duration
	Log      *slog.Logger

	mu    sync.Mutex
	envs  map[string]*state
	addrs map[string][]netip.Addr // by host name: its last answer
}

// state is one environment's egress.
type state struct {
	egress  api.Egress
	applied []orchestrator.EgressRule // what Apply last took
	ok      bool                      // Apply took the rules as they are now
}

// lookupTimeout bounds one resolution of a host name.
const lookupTimeout = 5 * time.Second

// Set takes an environment's egress and applies it. An older one than the
// environment has (two sends of the control plane's that crossed) is
// ignored.
func (k *Keeper) Set(ctx context.Context, env string, e api.Egress) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.envs == nil {
		k.envs, k.addrs = map[string]*state{}, map[string][]netip.Addr{}
	}
	st := k.envs[env]
	if st == nil {
		st = &state{}
		k.envs[env] = st
	} else if e.Revision < st.egress.Revision {
		k.log().Info("older egress ignored", "env", env, "revision", e.Revision, "has", st.egress.Revision)
		return nil
	}
	st.egress = e
	for _, r := range e.Allow {
		if _, known := k.addrs[r.Host]; r.Host != "" && !known {
			k.addrs[r.Host] = k.lookup(ctx, r.Host, nil)
		}
	}
	return k.sync(ctx, env, st)
}

// sync applies an environment's rules unless Apply already took them.
// Callers hold k.mu.
func (k *Keeper) sync(ctx context.Context, env string, st *state) error {
	rules := k.rules(st.egress)
	if st.ok && reflect.DeepEqual(rules, st.applied) {
		return nil
	}
	if err := k.Apply(ctx, env, rules); err != nil {
		st.ok = false
		return fmt.Errorf("egress of %s: %w", env, err)
	}
	st.applied, st.ok = rules, true
	k.log().Info("egress applied", "env", env, "revision", st.egress.Revision, "rules", len(rules))
	return nil
}

// rules are e's rules with their addresses. A rule whose host has none
// (yet) is left out: it opens nothing.
func (k *Keeper) rules(e api.Egress) []orchestrator.EgressRule {
	out := []orchestrator.EgressRule{}
	for _, r := range e.Allow {
		var to []netip.Prefix
		if r.CIDR != "" {
			if p, err := netip.ParsePrefix(r.CIDR); err == nil {
				to = append(to, p)
			}
		} else {
			for _, a := range k.addrs[r.Host] {
				to = append(to, netip.PrefixFrom(a, 32))
			}
		}
		if len(to) > 0 {
			out = append(out, orchestrator.EgressRule{To: to, Ports: r.Ports, Protocol: r.Protocol})
		}
	}
	return out
}

// Run resolves the environments' host names again every Interval and
// applies what changed, and what Apply failed to take, until ctx is done.
func (k *Keeper) Run(ctx context.Context) {
	every := k.Interval
	if every == 0 {
		every = 30 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		k.refresh(ctx)
	}
}

// refresh resolves every host name the environments' rules have (without
// holding k.mu: a slow name server does not hold up Set), then applies.
func (k *Keeper) refresh(ctx context.Context) {
	k.mu.Lock()
	had := map[string][]netip.Addr{}
	for _, st := range k.envs {
		for _, r := range st.egress.Allow {
			if r.Host != "" {
				had[r.Host] = k.addrs[r.Host]
			}
		}
	}
	k.mu.Unlock()
	fresh := map[string][]netip.Addr{}
	for host, addrs := range had {
		if fresh[host] = k.lookup(ctx, host, addrs); !slices.Equal(fresh[host], addrs) {
			k.log().Info("an egress host resolves to other addresses", "host", host, "was", addrs, "now", fresh[host])
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	// Names no rule has any more are dropped.
	k.addrs = fresh
	for env, st := range k.envs {
		if err := k.sync(ctx, env, st); err != nil {
			k.log().Warn("egress not applied; trying again", "env", env, "err", err)
		}
	}
}

// lookup resolves host. A name that does not exist has no addresses; any
// other failure keeps those it had, so a name server that does not answer
// for a while closes nothing.
func (k *Keeper) lookup(ctx context.Context, host string, had []netip.Addr) []netip.Addr {
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	resolve := k.Resolve
	if resolve == nil {
		resolve = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip4", host)
		}
	}
	addrs, err := resolve(ctx, host)
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		k.log().Warn("an egress host does not exist; it opens nothing", "host", host)
		return nil
	case err != nil:
		k.log().Warn("resolving an egress host failed; keeping its last addresses", "host", host, "addresses", had, "err", err)
		return had
	}
	var out []netip.Addr
	for _, a := range addrs {
		if a = a.Unmap(); a.Is4() && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

func (k *Keeper) log() *slog.Logger {
	if k.Log == nil {
		return slog.Default()
	}
	return k.Log
}
