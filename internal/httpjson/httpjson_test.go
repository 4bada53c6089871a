package httpjson

import (
	"net/http/httptest"
	"testing"
)

func TestErrorRoundTrip(t *testing.T) {
	rec := httptest.NewRecorder()
	Error(rec, 404, "no app orders in environment dev")
	if rec.Code != 404 || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("answer %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	if got := ErrorText(rec.Body.Bytes()); got != "no app orders in environment dev" {
		t.Errorf("ErrorText = %q", got)
	}
	if got := ErrorText([]byte(" 502 Bad Gateway\n")); got != "502 Bad Gateway" {
		t.Errorf("ErrorText of a non-JSON body = %q", got)
	}
}
