package httpjson

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
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

func TestDecode(t *testing.T) {
	type req struct{ Name string }
	for _, tc := range []struct {
		body     string
		optional bool
		status   int
	}{
		{`{"name":"a"}`, false, 0},
		{``, true, 0},
		{``, false, http.StatusBadRequest},
		{`{"name":"a","extra":1}`, false, http.StatusBadRequest},
		{`{"name":"a"}{"name":"b"}`, false, http.StatusBadRequest},
		{`{"name":"` + strings.Repeat("a", MaxRequest) + `"}`, false, http.StatusRequestEntityTooLarge},
	} {
		var v req
		err := Decode(httptest.NewRecorder(), httptest.NewRequest("POST", "/", strings.NewReader(tc.body)), &v, tc.optional)
		var se *StatusError
		switch {
		case tc.status == 0 && err != nil:
			t.Errorf("%.20q: %v", tc.body, err)
		case tc.status != 0 && (!errors.As(err, &se) || se.Status != tc.status || strings.Contains(se.Msg, "\n")):
			t.Errorf("%.20q: %v, want a one-line %d", tc.body, err, tc.status)
		}
	}
	// The wire takes what a newer peer adds.
	var v req
	if err := DecodeWire(httptest.NewRecorder(), httptest.NewRequest("POST", "/", strings.NewReader(`{"name":"a","new":true}`)), &v); err != nil || v.Name != "a" {
		t.Errorf("DecodeWire: %v %+v", err, v)
	}
}

func TestCall(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			var in map[string]string
			json.NewDecoder(r.Body).Decode(&in)
			Write(w, http.StatusOK, map[string]string{"echo": in["say"]})
		case "/refused":
			Error(w, http.StatusConflict, "app orders runs elsewhere")
		default:
			w.WriteHeader(http.StatusBadGateway)
			io.WriteString(w, "bad gateway\n")
		}
	}))
	defer srv.Close()
	var out struct{ Echo string }
	if err := Call(context.Background(), srv.Client(), "POST", srv.URL+"/ok", map[string]string{"say": "hi"}, &out); err != nil || out.Echo != "hi" {
		t.Errorf("ok: %v %+v", err, out)
	}
	var se *StatusError
	if err := Call(context.Background(), srv.Client(), "POST", srv.URL+"/refused", nil, nil); !errors.As(err, &se) || se.Status != http.StatusConflict || se.Msg != "app orders runs elsewhere" {
		t.Errorf("refused: %v", err)
	}
	if err := Call(context.Background(), srv.Client(), "GET", srv.URL+"/other", nil, nil); !errors.As(err, &se) || se.Status != http.StatusBadGateway || se.Msg != "bad gateway" {
		t.Errorf("a text answer: %v", err)
	}
}

func TestUnwrap(t *testing.T) {
	_, err := http.Get("http://127.0.0.1:1/x")
	if err == nil {
		t.Skip("something answers on port 1")
	}
	if got := Unwrap(err).Error(); strings.Contains(got, "127.0.0.1:1/x") || !strings.Contains(got, "refused") {
		t.Errorf("Unwrap = %q, want the dial's error without the method and URL", got)
	}
	plain := errors.New("plain")
	if Unwrap(plain) != plain {
		t.Errorf("Unwrap changed an error that is no *url.Error")
	}
}
