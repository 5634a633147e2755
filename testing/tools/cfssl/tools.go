//go:build tools

// Package tools pins CFSSL: the CA host's API server and its JSON helper.
package tools

import (
	_ "github.com/cloudflare/cfssl/cmd/cfssl"
	_ "github.com/cloudflare/cfssl/cmd/cfssljson"
)
