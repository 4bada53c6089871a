// Command fakebinary answers `version -o json` as cameleer does, with the
// version linked in (-X main.version=V): the downloads test serves it in
// place of the real binary, which takes make and minutes to build.
package main

import (
	"fmt"
	"os"
)

var version = "dev"

func main() {
	if len(os.Args) != 4 || os.Args[1] != "version" {
		os.Exit(2)
	}
	fmt.Printf(`{"version":%q,"commit":"abc","go":"go1","signingKey":"MCowBQYDK2VwAyEAhz92d9DLkVG2+S7IYKnAiL2hh7CJlU8b9HAzAXqbCto=","payload":{"sha256":"not-this"}}`+"\n", version)
}
