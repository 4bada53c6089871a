package api

import (
	"bytes"
	"testing"
)

// The layout the agent reads (agent/ReplayRequest.java, its test builds the
// same bytes).
func TestReplayRequestBinary(t *testing.T) {
	b, err := ReplayRequest{Context: "c", Route: "r", ReplayOf: "x", Headers: map[string]string{"b": "2", "a": "1"}, Body: []byte{9}}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{
		0, 0, 0, 1, 'c', 0, 0, 0, 1, 'r', 0, 0, 0, 1, 'x',
		0, 0, 0, 2, 0, 0, 0, 1, 'a', 0, 0, 0, 1, '1', 0, 0, 0, 1, 'b', 0, 0, 0, 1, '2',
		0, 0, 0, 1, 9,
	}
	if !bytes.Equal(b, want) {
		t.Errorf("got % x\nwant % x", b, want)
	}
	// A resend's node follows the body.
	b, _ = ReplayRequest{Context: "c", Route: "r", ReplayOf: "x", Headers: map[string]string{"b": "2", "a": "1"}, Body: []byte{9}, Node: "n"}.MarshalBinary()
	if want := append(want, 0, 0, 0, 1, 'n'); !bytes.Equal(b, want) {
		t.Errorf("with a node: got % x\nwant % x", b, want)
	}
	many := map[string]string{}
	for i := 0; i < 1025; i++ {
		many[string(rune('a'+i%26))+string(rune(i))] = ""
	}
	if _, err := (ReplayRequest{Route: "r", Headers: many}).MarshalBinary(); err == nil {
		t.Error("1025 headers taken")
	}
}
