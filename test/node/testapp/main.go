// Command testapp is the workload of the node end-to-end tests, run as a pod
// from an image the test pushes into the node's registry. Debian's static
// busybox cannot resolve names, so DNS and HTTP checks need this.
//
//	testapp serve ADDR TEXT   answer every HTTP request with TEXT
//	testapp resolve NAME      print NAME's addresses (Go resolver, /etc/resolv.conf)
//	testapp get URL           GET URL, print the body; exit 1 on failure
//	testapp sleep             wait forever (a pod to exec into)
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "testapp:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: testapp serve|resolve|get|sleep")
	}
	switch args[0] {
	case "serve":
		if len(args) != 3 {
			return fmt.Errorf("usage: testapp serve ADDR TEXT")
		}
		text := args[2]
		return http.ListenAndServe(args[1], http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintln(w, text)
		}))
	case "resolve":
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		addrs, err := net.DefaultResolver.LookupHost(ctx, args[1])
		if err != nil {
			return err
		}
		fmt.Println(strings.Join(addrs, " "))
		return nil
	case "get":
		c := &http.Client{Timeout: 3 * time.Second}
		resp, err := c.Get(args[1])
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		fmt.Print(string(b))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s", resp.Status)
		}
		return nil
	case "sleep":
		// A bare select{} would be a deadlock to the runtime.
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		return nil
	}
	return fmt.Errorf("unknown command %q", args[0])
}
