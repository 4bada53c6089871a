// Package installer holds install.sh, which the control plane serves at
// /install.sh and `make bundle` puts in the air-gapped bundle.
package installer

import _ "embed"

//go:embed install.sh
var script []byte

// Script is install.sh.
func Script() []byte { return script }
