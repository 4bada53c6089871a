package telemetry

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/internal/httpjson"
)

// MaxBatch bounds a batch's JSON: a runner sends at most 2000 records and
// 4 MiB of events at once.
const MaxBatch = 16 << 20

// IngestJSON reads a batch from r, at most MaxBatch bytes of JSON, and
// ingests it. What is not a batch is refused as Ingest refuses a malformed
// one: a one-line *httpjson.StatusError (413 past the bound, 400 else),
// counted, with nothing stored.
func (s *Service) IngestJSON(ctx context.Context, tenant, runner string, r io.Reader) (api.TelemetryAck, error) {
	lr := &io.LimitedReader{R: r, N: MaxBatch + 1}
	var b api.TelemetryBatch
	dec := json.NewDecoder(lr)
	err := dec.Decode(&b)
	if err == nil {
		if _, next := dec.Token(); next != io.EOF {
			err = errors.New("more after the batch")
		}
	}
	if lr.N <= 0 {
		s.metrics.refused()
		return api.TelemetryAck{}, httpjson.Errorf(http.StatusRequestEntityTooLarge, "telemetry batch over %d MiB", MaxBatch>>20)
	}
	if err != nil {
		s.metrics.refused()
		return api.TelemetryAck{}, badRequest("telemetry batch: %v", err)
	}
	return s.Ingest(ctx, tenant, runner, b)
}
