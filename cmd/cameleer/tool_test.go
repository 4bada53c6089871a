package main

import (
	"testing"

	"github.com/cameleer/cameleer/appliance/config"
)

func TestDataDirFromTheEnvironment(t *testing.T) {
	t.Setenv(dataDirEnv, "")
	if d := defaultDataDir(); d != config.DefaultDataDir {
		t.Errorf("without the variable: %s", d)
	}
	t.Setenv(dataDirEnv, "/srv/cameleer")
	cmd := newStatusCommand()
	if d := cmd.Flags().Lookup("data-dir").DefValue; d != "/srv/cameleer" {
		t.Errorf("status --data-dir defaults to %s, want the variable's", d)
	}
}
