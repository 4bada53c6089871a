// Command downstream is the system the agent benchmark's "orders" route
// calls over HTTP (hack/bench/agent-overhead.sh): it reads each POSTed
// order and answers a small JSON reservation, at once. It listens on
// loopback only.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
)

func main() {
	port := flag.Int("port", 18090, "loopback port to serve on")
	flag.Parse()
	http.HandleFunc("POST /stock", func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"reserved":true,"bytes":%d,"warehouse":"north"}`, n)
	})
	log.Fatal(http.ListenAndServe(fmt.Sprintf("127.0.0.1:%d", *port), nil))
}
