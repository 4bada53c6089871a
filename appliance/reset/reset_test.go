package reset

import (
	"testing"
)

func TestWithoutChains(t *testing.T) {
	save := `*filter
:INPUT ACCEPT [0:0]
:KUBE-FIREWALL - [0:0]
:CNI-HOSTPORT-DNAT - [0:0]
:FLANNEL-FWD - [0:0]
:USER-CHAIN - [0:0]
-A INPUT -j KUBE-FIREWALL
-A INPUT -m comment --comment "KUBE-ROUTER rule to explicitly ACCEPT traffic" -m mark --mark 0x20000/0x20000 -j ACCEPT
-A INPUT -p tcp --dport 22 -j ACCEPT
-A USER-CHAIN -j RETURN
-A POSTROUTING -m comment --comment "flanneld masq" -j MASQUERADE
COMMIT
`
	got, changed := WithoutChains([]byte(save))
	want := `*filter
:INPUT ACCEPT [0:0]
:USER-CHAIN - [0:0]
-A INPUT -p tcp --dport 22 -j ACCEPT
-A USER-CHAIN -j RETURN
COMMIT
`
	if !changed || string(got) != want {
		t.Fatalf("changed=%v, got:\n%s\nwant:\n%s", changed, got, want)
	}
	if _, changed := WithoutChains([]byte(want)); changed {
		t.Error("clean rules reported as changed")
	}
}

func TestUnescape(t *testing.T) {
	if got := unescape(`/var/lib/my\040dir`); got != "/var/lib/my dir" {
		t.Errorf("unescape = %q", got)
	}
}

func TestIsEngineSet(t *testing.T) {
	for name, want := range map[string]bool{"KUBE-DST-ABC": true, "kube-router-local-ips": true, "mine": false} {
		if IsEngineSet(name) != want {
			t.Errorf("IsEngineSet(%q) != %v", name, want)
		}
	}
}
