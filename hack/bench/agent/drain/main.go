// Command drain empties a Cameleer agent's buffer the way the runner's
// collector does (appliance/collector): every 500 ms it pulls
// /cameleer/telemetry?boot=B&after=N until an answer has no events, passing
// back the boot and last of the answer before, which acknowledges them.
// Without it the agent's buffer fills and drops, and a benchmark would
// measure an agent that does less than a real one. Like the runner it shows
// the app's token (CAMELEER_AGENT_TOKEN, when set). On SIGTERM or SIGINT it
// prints what it pulled and the agent's dropped count, then exits.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

type batch struct {
	Boot    string            `json:"boot"`
	Last    uint64            `json:"last"`
	Dropped uint64            `json:"dropped"`
	Events  []json.RawMessage `json:"events"`
}

func main() {
	port := flag.Int("port", 9464, "the agent's port")
	every := flag.Duration("every", 500*time.Millisecond, "pull interval (the runner's)")
	flag.Parse()

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	client := &http.Client{Timeout: 5 * time.Second}
	var boot string
	var last, dropped, events, bytes, pulls uint64
	errs := 0
	token := os.Getenv("CAMELEER_AGENT_TOKEN")
	base := "http://127.0.0.1:" + strconv.Itoa(*port) + "/cameleer/telemetry?"

	// pull asks once; it says whether the agent may have more.
	pull := func() bool {
		q := url.Values{"boot": {boot}, "after": {strconv.FormatUint(last, 10)}}
		req, err := http.NewRequest(http.MethodGet, base+q.Encode(), nil)
		if err != nil {
			errs++
			return false
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			errs++
			return false
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		var b batch
		if err != nil || resp.StatusCode != http.StatusOK || json.Unmarshal(body, &b) != nil {
			errs++
			return false
		}
		// The runner checks each event is valid JSON; so does this, for
		// the same CPU cost on the client side.
		for _, ev := range b.Events {
			if json.Valid(ev) {
				events++
			}
		}
		pulls++
		bytes += uint64(len(body))
		boot, last, dropped = b.Boot, b.Last, b.Dropped
		return len(b.Events) > 0
	}

	tick := time.NewTicker(*every)
	defer tick.Stop()
	for {
		for pull() {
		}
		select {
		case <-stop:
			pull() // the latest dropped count
			fmt.Printf("drain: pulls %d events %d bytes %d dropped %d errors %d\n", pulls, events, bytes, dropped, errs)
			return
		case <-tick.C:
		}
	}
}
