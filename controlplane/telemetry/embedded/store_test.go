package embedded_test

import (
	"log/slog"
	"testing"

	"github.com/cameleer/cameleer/controlplane/telemetry"
	"github.com/cameleer/cameleer/controlplane/telemetry/embedded"
	"github.com/cameleer/cameleer/controlplane/telemetry/storetest"
)

func open(t *testing.T) telemetry.Store {
	s, err := embedded.Open(t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) { storetest.Run(t, open) }
